// Server configuration. Defaults follow /work/shared/spec/deepseek-api.md (the "window" behaviour);
// every [INFER] point of the spec is a field here so a deployment can switch it.

export interface PriceEntry {
  /** USD per 1M tokens. */
  cacheHit: number;
  cacheMiss: number;
  output: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** Accepted API keys; empty = no authentication. */
  apiKeys: string[];
  /** The V4 ids the loaded model answers to (§3). */
  servedModels: string[];
  /** Serve the legacy aliases deepseek-chat (non-thinking) and deepseek-reasoner (thinking). */
  legacyAliases: boolean;
  /** List the aliases in /models too ([INFER] §7.1: off). */
  listAliases: boolean;
  /** Usable context (prompt + completion), §3. */
  contextLength: number;
  /** Upper bound of max_tokens, §3. */
  maxOutputTokens: number;
  /** FIM max_tokens cap, §6.3. */
  fimMaxTokens: number;
  /** Prices per served model id (§10); aliases bill as their target. */
  prices: Record<string, PriceEntry>;
  currency: 'USD' | 'CNY';
  /** Starting balance per key (granted), for /user/balance and 402. */
  initialBalance: number;
  /** Refuse with 402 once a key's balance is spent. */
  enforceBalance: boolean;
  /** Concurrent requests per key (429 above it), §11.2. */
  maxConcurrencyPerKey: number;
  /** Requests allowed to wait for the engine at once; above it 503, §11.1. */
  maxQueued: number;
  /** Keep-alive interval while queued, ms (§11.3 [INFER] 15 s). */
  keepAliveMs: number;
  /** Close a request that has not started within this, ms (§11.3: 10 min). */
  queueTimeoutMs: number;
  /** Sampler seed of requests that send none (undefined: a fresh random one each); `seed` overrides it. */
  defaultSeed?: number;
  /** Largest accepted body, bytes. */
  maxBodyBytes: number;
  /** Report cache hits rounded down to this many tokens (§9.2 [INFER] 128; 1 = exact). */
  cacheHitGranularity: number;
  /** Apply effort "max" to detected agent traffic when no effort is sent (§5.2, §12.4). */
  agentMaxEffort: boolean;
  /** Reject /chat/completions `prefix:true` outside /beta (§6.1 [INFER]). */
  requireBetaForPrefix: boolean;
  /** Refuse `system`-role entries inside Anthropic `messages` (400) instead of folding them into the system prompt. */
  strictAnthropic: boolean;
  /** system_fingerprint value echoed in responses. */
  systemFingerprint: string;
}

// §10: prices in force for most of the window (from 2026-05-31, promo made permanent).
export const DEFAULT_PRICES: Record<string, PriceEntry> = {
  'deepseek-v4-flash': { cacheHit: 0.0028, cacheMiss: 0.14, output: 0.28 },
  'deepseek-v4-pro': { cacheHit: 0.003625, cacheMiss: 0.435, output: 0.87 },
};

export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    host: '127.0.0.1',
    port: 8000,
    apiKeys: [],
    servedModels: ['deepseek-v4-flash', 'deepseek-v4-pro'],
    legacyAliases: true,
    listAliases: false,
    contextLength: 1_048_576,
    maxOutputTokens: 393_216,
    fimMaxTokens: 4096,
    prices: { ...DEFAULT_PRICES },
    currency: 'USD',
    initialBalance: 100,
    enforceBalance: false,
    maxConcurrencyPerKey: 2500,
    maxQueued: 256,
    keepAliveMs: 15_000,
    queueTimeoutMs: 600_000,
    maxBodyBytes: 32 * 1024 * 1024,
    cacheHitGranularity: 128,
    agentMaxEffort: true,
    requireBetaForPrefix: true,
    strictAnthropic: false,
    systemFingerprint: 'fp_dsv4_local',
    ...overrides,
  };
}
