// `dsv4 encode <case.input.json>`: prints the rendered prompt of a chat-encoding
// case byte for byte (no trailing newline). Where the reference raises, prints
// {"error": "<PythonExceptionClass>"} and exits 1.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { caseErrorReport, runCase } from '../../tokenizer/cases.js';

export function register(program: Command): void {
  program
    .command('encode')
    .description('render a golden-format chat-encoding case (encode_messages) to the prompt text')
    .argument('<case>', 'case file: {"function": "encode_messages", "args": {...}} or an official test input')
    .option('--thinking-mode <mode>', 'thinking mode for official-format inputs (chat|thinking)')
    .action((file: string, opts: { thinkingMode?: 'chat' | 'thinking' }) => {
      const text = readFileSync(file, 'utf8');
      try {
        const r = runCase(text, file, opts.thinkingMode);
        if (r.kind !== 'encode') throw new Error('this case is a parse case; use `dsv4 parse`');
        process.stdout.write(r.prompt);
      } catch (err) {
        const report = caseErrorReport(err);
        if (!report) throw err;
        process.stdout.write(report.stdout);
        process.stderr.write(report.stderr);
        process.exitCode = 1;
      }
    });
}
