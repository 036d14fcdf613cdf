// `dsv4 chat`: an interactive terminal chat with streaming output, thinking shown dim and folded
// once the answer starts, slash commands, and Ctrl-C that stops the answer rather than the program.
// Works the same over a local checkpoint (in-process server) and over any DeepSeek-compatible URL.
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { openBackend, type Backend } from '../chat/backend.js';
import { streamChatCompletion, type ChatResult } from '../chat/client.js';
import { CliError, errorLine } from '../chat/errors.js';
import { addCommonOptions, settingsFrom, type CommonOptions } from '../chat/options.js';
import { TurnRenderer, style } from '../chat/render.js';
import { CHAT_COMMANDS_HELP, ChatSession } from '../chat/session.js';

interface ChatOptions extends CommonOptions {
  load?: string;
}

export function register(program: Command): void {
  addCommonOptions(
    program
      .command('chat')
      .summary('chat in the terminal with a local model or a DeepSeek-compatible server')
      .description(
        'Interactive chat in the terminal. Answers stream as they are generated; thinking is shown dim and ' +
          'folded into one line when the answer starts. Without --model or --url it runs the embedded default ' +
          'model (a small random model generated on first use: its answers are noise, see the README).',
      ),
  )
    .option('--load <file>', 'start from a conversation saved with /save')
    .addHelpText(
      'after',
      `\n${CHAT_COMMANDS_HELP}\n\nExamples:\n` +
        '  dsv4 chat                                   # the embedded default model\n' +
        '  dsv4 chat --model ./DeepSeek-V4-Flash       # a checkpoint in the official layout\n' +
        '  dsv4 chat --url http://127.0.0.1:8000       # a running `dsv4 serve`\n' +
        '  DEEPSEEK_API_KEY=sk-... dsv4 chat --url https://api.deepseek.com',
    )
    .action(async (opts: ChatOptions) => runChat(opts));
}

async function runChat(opts: ChatOptions): Promise<void> {
  const session = new ChatSession(settingsFrom(opts), opts.system);
  if (opts.load) session.load(opts.load);
  const backend = await openBackend(opts);
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const info = (s: string) => (tty ? process.stdout : process.stderr).write(tty ? `${style.DIM}${s}${style.RESET}\n` : `${s}\n`);
  info(
    `dsv4 chat · ${backend.describe} · ${session.settings.model}, thinking ${session.settings.thinking ? `on (${session.settings.effort})` : 'off'}` +
      (session.messages.length ? ` · ${session.messages.length} messages loaded` : '') +
      ' · /help for commands',
  );

  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: '> ' });
  let current: AbortController | null = null;
  let lastIdleInterrupt = 0;
  const interrupt = () => {
    if (current) {
      current.abort();
      return;
    }
    if (rl.line) {
      // Ctrl-C on a half-typed line clears it, as in a shell.
      rl.write(null, { ctrl: true, name: 'u' });
      return;
    }
    if (Date.now() - lastIdleInterrupt < 2000) rl.close();
    else {
      lastIdleInterrupt = Date.now();
      process.stdout.write('\n(press Ctrl-C again or type /exit to quit)\n');
      rl.prompt();
    }
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);

  try {
    let pending = '';
    if (tty) rl.prompt();
    for await (const raw of rl) {
      // A line ending in a backslash continues on the next one.
      if (raw.endsWith('\\')) {
        pending += raw.slice(0, -1) + '\n';
        continue;
      }
      const line = pending + raw;
      pending = '';
      if (line.trim() === '') {
        if (tty) rl.prompt();
        continue;
      }
      if (line.startsWith('/')) {
        if (!runCommand(session, line, info, tty)) break;
      } else {
        current = new AbortController();
        await turn(backend, session, line, current.signal, tty, info);
        current = null;
      }
      if (tty) rl.prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
    await backend.close();
  }
}

/** Runs a slash command; false means quit. */
function runCommand(session: ChatSession, line: string, info: (s: string) => void, tty: boolean): boolean {
  try {
    const outcome = session.command(line);
    if ('exit' in outcome) return false;
    if ('showThoughts' in outcome) {
      const t = session.lastThoughts();
      process.stdout.write(t ? (tty ? `${style.DIM}${t}${style.RESET}\n` : `${t}\n`) : '(no thinking in the last answer)\n');
    } else info(outcome.say);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    info(`error: ${err.message}`);
  }
  return true;
}

/** One exchange: send, stream, and record the answer (a stopped answer is kept as far as it got). */
async function turn(backend: Backend, session: ChatSession, text: string, signal: AbortSignal, tty: boolean, info: (s: string) => void): Promise<void> {
  session.messages.push({ role: 'user', content: text });
  const view = new TurnRenderer(process.stdout, { fold: tty && session.fold });
  let result: ChatResult;
  try {
    result = await streamChatCompletion(backend, session.settings, session.request(), view, signal);
  } catch (err) {
    session.messages.pop();
    view.end({ message: { role: 'assistant', content: '' }, finishReason: 'error' });
    info(`error: ${errorLine(err)}`);
    return;
  }
  view.end(result);
  const m = result.message;
  if (m.content || m.reasoning_content || m.tool_calls?.length) session.messages.push(m);
  else session.messages.pop();
}
