// The HTTP front: routing (§2.1), authentication (§2.2), body limits and JSON parsing (§2.3), per-key
// concurrency (§11.2), health and metrics. Model math never runs here: the engine works off the event loop.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/api.js';
import { Accounting } from './accounting.js';
import { parseMessagesRequest } from './anthropic-request.js';
import { respondMessages } from './anthropic.js';
import { Channel, toApiError } from './channel.js';
import { looksLikeAgent, planChat } from './chat-plan.js';
import type { ChatCodec } from './codec.js';
import { defaultConfig, type ServerConfig } from './config.js';
import { ApiError, authError, concurrencyError, insufficientBalance, notFound } from './errors.js';
import { handleFim } from './fim.js';
import { Metrics } from './metrics.js';
import { listModels } from './models.js';
import { parseChatRequest } from './openai-request.js';
import { respondChat } from './openai.js';
import type { RunContext, ServerDeps } from './runner.js';
import { tenantId } from './tenant.js';
import { Reader } from './validate.js';

type Handler = (c: RequestCtx) => Promise<void>;

interface RequestCtx {
  deps: ServerDeps;
  req: IncomingMessage;
  res: ServerResponse;
  key: string;
  /** Set when the server authenticates: the key's tenant id (tenant.ts), never the key itself. */
  tenant?: string;
  path: string;
  signal: AbortSignal;
}

export interface StaticAsset {
  path: string;
  contentType: string;
  body: Buffer;
}

export interface ServerOptions {
  config?: Partial<ServerConfig>;
  engine: Engine;
  codec: ChatCodec;
  /** Extra GET routes (the web chat page). */
  assets?: StaticAsset[];
}

export interface RunningServer {
  url: string;
  port: number;
  deps: ServerDeps;
  server: Server;
  close(): Promise<void>;
}

const ANON = 'anonymous';
const HEAD_PATHS = new Set(['/', '/v1', '/beta', '/anthropic', '/anthropic/v1', '/health', '/healthz', '/metrics']);

