// Public surface of the server layer: `serveModel` wires tokenizer, engine and HTTP front together
// (what `dsv4 serve` runs); `startServer` takes an already-built engine and codec.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngine, type EngineOptions } from '../engine/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { startServer as startHttpServer, type RunningServer, type ServerOptions, type StaticAsset } from './app.js';
import type { ServerConfig } from './config.js';
import { tokenizerCodec } from './tokenizer-codec.js';

export { createHandler, type RunningServer, type ServerOptions, type StaticAsset } from './app.js';
export { defaultConfig, DEFAULT_PRICES, type ServerConfig, type PriceEntry } from './config.js';
export type { ChatCodec, OutputParser, OutputDelta, V4Message } from './codec.js';
export { tokenizerCodec } from './tokenizer-codec.js';

export interface ServeModelOptions {
  modelDir: string;
  config?: Partial<ServerConfig>;
  engine?: Omit<EngineOptions, 'modelDir'>;
  /** Mount the web chat page at / (default true). */
  web?: boolean;
}

export interface ServingModel extends RunningServer {
  /** Whether the web chat page is mounted at /. */
  webChat: boolean;
  /** Stops HTTP and the engine. */
  shutdown(): Promise<void>;
}

async function modelContext(dir: string): Promise<number | undefined> {
  try {
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { max_position_embeddings?: number };
    return cfg.max_position_embeddings;
  } catch {
    return undefined;
  }
}

/** The web chat page (UX layer), when this build has it. */
async function webAssets(): Promise<StaticAsset[]> {
  try {
    const specifier = './web/index.js';
    const mod = (await import(specifier)) as { webAssets?: () => StaticAsset[] | Promise<StaticAsset[]> };
    return typeof mod.webAssets === 'function' ? await mod.webAssets() : [];
  } catch {
    return [];
  }
}

export async function serveModel(opts: ServeModelOptions): Promise<ServingModel> {
  const tokenizer = await loadTokenizer(opts.modelDir);
  const engine = await createEngine({ modelDir: opts.modelDir, ...opts.engine });
  try {
    const real = (engine as { maxSeqLen?: unknown }).maxSeqLen;
    const ctx = typeof real === 'number' ? real : (opts.engine?.maxSeqLen ?? (await modelContext(opts.modelDir)));
    const config: Partial<ServerConfig> = { ...(ctx ? { contextLength: ctx } : {}), ...opts.config };
    const assets = opts.web === false ? [] : await webAssets();
    const server = await startHttpServer({ config, engine, codec: tokenizerCodec(tokenizer), assets });
    return {
      ...server,
      webChat: assets.some((a) => a.path === '/'),
      shutdown: async () => {
        await server.close();
        await engine.close();
      },
    };
  } catch (e) {
    await engine.close();
    throw e;
  }
}

/**
 * Starts a server either over a built engine and codec (ServerOptions) or over a model directory
 * ({ modelDir, host, port }: what `dsv4 chat/run --model` use in-process); `close()` stops everything.
 */
export async function startServer(
  opts: ServerOptions | { modelDir: string; host?: string; port?: number; quiet?: boolean; config?: Partial<ServerConfig> },
): Promise<RunningServer> {
  if ('engine' in opts) return startHttpServer(opts);
  const s = await serveModel({
    modelDir: opts.modelDir,
    config: { ...opts.config, ...(opts.host !== undefined ? { host: opts.host } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}) },
  });
  return { ...s, close: s.shutdown };
}
