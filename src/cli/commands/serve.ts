// `dsv4 serve`: the DeepSeek API (OpenAI and Anthropic dialects) over a local checkpoint.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { PriceEntry, ServerConfig } from '../../server/config.js';
import { withSpinner } from '../progress.js';
import { sizeArg } from '../size-arg.js';
import { FAST_NUMERICS_NOTE, numericsOption, speculativeOption, type Numerics } from '../numerics.js';

interface ServeOptions {
  model?: string;
  host: string;
  port: number;
  apiKey: string[];
  servedModelName: string[];
  cacheDir?: string;
  stateBudget?: number;
  prefixCache?: number;
  memoryBudget?: number;
  numerics?: Numerics;
  speculative?: 'mtp' | 'off';
  minDraftAcceptance?: number;
  maxBatch?: number;
  prefillChunk?: number;
  contextLength?: number;
  maxOutputTokens?: number;
  maxConcurrency?: number;
  maxQueued?: number;
  keepAlive?: number;
  queueTimeout?: number;
  seed?: number;
  maxBody?: number;
  cacheHitGranularity?: number;
  price: string[];
  priceFile?: string;
  currency?: string;
  balance?: number;
  enforceBalance?: boolean;
  legacyAliases: boolean;
  listAliases?: boolean;
  agentMaxEffort: boolean;
  strictAnthropic?: boolean;
  web: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function num(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

/** Where to point a browser and API clients; a wildcard listen address is shown as loopback (clickable). */
export function startupUrls(url: string, webChat: boolean): string {
  const base = url.replace(/^http:\/\/(0\.0\.0\.0|\[::\])(?=:)/, 'http://127.0.0.1');
  return (
    (webChat ? `  Web chat       ${base}/\n` : '') +
    `  OpenAI API     ${base}  (also ${base}/v1, beta features on ${base}/beta)\n` +
    `  Anthropic API  ${base}/anthropic\n`
  );
}

/** MODEL=HIT,MISS,OUTPUT in USD per 1M tokens. */
function parsePrice(spec: string): [string, PriceEntry] {
  const m = /^([^=]+)=([\d.]+),([\d.]+),([\d.]+)$/.exec(spec);
  if (!m) throw new Error(`bad --price '${spec}': expected MODEL=HIT,MISS,OUTPUT (USD per 1M tokens)`);
  return [m[1]!, { cacheHit: Number(m[2]), cacheMiss: Number(m[3]), output: Number(m[4]) }];
}

export function register(program: Command): void {
  program
    .command('serve')
    .summary('serve the DeepSeek API (OpenAI + Anthropic formats) over a model')
    .description(
      'Serves the DeepSeek API over a local checkpoint: /chat/completions (also /v1, /beta), /beta/completions (FIM), ' +
        '/models, /user/balance, /anthropic/v1/messages (+ count_tokens), /health and /metrics.',
    )
    .option('--model <dir>', 'checkpoint directory (official HF layout); default: the embedded default model')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', int, 8000)
    .option('--api-key <key>', 'accepted API key (repeatable); none = no authentication', collect, [])
    .option('--served-model-name <name>', 'model id to serve: deepseek-v4-flash and/or deepseek-v4-pro (repeatable)', collect, [])
    .option('--no-legacy-aliases', 'do not accept deepseek-chat / deepseek-reasoner')
    .option('--list-aliases', 'list the legacy aliases in /models too')
    .option('--no-agent-max-effort', 'do not default detected agent traffic (Claude Code, OpenCode) to max effort')
    .option('--strict-anthropic', 'answer 400 to system-role entries inside Anthropic messages (default: fold them into the system prompt, as Claude Code needs)')
    .option('--cache-dir <dir>', 'persist the prefix cache in this directory')
    .option('--state-budget <size>', 'memory for live sequence state, e.g. 4G', sizeArg)
    .option('--memory-budget <size>', 'RAM for routed experts, e.g. 20G: they stream from the checkpoint through an LRU cache (default: all resident)', sizeArg)
    .addOption(numericsOption())
    .addOption(speculativeOption())
    .option('--min-draft-acceptance <rate>', 'pause drafting while fewer than this share of drafts are accepted (default 0.7)', num)
    .option('--prefix-cache <size>', 'memory for the prefix cache, e.g. 1G (0 disables)', sizeArg)
    .option('--max-batch <n>', 'sequences computed together per step', int)
    .option('--prefill-chunk <n>', 'prompt tokens computed per step', int)
    .option('--context-length <n>', 'usable context in tokens (default: the model config)', int)
    .option('--max-output-tokens <n>', 'upper bound of max_tokens (default 393216)', int)
    .option('--max-concurrency <n>', 'concurrent requests per API key before 429', int)
    .option('--max-queued <n>', 'generations waiting for the engine before 503', int)
    .option('--keep-alive <ms>', 'keep-alive interval while a request is queued (ms)', int)
    .option('--queue-timeout <ms>', 'close requests not started within this (ms)', int)
    .option('--seed <n>', 'sampler seed of requests that send none (default: random per request)', int)
    .option('--max-body <size>', 'largest accepted request body, e.g. 32M', sizeArg)
    .option('--cache-hit-granularity <n>', 'report cache hits rounded down to this many tokens (1 = exact)', int)
    .option('--price <spec>', 'price MODEL=HIT,MISS,OUTPUT in USD per 1M tokens (repeatable)', collect, [])
    .option('--price-file <file>', 'JSON price table {"model": {"cacheHit","cacheMiss","output"}}')
    .option('--currency <code>', 'balance currency (USD or CNY)')
    .option('--balance <amount>', 'starting balance per API key', num)
    .option('--enforce-balance', 'answer 402 once a key has spent its balance')
    .option('--no-web', 'do not serve the web chat page at /')
    .action(async (opts: ServeOptions) => serve(opts));
}

async function serve(opts: ServeOptions): Promise<void> {
  const config: Partial<ServerConfig> = { host: opts.host, port: opts.port, apiKeys: opts.apiKey };
  if (opts.servedModelName.length) {
    for (const n of opts.servedModelName) {
      if (n !== 'deepseek-v4-flash' && n !== 'deepseek-v4-pro') {
        throw new Error(`--served-model-name must be deepseek-v4-flash or deepseek-v4-pro, not '${n}'`);
      }
    }
    config.servedModels = [...new Set(opts.servedModelName)];
  }
  const set = <K extends keyof ServerConfig>(k: K, v: ServerConfig[K] | undefined) => {
    if (v !== undefined) config[k] = v;
  };
  set('legacyAliases', opts.legacyAliases);
  set('listAliases', opts.listAliases);
  set('agentMaxEffort', opts.agentMaxEffort);
  set('strictAnthropic', opts.strictAnthropic);
  set('contextLength', opts.contextLength);
  set('maxOutputTokens', opts.maxOutputTokens);
  set('maxConcurrencyPerKey', opts.maxConcurrency);
  set('maxQueued', opts.maxQueued);
  set('keepAliveMs', opts.keepAlive);
  set('queueTimeoutMs', opts.queueTimeout);
  set('defaultSeed', opts.seed);
  set('maxBodyBytes', opts.maxBody);
  set('cacheHitGranularity', opts.cacheHitGranularity);
  set('initialBalance', opts.balance);
  set('enforceBalance', opts.enforceBalance);
  if (opts.currency) {
    if (opts.currency !== 'USD' && opts.currency !== 'CNY') throw new Error('--currency must be USD or CNY');
    config.currency = opts.currency;
  }
  if (opts.priceFile || opts.price.length) {
    const { DEFAULT_PRICES } = await import('../../server/config.js');
    const prices: Record<string, PriceEntry> = { ...DEFAULT_PRICES };
    if (opts.priceFile) {
      let table: unknown;
      try {
        table = JSON.parse(readFileSync(opts.priceFile, 'utf8'));
      } catch (e) {
        throw new Error(`cannot read --price-file ${opts.priceFile}: ${e instanceof Error ? e.message : String(e)}`);
      }
      Object.assign(prices, table);
    }
    for (const p of opts.price) {
      const [k, v] = parsePrice(p);
      prices[k] = v;
    }
    config.prices = prices;
  }

  let modelDir = opts.model;
  if (!modelDir) {
    const { ensureDefaultModel } = await import('../default-model.js');
    modelDir = await ensureDefaultModel();
  }
  const { serveModel } = await import('../../server/index.js');
  const engine = {
    ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.stateBudget !== undefined ? { stateBudgetBytes: opts.stateBudget } : {}),
    ...(opts.prefixCache !== undefined ? { prefixCacheBytes: opts.prefixCache } : {}),
    ...(opts.memoryBudget !== undefined ? { memoryBudget: opts.memoryBudget } : {}),
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
    ...(opts.prefillChunk !== undefined ? { prefillChunk: opts.prefillChunk } : {}),
    ...(opts.contextLength !== undefined ? { maxSeqLen: opts.contextLength } : {}),
    ...(opts.numerics !== undefined ? { numerics: opts.numerics } : {}),
    speculative: opts.speculative === 'mtp',
    ...(opts.minDraftAcceptance !== undefined ? { minDraftAcceptance: opts.minDraftAcceptance } : {}),
  };
  let server;
  try {
    server = await withSpinner('Loading the model', serveModel({ modelDir, config, engine, web: opts.web }));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`cannot serve ${modelDir}: ${msg}`);
  }
  process.stderr.write(`dsv4 serve: ${modelDir} on ${server.url} (models: ${server.deps.cfg.servedModels.join(', ')})\n`);
  process.stderr.write(startupUrls(server.url, server.webChat));
  if (opts.numerics === 'fast') process.stderr.write(`dsv4 serve: ${FAST_NUMERICS_NOTE}\n`);
  const stop = () => {
    process.stderr.write('dsv4 serve: shutting down\n');
    void server.shutdown().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
