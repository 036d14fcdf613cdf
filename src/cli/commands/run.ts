// `dsv4 run "prompt"`: one question, one answer. Only the answer goes to stdout (so it pipes);
// `--json` prints the API's full chat.completion object instead; `--show-thinking` copies the
// thinking to stderr. The prompt may also come from stdin (`-` or no argument with a pipe).
import type { Command } from 'commander';
import { openBackend } from '../chat/backend.js';
import { createChatCompletion, streamChatCompletion, type ChatMessage } from '../chat/client.js';
import { CliError, ExitCode } from '../chat/errors.js';
import { addCommonOptions, settingsFrom, type CommonOptions } from '../chat/options.js';
import { style } from '../chat/render.js';
import { startSpinner } from '../progress.js';

interface RunOptions extends CommonOptions {
  json?: boolean;
  showThinking?: boolean;
}

export function register(program: Command): void {
  addCommonOptions(
    program
      .command('run')
      .summary('answer one prompt and exit (only the answer on stdout)')
      .description('Answers one prompt and exits. Only the answer is written to stdout, so the output pipes; errors go to stderr with a non-zero exit code.')
      .argument('[prompt...]', 'the prompt; "-" or none reads it from stdin'),
  )
    .option('--json', 'print the full chat.completion response as JSON instead of the answer')
    .option('--show-thinking', 'copy the thinking to stderr as it streams')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 generation failed, 2 bad arguments, 3 server unreachable or error, 4 bad model dir, 130 Ctrl-C.\n\n' +
        'Examples:\n' +
        '  dsv4 run "Write a haiku about caches"\n' +
        '  git diff | dsv4 run --system "Review this diff" -\n' +
        '  dsv4 run --json --no-think "2+2?" | jq -r .choices[0].message.content\n' +
        '  dsv4 run --url http://127.0.0.1:8000 "Hello"',
    )
    .action(async (words: string[], opts: RunOptions) => runOnce(words, opts));
}

async function runOnce(words: string[], opts: RunOptions): Promise<void> {
  const prompt = await readPrompt(words);
  const settings = settingsFrom(opts);
  const messages: ChatMessage[] = [];
  if (opts.system) messages.push({ role: 'system', content: opts.system });
  messages.push({ role: 'user', content: prompt });

  const backend = await openBackend(opts);
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.on('SIGINT', onSigint);
  try {
    if (opts.json) {
      const res = await createChatCompletion(backend, settings, messages, ac.signal).catch((err) => {
        if (ac.signal.aborted) throw new CliError('interrupted', ExitCode.interrupted);
        throw err;
      });
      process.stdout.write(JSON.stringify(res, null, 2) + '\n');
      return;
    }
    const thinkTty = Boolean(process.stderr.isTTY);
    let thought = false;
    // On a terminal, a spinner covers the wait for the answer (prefill, and thinking when not shown).
    const waiting = startSpinner(settings.thinking && !opts.showThinking ? 'thinking' : 'reading the prompt');
    const result = await streamChatCompletion(
      backend,
      settings,
      messages,
      {
        content: (d) => {
          waiting.stop();
          process.stdout.write(d);
        },
        reasoning: opts.showThinking
          ? (d) => {
              waiting.stop();
              thought = true;
              process.stderr.write(thinkTty ? style.DIM + d + style.RESET : d);
            }
          : undefined,
      },
      ac.signal,
    ).finally(() => waiting.stop());
    if (thought) process.stderr.write('\n');
    const answer = result.message.content ?? '';
    if (answer && !answer.endsWith('\n')) process.stdout.write('\n');
    if (result.finishReason === 'cancelled') throw new CliError('interrupted', ExitCode.interrupted);
    if (result.finishReason === 'length') process.stderr.write('dsv4: answer cut at --max-tokens\n');
    if (!result.message.content && result.message.reasoning_content && !opts.showThinking)
      process.stderr.write('dsv4: no answer after the thinking (--show-thinking prints it; --no-think skips it)\n');
  } finally {
    process.off('SIGINT', onSigint);
    await backend.close();
  }
}

async function readPrompt(words: string[]): Promise<string> {
  const fromArgs = words.join(' ');
  if (fromArgs && fromArgs !== '-') return fromArgs;
  if (process.stdin.isTTY) throw new CliError('no prompt: give it as an argument (dsv4 run "Hello") or pipe it in', ExitCode.usage);
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  if (!text.trim()) throw new CliError('no prompt: stdin was empty', ExitCode.usage);
  return text;
}
