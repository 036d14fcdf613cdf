// `dsv4 parse <case.input.json>`: prints the parsed assistant message of a
// parse_message_from_completion_text case as JSON (indent 2, as the goldens).
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { caseErrorReport, runCase } from '../../tokenizer/cases.js';
import { dumpsIndented } from '../../tokenizer/pyjson.js';

export function register(program: Command): void {
  program
    .command('parse')
    .description('parse the completion text of a golden-format case (parse_message_from_completion_text)')
    .argument('<case>', 'case file: {"function": "parse_message_from_completion_text", "args": {...}}')
    .action((file: string) => {
      const text = readFileSync(file, 'utf8');
      try {
        const r = runCase(text, file);
        if (r.kind !== 'parse') throw new Error('this case is an encode case; use `dsv4 encode`');
        process.stdout.write(dumpsIndented(r.message) + '\n');
      } catch (err) {
        const report = caseErrorReport(err);
        if (!report) throw err;
        process.stdout.write(report.stdout);
        process.stderr.write(report.stderr);
        process.exitCode = 1;
      }
    });
}
