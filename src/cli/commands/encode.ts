// `dsv4 encode <case.input.json>`: prints the rendered prompt of a chat-encoding
// case byte for byte (no trailing newline). Where the reference raises, prints
// {"error": "<PythonExceptionClass>"} and exits 1.
import type { Command } from 'commander';
import { caseCommandOutput } from '../../tokenizer/cases.js';

export function register(program: Command): void {
  program
    .command('encode')
    .description('render a golden-format chat-encoding case (encode_messages) to the prompt text')
    .argument('<case>', 'case file: {"function": "encode_messages", "args": {...}} or an official test input')
    .option('--thinking-mode <mode>', 'thinking mode for official-format inputs (default: as test_encoding_dsv4.py)')
    .action((file: string, opts: { thinkingMode?: 'chat' | 'thinking' }) => {
      const out = caseCommandOutput(file, 'encode', opts.thinkingMode);
      process.stdout.write(out.stdout);
      process.stderr.write(out.stderr);
      process.exitCode = out.code;
    });
}
