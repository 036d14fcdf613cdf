// The state of a terminal chat (messages and settings) and its slash commands.
// Kept free of terminal I/O so the commands are testable on their own.
import { readFileSync, writeFileSync } from 'node:fs';
import type { ChatMessage, ChatSettings } from './client.js';
import { CliError, ExitCode, errorLine } from './errors.js';

export const CHAT_COMMANDS_HELP = `Commands:
  /reset             start a new conversation (keeps the system prompt)
  /think on|off      turn thinking mode on or off
  /effort high|max   set the reasoning effort (thinking mode)
  /temp N            set the temperature (0-2; used when thinking is off)
  /system [TEXT]     set the system prompt (none: clear it)
  /model ID          set the model id sent in requests (e.g. deepseek-v4-pro)
  /fold on|off       fold the thinking into one line once the answer starts
  /thoughts          show the last thinking in full
  /save FILE         save the conversation as JSON
  /load FILE         load a conversation saved with /save
  /help              this list
  /exit              quit (also Ctrl-D)
Ctrl-C stops the current answer; at an empty prompt, press it twice to quit.`;

/** What the loop should do after a command. */
export type CommandOutcome = { say: string } | { exit: true } | { showThoughts: true };

/** The file written by /save and read by /load (also accepts a bare message array). */
interface SavedChat {
  dsv4_chat: 1;
  settings: ChatSettings;
  system?: string;
  messages: ChatMessage[];
}

export class ChatSession {
  messages: ChatMessage[] = [];
  fold = true;

  constructor(
    public settings: ChatSettings,
    public system?: string,
  ) {}

  /** Messages to send: the system prompt, then the conversation. */
  request(): ChatMessage[] {
    return this.system ? [{ role: 'system', content: this.system }, ...this.messages] : [...this.messages];
  }

  lastThoughts(): string | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i]!;
      if (m.role === 'assistant') return m.reasoning_content;
    }
    return undefined;
  }

  /** Runs a `/command`. Throws CliError with a one-line message on bad input. */
  command(line: string): CommandOutcome {
    const [name = '', ...rest] = line.trim().slice(1).split(/\s+/);
    const arg = rest.join(' ');
    switch (name.toLowerCase()) {
      case 'reset':
        this.messages = [];
        return { say: 'New conversation.' };
      case 'think':
        this.settings.thinking = onOff(arg, '/think');
        return { say: `Thinking ${this.settings.thinking ? 'on' : 'off'}.` };
      case 'effort':
        if (arg !== 'high' && arg !== 'max') throw usage('/effort takes high or max');
        this.settings.effort = arg;
        return { say: `Effort ${arg}${this.settings.thinking ? '' : ' (applies when thinking is on: /think on)'}.` };
      case 'temp':
      case 'temperature': {
        const t = Number(arg);
        if (arg === '' || !Number.isFinite(t) || t < 0 || t > 2) throw usage('/temp takes a number from 0 to 2');
        this.settings.temperature = t;
        return { say: `Temperature ${t}${this.settings.thinking ? ' (ignored while thinking is on)' : ''}.` };
      }
      case 'system':
        this.system = arg || undefined;
        return { say: arg ? 'System prompt set.' : 'System prompt cleared.' };
      case 'model':
        if (!/^[\w.:\/-]+$/.test(arg)) throw usage('/model takes a model id, e.g. deepseek-v4-flash');
        this.settings.model = arg;
        return { say: `Model ${arg}.` };
      case 'fold':
        this.fold = onOff(arg, '/fold');
        return { say: `Folding ${this.fold ? 'on' : 'off'}.` };
      case 'thoughts':
        return { showThoughts: true };
      case 'save':
        if (!arg) throw usage('/save needs a file name');
        this.save(arg);
        return { say: `Saved ${this.messages.length} messages to ${arg}.` };
      case 'load':
        if (!arg) throw usage('/load needs a file name');
        this.load(arg);
        return { say: `Loaded ${this.messages.length} messages from ${arg}.` };
      case 'help':
      case '?':
        return { say: CHAT_COMMANDS_HELP };
      case 'exit':
      case 'quit':
      case 'bye':
        return { exit: true };
      default:
        throw usage(`unknown command /${name} (try /help)`);
    }
  }

  save(file: string): void {
    const saved: SavedChat = { dsv4_chat: 1, settings: this.settings, system: this.system, messages: this.messages };
    try {
      writeFileSync(file, JSON.stringify(saved, null, 2) + '\n');
    } catch (err) {
      throw new CliError(`cannot save ${file}: ${errorLine(err)}`, ExitCode.failure);
    }
  }

  load(file: string): void {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new CliError(`cannot load ${file}: ${errorLine(err)}`, ExitCode.usage);
    }
    const saved = (Array.isArray(data) ? { messages: data } : data) as Partial<SavedChat>;
    if (!Array.isArray(saved.messages) || !saved.messages.every(isMessage))
      throw new CliError(`cannot load ${file}: expected {"messages": [{"role", "content"}, ...]}`, ExitCode.usage);
    const msgs = saved.messages.filter((m) => m.role !== 'system');
    const sys = saved.messages.find((m) => m.role === 'system');
    this.messages = msgs;
    if (saved.system !== undefined) this.system = saved.system;
    else if (sys) this.system = sys.content ?? undefined;
    if (saved.settings) this.settings = { ...this.settings, ...saved.settings };
  }
}

function isMessage(m: unknown): m is ChatMessage {
  const r = (m as { role?: unknown })?.role;
  return r === 'system' || r === 'user' || r === 'assistant' || r === 'tool';
}

function onOff(arg: string, cmd: string): boolean {
  if (arg === 'on') return true;
  if (arg === 'off') return false;
  throw usage(`${cmd} takes on or off`);
}

function usage(msg: string): CliError {
  return new CliError(msg, ExitCode.usage);
}