export function createDeps(opts: ServerOptions): ServerDeps {
  const cfg = defaultConfig(opts.config);
  // The usable context never exceeds what the engine really has, so an overlong request is a 400 (§3), not an
  // engine failure. Read defensively: an engine built elsewhere may not report it.
  const engineCtx = (opts.engine as { maxSeqLen?: unknown }).maxSeqLen;
  if (typeof engineCtx === 'number' && engineCtx > 0 && engineCtx < cfg.contextLength) cfg.contextLength = engineCtx;
  return { cfg, engine: opts.engine, codec: opts.codec, accounting: new Accounting(cfg), metrics: new Metrics() };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const deps = createDeps(opts);
  const handler = createHandler(deps, opts.assets ?? []);
  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000 }, handler);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.cfg.port, deps.cfg.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = deps.cfg.host.includes(':') ? `[${deps.cfg.host}]` : deps.cfg.host;
  return {
    url: `http://${host}:${port}`,
    port,
    deps,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function createHandler(deps: ServerDeps, assets: StaticAsset[]) {
  const active = new Map<string, number>();
  const posts: Record<string, Handler> = {
    '/chat/completions': (c) => chat(c, false),
    '/v1/chat/completions': (c) => chat(c, false),
    '/beta/chat/completions': (c) => chat(c, true),
    '/beta/completions': fim,
    '/anthropic/v1/messages': messages,
    '/anthropic/v1/messages/count_tokens': countTokens,
  };
  const gets: Record<string, Handler> = {
    '/models': models,
    '/v1/models': models,
    '/user/balance': async (c) => new Channel(c.res, 'json').json(200, deps.accounting.balance(c.key)),
  };
  const assetMap = new Map(assets.map((a) => [a.path, a]));

  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const route = path in posts || path in gets ? path : 'other';
    res.on('finish', () => deps.metrics.countRequest(route, res.statusCode));
    const fail = (e: unknown) => {
      const err = toApiError(e);
      if (err.status >= 500) process.stderr.write(`dsv4 serve: ${req.method} ${path}: ${err.message}\n`);
      new Channel(res, 'json').error(err);
    };
    try {
      if (req.method === 'HEAD') {
        // Clients probe base URLs before use (Claude Code 2.1.x: HEAD /anthropic, sometimes HEAD /).
        req.resume();
        res.writeHead(HEAD_PATHS.has(path) || path in posts || path in gets || assetMap.has(path) ? 200 : 404);
        return void res.end();
      }
      if (req.method === 'GET' && (path === '/health' || path === '/healthz')) {
        return void new Channel(res, 'json').json(200, {
          status: 'ok',
          models: deps.cfg.servedModels,
          active_requests: deps.metrics.active,
          waiting_generations: deps.metrics.waiting,
        });
      }
      if (req.method === 'GET' && path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        return void res.end(deps.metrics.text(safeStats(deps.engine)));
      }
      const asset = req.method === 'GET' ? assetMap.get(path) : undefined;
      if (asset) {
        res.writeHead(200, { 'content-type': asset.contentType });
        return void res.end(asset.body);
      }
      const h = req.method === 'POST' ? posts[path] : req.method === 'GET' ? gets[path] : undefined;
      if (!h) {
        req.resume();
        const known = path in posts || path in gets;
        throw known ? new ApiError(405, `Method ${req.method} not allowed on ${path}`, 'invalid_request_error') : notFound(path);
      }
      const key = authenticate(deps.cfg, req, path.startsWith('/anthropic/'));
      const abort = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      const limited = req.method === 'POST' && path !== '/anthropic/v1/messages/count_tokens';
      if (limited) {
        const n = (active.get(key) ?? 0) + 1;
        if (n > deps.cfg.maxConcurrencyPerKey) {
          req.resume();
          throw concurrencyError(n, deps.cfg.maxConcurrencyPerKey);
        }
        if (deps.cfg.enforceBalance && deps.accounting.remaining(key) <= 0) {
          req.resume();
          throw insufficientBalance();
        }
        active.set(key, n);
        deps.metrics.active++;
      }
      const release = () => {
        if (!limited) return;
        active.set(key, (active.get(key) ?? 1) - 1);
        deps.metrics.active--;
      };
      const tenant = deps.cfg.apiKeys.length ? tenantId(key) : undefined;
      h({ deps, req, res, key, tenant, path, signal: abort.signal })
        .catch(fail)
        .finally(() => {
          release();
          if (!res.writableEnded && !res.destroyed) res.end();
        });
    } catch (e) {
      fail(e);
    }
  };

  async function chat(c: RequestCtx, beta: boolean): Promise<void> {
    const r = await readJson(c.req, deps.cfg.maxBodyBytes);
    const parsed = parseChatRequest(deps.cfg, r, beta, looksLikeAgent(c.req.headers));
    const plan = planChat(deps.cfg, deps.codec, parsed.chat);
    const channel = new Channel(c.res, parsed.stream ? 'sse' : 'json');
    await respondChat(runCtx(c, channel, parsed.chat.model.served), plan, {
      echoModel: parsed.chat.model.echo,
      stream: parsed.stream,
      includeUsage: parsed.includeUsage,
      logprobs: parsed.chat.logprobs,
    }).catch((e) => channel.error(toApiError(e)));
  }

  async function fim(c: RequestCtx): Promise<void> {
    const reader = await readJson(c.req, deps.cfg.maxBodyBytes);
    const stream = reader.obj.stream === true;
    const channel = new Channel(c.res, stream ? 'sse' : 'json');
    await handleFim({ ...runCtx(c, channel, ''), reader }).catch((e) => channel.error(toApiError(e)));
  }

  async function messages(c: RequestCtx): Promise<void> {
    const r = await readJson(c.req, deps.cfg.maxBodyBytes);
    const parsed = parseMessagesRequest(deps.cfg, r, (system) => looksLikeAgent(c.req.headers, system));
    const plan = planChat(deps.cfg, deps.codec, parsed.chat);
    const channel = new Channel(c.res, parsed.stream ? 'sse' : 'json');
    await respondMessages(runCtx(c, channel, parsed.chat.model.served), plan, {
      echoModel: parsed.chat.model.echo,
      stream: parsed.stream,
    }).catch((e) => channel.error(toApiError(e), true));
  }

  async function countTokens(c: RequestCtx): Promise<void> {
    const r = await readJson(c.req, deps.cfg.maxBodyBytes);
    const parsed = parseMessagesRequest(deps.cfg, r, (system) => looksLikeAgent(c.req.headers, system), true);
    const plan = planChat(deps.cfg, deps.codec, { ...parsed.chat, maxTokens: undefined });
    new Channel(c.res, 'json').json(200, { input_tokens: plan.spec.prompt.length });
  }

  async function models(c: RequestCtx): Promise<void> {
    new Channel(c.res, 'json').json(200, listModels(deps.cfg));
  }

  function runCtx(c: RequestCtx, channel: Channel, served: string): RunContext {
    return { deps, channel, key: c.key, tenant: c.tenant, signal: c.signal, servedModel: served };
  }
}

function safeStats(engine: Engine): Record<string, number> {
  try {
    return engine.stats();
  } catch {
    return {};
  }
}

/** §2.2: Bearer everywhere; x-api-key too on /anthropic. */
function authenticate(cfg: ServerConfig, req: IncomingMessage, anthropic: boolean): string {
  const auth = req.headers.authorization;
  let key: string | null = null;
  if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) key = auth.replace(/^bearer\s+/i, '').trim();
  const xKey = req.headers['x-api-key'];
  if (anthropic && typeof xKey === 'string' && (!key || !cfg.apiKeys.includes(key))) key = xKey.trim();
  if (!cfg.apiKeys.length) return key || ANON;
  if (!key || !cfg.apiKeys.includes(key)) {
    req.resume();
    throw authError(key);
  }
  return key;
}

/** Reads a JSON body under the size limit; syntax errors use axum's wording (§2.3). */
export async function readJson(req: IncomingMessage, limit: number): Promise<Reader> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new ApiError(413, `Request body too large: ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new ApiError(413, `Request body too large: exceeds the limit of ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(msg);
    const at = pos ? Number(pos[1]) : text.length;
    const before = text.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    const what = text.trim() === '' ? 'EOF while parsing a value' : msg.replace(/ in JSON at position \d+.*$/, '').replace(/ \(line \d+ column \d+\)$/, '');
    throw new ApiError(400, `Failed to parse the request body as JSON: ${what} at line ${line} column ${column}`);
  }
  return Reader.root(body, text.length);
}
