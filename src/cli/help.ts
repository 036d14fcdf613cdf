// Top-level help and usage-error behaviour of the `dsv4` program: usage errors are one line
// (`dsv4: unknown option '--x' (dsv4 run --help for usage)`) with exit code 2, and `dsv4 --help`
// ends with a getting-started section. Called by main.ts before the subcommands register, so they
// inherit it.
import type { Command } from 'commander';
import { ExitCode } from './chat/errors.js';

export const GETTING_STARTED = `
Getting started:
  dsv4 serve                  the DeepSeek API and a web chat page on http://127.0.0.1:8000
  dsv4 chat                   chat in the terminal
  dsv4 run "Hello"            one answer on stdout
  dsv4 info DIR               what a checkpoint holds and needs

Models: --model DIR runs a checkpoint in the official Hugging Face layout (config.json,
model.safetensors.index.json, *.safetensors, tokenizer.json), e.g. DeepSeek-V4-Flash. Without
--model, dsv4 uses its embedded default: a small model with random weights, generated on first
use into $DSV4_HOME (default ~/.cache/dsv4). It shows the machinery works; its answers are noise.

Environment: DSV4_HOME (cache dir), DEEPSEEK_API_KEY (key for --url), DSV4_PROGRESS=0|1.
Exit codes: 0 ok, 1 failed, 2 bad arguments, 3 server unreachable or error, 4 bad model
directory, 130 interrupted. 'dsv4 help <command>' shows a command's options.
`;

export function configureProgram(program: Command): void {
  program
    .addHelpText('after', GETTING_STARTED)
    .showHelpAfterError(false)
    .configureOutput({
      // Usage errors: one line, pointing at the right help.
      outputError: (text, write) => {
        const msg = text.trim().replace(/^error: /, '').replace(/\s*\n+\s*/g, ' ');
        const sub = process.argv.slice(2).find((a) => !a.startsWith('-'));
        const help = sub && program.commands.some((c) => c.name() === sub) ? `dsv4 ${sub} --help` : 'dsv4 --help';
        write(`dsv4: ${msg} (see '${help}')\n`);
      },
    })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ExitCode.usage));
}
