// Drives one generation for a dialect handler: overload check (503), keep-alives while queued and the
// queue timeout (§11.3), cancellation when the client goes away, accounting and metrics at the end.
import type { Engine } from '../engine/api.js';
import type { Accounting } from './accounting.js';
import type { Channel } from './channel.js';
import type { ChatCodec } from './codec.js';
import type { ServerConfig } from './config.js';
import { ApiError, overloaded } from './errors.js';
import { EngineFailure, type GenEvent, type GenerationSpec, runGeneration } from './generation.js';
import type { Metrics } from './metrics.js';
import { cacheScope } from './tenant.js';

export interface ServerDeps {
  cfg: ServerConfig;
  engine: Engine;
  codec: ChatCodec;
  accounting: Accounting;
  metrics: Metrics;
}

export interface RunContext {
  deps: ServerDeps;
  channel: Channel;
  key: string;
  /** tenantId(key) when the server authenticates (apiKeys set); scopes the prefix cache (tenant.ts). */
  tenant?: string;
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
  servedModel: string;
}

export async function* drive(ctx: RunContext, request: GenerationSpec): AsyncGenerator<GenEvent> {
  const { deps, channel } = ctx;
  // A cache hit never crosses API keys: the dialects' user_id scope is narrowed to the tenant here, the one
  // path every generation takes.
  const spec: GenerationSpec = { ...request, cacheScope: cacheScope(ctx.tenant, request.cacheScope) };
  const m = deps.metrics;
  if (m.waiting >= deps.cfg.maxQueued) throw overloaded();
  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  ctx.signal.addEventListener('abort', onClientGone, { once: true });
  if (ctx.signal.aborted) abort.abort();
  let waiting = true;
  m.waiting++;
  m.generations++;
  let keepAlive: NodeJS.Timeout | null = null;
  let timeout: NodeJS.Timeout | null = null;
  let timedOut = false;
  const stopWaiting = () => {
    if (!waiting) return;
    waiting = false;
    m.waiting--;
    if (keepAlive) clearInterval(keepAlive);
    if (timeout) clearTimeout(timeout);
  };
  let finished = false;
  try {
    for await (const ev of runGeneration(deps.engine, deps.codec, spec, abort.signal)) {
      if (ev.type === 'queued') {
        if (!keepAlive && waiting) {
          keepAlive = setInterval(() => channel.keepAlive(), deps.cfg.keepAliveMs);
          timeout = setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, deps.cfg.queueTimeoutMs);
        }
        continue;
      }
      if (ev.type === 'started') stopWaiting();
      if (ev.type === 'done') {
        finished = true;
        const u = ev.usage;
        m.promptTokens += u.promptTokens;
        m.completionTokens += u.completionTokens;
        m.cacheHitTokens += u.cacheHitTokens;
        deps.accounting.record(ctx.key, ctx.servedModel, u);
      }
      yield ev;
    }
  } catch (e) {
    if (e instanceof EngineFailure) throw new ApiError(500, `Generation failed: ${e.message}`, 'server_error', 'internal_server_error');
    throw e;
  } finally {
    stopWaiting();
    ctx.signal.removeEventListener('abort', onClientGone);
    if (!finished) m.cancelled++;
  }
  if (timedOut) {
    // §11.3: not started within the limit → the server closes the connection.
    channel.end();
  }
}
