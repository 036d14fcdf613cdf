// Runs the built `dsv4` binary as a child process, as a user would.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const DSV4_BIN = fileURLToPath(new URL('../../../bin/dsv4.js', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [DSV4_BIN, ...args], { env: { ...process.env, DSV4_PROGRESS: '0', ...env } });
}

/** Runs to completion, feeding `input` on stdin. */
export function runCli(args: string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const child = startCli(args, env);
  return collect(child, input);
}

export function collect(child: ChildProcessWithoutNullStreams, input?: string): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  if (input !== undefined) child.stdin.end(input);
  return new Promise((ok) => child.on('close', (code) => ok({ code, stdout, stderr })));
}

/** Resolves once the child's stdout contains `text`. */
export function waitForOutput(child: ChildProcessWithoutNullStreams, text: string): Promise<void> {
  return new Promise((ok) => {
    let seen = '';
    const on = (d: Buffer) => {
      seen += d;
      if (seen.includes(text)) {
        child.stdout.off('data', on);
        ok();
      }
    };
    child.stdout.on('data', on);
  });
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const port = (srv.address() as { port: number }).port;
  await new Promise((ok) => srv.close(ok));
  return port;
}
