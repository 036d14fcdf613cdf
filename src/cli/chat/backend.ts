// Where `dsv4 chat` and `dsv4 run` send their requests: a running server (`--url`), or an
// in-process server on a free loopback port over a local checkpoint (`--model DIR`, or the
// embedded default model when neither is given). Both are then used through the same HTTP API.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureDefaultModel } from '../default-model.js';
import type { Endpoint } from './client.js';
import { CliError, ExitCode, errorLine } from './errors.js';
import { startLocalServer } from './local-server.js';

export interface BackendOptions {
  model?: string;
  url?: string;
  apiKey?: string;
  /** Local model only: context length in tokens. */
  contextLength?: number;
  /** Local model only: RAM for routed experts (bytes). */
  memoryBudget?: number;
  /** Local model only: exact or fast numerics. */
  numerics?: 'exact' | 'fast';
  /** Local model only: MTP speculative decoding. */
  speculative?: 'mtp' | 'off';
}

export interface Backend extends Endpoint {
  /** What the user is talking to, for the banner: a directory or a URL. */
  describe: string;
  close(): Promise<void>;
}

export async function openBackend(opts: BackendOptions): Promise<Backend> {
  if (opts.model && opts.url) throw new CliError('use either --model DIR or --url URL, not both', ExitCode.usage);
  if (opts.url) {
    if (opts.contextLength) throw new CliError('--context-length applies to a local model, not to --url', ExitCode.usage);
    if (opts.memoryBudget !== undefined) throw new CliError('--memory-budget applies to a local model, not to --url', ExitCode.usage);
    const baseUrl = normalizeBaseUrl(opts.url);
    const apiKey = opts.apiKey ?? process.env.DEEPSEEK_API_KEY ?? process.env.DSV4_API_KEY;
    return { baseUrl, apiKey, describe: baseUrl, close: async () => {} };
  }
  const dir = opts.model ? checkModelDir(opts.model) : await ensureDefaultModel();
  const server = await startLocalServer(dir, { contextLength: opts.contextLength, memoryBudget: opts.memoryBudget, numerics: opts.numerics, speculative: opts.speculative === 'mtp' });
  return { baseUrl: server.url, describe: opts.model ? dir : `embedded default model (${dir})`, close: server.close };
}

/** Accepts `host:port`, `http://host:port`, `.../v1`; strips a trailing `/chat/completions` or slash. */
export function normalizeBaseUrl(raw: string): string {
  let url = raw.trim();
  if (!/^https?:\/\//i.test(url)) url = `http://${url}`;
  try {
    new URL(url);
  } catch {
    throw new CliError(`--url ${raw} is not a URL (example: http://127.0.0.1:8000)`, ExitCode.usage);
  }
  return url.replace(/\/+$/, '').replace(/\/chat\/completions$/, '');
}

/** Resolves and checks a `--model` directory before any heavy work. */
export function checkModelDir(dir: string): string {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new CliError(`--model ${dir}: no such directory`, ExitCode.model);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch (err) {
    throw new CliError(`--model ${dir}: ${errorLine(err)}`, ExitCode.model);
  }
  if (!isDir) throw new CliError(`--model ${dir}: not a directory (give the checkpoint folder holding config.json)`, ExitCode.model);
  if (!existsSync(join(abs, 'config.json')))
    throw new CliError(`--model ${dir}: no config.json here; expected a checkpoint in the official Hugging Face layout`, ExitCode.model);
  return abs;
}
