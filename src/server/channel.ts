// One HTTP response, whichever way it ends: a JSON body (possibly after keep-alive blank lines), an SSE
// stream (possibly after `: keep-alive` comments), or an error envelope (§11). Writing after the client has
// gone is a no-op.
import type { ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

export class Channel {
  private headersSent = false;
  private ended = false;
  status = 0;

  constructor(
    private readonly res: ServerResponse,
    readonly mode: 'json' | 'sse',
  ) {}

  get started(): boolean {
    return this.headersSent;
  }

  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }

  private head(status: number, contentType: string): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.status = status;
    this.res.writeHead(status, {
      'content-type': contentType,
      'cache-control': 'no-cache',
      ...(contentType.startsWith('text/event-stream') ? { connection: 'keep-alive', 'x-accel-buffering': 'no' } : {}),
    });
  }

  private write(s: string): void {
    if (!this.closed) this.res.write(s);
  }

  /** §11.3: blank lines before a JSON body, SSE comments on a stream. */
  keepAlive(): void {
    if (this.mode === 'sse') {
      this.head(200, 'text/event-stream; charset=utf-8');
      this.write(': keep-alive\n\n');
    } else {
      this.head(200, 'application/json');
      this.write('\n');
    }
  }

  /** `data: <json>` (chat) or `event: <name>\ndata: <json>` (Anthropic). */
  event(data: unknown, name?: string): void {
    this.head(200, 'text/event-stream; charset=utf-8');
    const payload = typeof data === 'string' ? data : JSON.stringify(data);
    this.write(name ? `event: ${name}\ndata: ${payload}\n\n` : `data: ${payload}\n\n`);
  }

  json(status: number, body: unknown): void {
    this.head(status, 'application/json');
    this.write(JSON.stringify(body));
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  /** An error before anything was sent keeps its status; once a stream is open it becomes an in-band event. */
  error(err: ApiError, anthropicEvent = false): void {
    if (!this.headersSent) return this.json(err.status, err.body());
    if (this.mode === 'sse') {
      if (anthropicEvent) this.event({ type: 'error', error: { type: err.type, message: err.message } }, 'error');
      else this.event(err.body());
    } else {
      this.write(JSON.stringify(err.body()));
    }
    this.end();
  }
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(500, e instanceof Error ? e.message : String(e), 'server_error', 'internal_server_error');
}
