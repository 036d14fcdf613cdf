// dsv4 command-line entry point. Each subcommand lives in its own file under
// ./commands and registers itself on the program; this file only wires them.
import { Command } from 'commander';
import { commands } from './commands/index.js';
import { configureProgram } from './help.js';

const program = new Command();
program
  .name('dsv4')
  .description('DeepSeek-V4 runtime: exact forward pass, chat encoding, DeepSeek-compatible API server')
  .version('0.1.0');
configureProgram(program);

for (const register of commands) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`dsv4: ${msg}\n`);
  process.exit(typeof (err as { exitCode?: unknown })?.exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1);
});
