// Starts the DeepSeek API server in this process on a free loopback port, for `dsv4 chat/run --model`.
// The server module is loaded lazily so `dsv4 chat --url` never pays for loading the model stack.
import { withSpinner } from '../progress.js';
import { CliError, ExitCode, errorLine } from './errors.js';

export interface LocalServer {
  url: string;
  close(): Promise<void>;
}

export interface LocalServerOptions {
  /** Context (tokens) for the engine and the server's length checks; default: the engine's. */
  contextLength?: number;
  /** RAM for routed experts (bytes); default: all resident. */
  memoryBudget?: number;
  /** Exact (default) or fast numerics. */
  numerics?: 'exact' | 'fast';
  /** MTP speculative decoding (default off). */
  speculative?: boolean;
}

export async function startLocalServer(modelDir: string, opts: LocalServerOptions = {}): Promise<LocalServer> {
  const { serveModel } = await import('../../server/index.js');
  let server: Awaited<ReturnType<typeof serveModel>>;
  try {
    server = await withSpinner(
      'Loading the model',
      serveModel({
        modelDir,
        config: { host: '127.0.0.1', port: 0 },
        engine: {
          ...(opts.contextLength ? { maxSeqLen: opts.contextLength } : {}),
          ...(opts.memoryBudget !== undefined ? { memoryBudget: opts.memoryBudget } : {}),
          ...(opts.numerics ? { numerics: opts.numerics } : {}),
          ...(opts.speculative ? { speculative: true } : {}),
        },
        web: false,
      }),
    );
  } catch (err) {
    throw new CliError(`cannot start the model in ${modelDir}: ${errorLine(err)}`, ExitCode.model);
  }
  return { url: server.url.replace(/\/+$/, ''), close: () => server.shutdown() };
}
