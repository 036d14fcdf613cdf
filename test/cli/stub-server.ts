// A scripted DeepSeek-compatible endpoint (plus the web page's static files) for testing the CLI
// and page client side on their own: exact thinking, tool-call and usage shapes of api spec §4.6
// that a random model never produces on demand. End-to-end tests against the real server live beside these.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleWebRequest } from '../../src/server/web/index.js';

export interface StubReply {
  reasoning?: string[];
  content: string[];
  toolCalls?: { name: string; arguments: string }[];
  /** Keep sending content pieces every few ms until the client goes away (for Ctrl-C tests). */
  endless?: boolean;
}

export interface Stub {
  url: string;
  requests: Record<string, unknown>[];
  /** Number of streams the client closed before the end. */
  disconnects: number;
  /** Resolves once `n` streams have been closed by the client. */
  disconnected(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startStub(reply: (req: Record<string, unknown>) => StubReply): Promise<Stub> {
  const waiters: (() => void)[] = [];
  const stub: Stub = {
    url: '',
    requests: [],
    disconnects: 0,
    disconnected: (n) => new Promise((ok) => (stub.disconnects >= n ? ok() : waiters.push(() => stub.disconnects >= n && ok()))),
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    if (handleWebRequest(req, res)) return;
    if (req.method === 'GET' && req.url === '/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'deepseek-v4-flash', object: 'model', owned_by: 'deepseek' }, { id: 'deepseek-v4-pro', object: 'model', owned_by: 'deepseek' }] }));
      return;
    }
    const body = JSON.parse((await readBody(req)) || '{}') as Record<string, unknown>;
    if (req.method !== 'POST' || req.url !== '/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `Not Found: ${req.url}`, type: 'not_found_error', param: null, code: 'not_found' } }));
      return;
    }
    stub.requests.push(body);
    const r = reply(body);
    const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_cache_hit_tokens: 8, prompt_cache_miss_tokens: 2, completion_tokens_details: { reasoning_tokens: 2 } };
    if (!body.stream) {
      const message: Record<string, unknown> = { role: 'assistant', content: r.content.join('') };
      if (r.reasoning) message.reasoning_content = r.reasoning.join('');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'stub', object: 'chat.completion', created: 0, model: body.model, choices: [{ index: 0, message, finish_reason: 'stop' }], usage }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const send = (delta: unknown, finish: string | null = null, u: unknown = null) =>
      res.write(`data: ${JSON.stringify({ id: 'stub', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }], usage: u })}\n\n`);
    res.write(': keep-alive\n\n');
    send({ role: 'assistant', content: null, reasoning_content: '' });
    for (const t of r.reasoning ?? []) send({ content: null, reasoning_content: t });
    for (const t of r.content) send({ content: t, reasoning_content: null });
    (r.toolCalls ?? []).forEach((c, index) => {
      send({ tool_calls: [{ index, id: `call_0${index}_x`, type: 'function', function: { name: c.name, arguments: '' } }] });
      send({ tool_calls: [{ index, function: { arguments: c.arguments } }] });
    });
    if (r.endless) {
      let closed = false;
      res.on('close', () => {
        if (!closed) stub.disconnects++;
        closed = true;
        waiters.forEach((w) => w());
      });
      while (!closed) {
        send({ content: ' more', reasoning_content: null });
        await new Promise((ok) => setTimeout(ok, 20));
      }
      return;
    }
    send({ content: '', reasoning_content: null }, r.toolCalls?.length ? 'tool_calls' : 'stop', usage);
    res.end('data: [DONE]\n\n');
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.close = () =>
    new Promise((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  return stub;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += c;
  return s;
}
