// `dsv4 parse <case.input.json>`: prints the parsed assistant message of a
// parse_message_from_completion_text case as JSON (indent 2, as the goldens).
// Where the reference raises, prints {"error": "<PythonExceptionClass>"} and exits 1.
import type { Command } from 'commander';
import { caseCommandOutput } from '../../tokenizer/cases.js';

export function register(program: Command): void {
  program
    .command('parse')
    .description('parse the completion text of a golden-format case (parse_message_from_completion_text)')
    .argument('<case>', 'case file: {"function": "parse_message_from_completion_text", "args": {...}}')
    .action((file: string) => {
      const out = caseCommandOutput(file, 'parse');
      process.stdout.write(out.stdout);
      process.stderr.write(out.stderr);
      process.exitCode = out.code;
    });
}
