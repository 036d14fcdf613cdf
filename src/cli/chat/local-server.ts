// Starts the DeepSeek API server in this process on a free loopback port, for `dsv4 chat/run --model`.
// The server module is loaded lazily so `dsv4 chat --url` never pays for loading the model stack.
import { CliError, ExitCode, errorLine } from './errors.js';

export interface LocalServer {
  url: string;
  close(): Promise<void>;
}

export async function startLocalServer(modelDir: string): Promise<LocalServer> {
  const specifier = '../../server/index.js';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`cannot load the server module: ${errorLine(err)}`, ExitCode.failure);
  }
  const start = mod.startServer as
    | ((o: { modelDir: string; host: string; port: number; quiet?: boolean }) => Promise<{ url?: string; port?: number; close(): Promise<void> }>)
    | undefined;
  if (typeof start !== 'function') throw new CliError('this build has no in-process server; use --url', ExitCode.failure);
  let server: Awaited<ReturnType<typeof start>>;
  try {
    server = await start({ modelDir, host: '127.0.0.1', port: 0, quiet: true });
  } catch (err) {
    throw new CliError(`cannot start the model in ${modelDir}: ${errorLine(err)}`, ExitCode.model);
  }
  const url = server.url ?? `http://127.0.0.1:${server.port}`;
  return { url: url.replace(/\/+$/, ''), close: () => server.close() };
}
