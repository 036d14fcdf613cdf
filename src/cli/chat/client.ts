// A small DeepSeek API client for the CLI: POST /chat/completions, streamed (SSE, api spec §4.6) or not.
// Used the same way against the in-process server (`--model`) and any compatible server (`--url`).
import { CliError, ExitCode } from './errors.js';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A message as the API takes and returns it (spec §4.2). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string | null;
  reasoning_content?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_cache_hit_tokens?: number;
  prompt_cache_miss_tokens?: number;
  completion_tokens_details?: { reasoning_tokens?: number };
}

export type Effort = 'high' | 'max';

export interface ChatSettings {
  /** API model id, e.g. deepseek-v4-flash. */
  model: string;
  thinking: boolean;
  effort: Effort;
  temperature?: number;
  maxTokens?: number;
}

export interface Endpoint {
  /** Base URL the API paths hang off, without a trailing slash (e.g. http://127.0.0.1:8000). */
  baseUrl: string;
  apiKey?: string;
}

export interface StreamHandlers {
  reasoning?(delta: string): void;
  content?(delta: string): void;
  /** Called when a tool call starts (name known) and again as its arguments grow. */
  toolCall?(index: number, call: ToolCall): void;
}

export interface ChatResult {
  message: ChatMessage;
  /** API finish_reason, or 'cancelled' when the caller aborted. */
  finishReason: string;
  usage?: Usage;
}

/** The request body for the given settings (spec §4.1, §5.1: effort only while thinking, else 400). */
export function requestBody(settings: ChatSettings, messages: ChatMessage[], stream: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: settings.model,
    messages,
    thinking: { type: settings.thinking ? 'enabled' : 'disabled' },
    stream,
  };
  if (settings.thinking) body.reasoning_effort = settings.effort;
  if (settings.temperature !== undefined) body.temperature = settings.temperature;
  if (settings.maxTokens !== undefined) body.max_tokens = settings.maxTokens;
  if (stream) body.stream_options = { include_usage: true };
  return body;
}

/** Non-streamed chat completion: the API's full response object. */
export async function createChatCompletion(
  endpoint: Endpoint,
  settings: ChatSettings,
  messages: ChatMessage[],
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const res = await post(endpoint, '/chat/completions', requestBody(settings, messages, false), signal);
  return (await res.json()) as Record<string, unknown>;
}

/** Streamed chat completion; returns the assembled message. An abort ends it early with finishReason 'cancelled'. */
export async function streamChatCompletion(
  endpoint: Endpoint,
  settings: ChatSettings,
  messages: ChatMessage[],
  handlers: StreamHandlers = {},
  signal?: AbortSignal,
): Promise<ChatResult> {
  const message: ChatMessage = { role: 'assistant', content: '' };
  let reasoning = '';
  const calls: ToolCall[] = [];
  let finishReason = 'cancelled';
  let usage: Usage | undefined;
  const assemble = (): ChatResult => {
    if (reasoning) message.reasoning_content = reasoning;
    if (calls.length) message.tool_calls = calls;
    return { message, finishReason, usage };
  };
  let res: Response;
  try {
    res = await post(endpoint, '/chat/completions', requestBody(settings, messages, true), signal);
  } catch (err) {
    if (signal?.aborted) return assemble();
    throw err;
  }
  try {
    for await (const data of sseData(res)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data) as StreamChunk;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const d = choice.delta ?? {};
      if (d.reasoning_content) {
        reasoning += d.reasoning_content;
        handlers.reasoning?.(d.reasoning_content);
      }
      if (d.content) {
        message.content += d.content;
        handlers.content?.(d.content);
      }
      for (const tc of d.tool_calls ?? []) {
        const call = (calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (tc.id) call.id = tc.id;
        if (tc.function?.name) call.function.name += tc.function.name;
        if (tc.function?.arguments) call.function.arguments += tc.function.arguments;
        handlers.toolCall?.(tc.index, call);
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  } catch (err) {
    if (!signal?.aborted) throw new CliError(`stream from ${endpoint.baseUrl} broke off: ${errText(err)}`, ExitCode.server);
    finishReason = 'cancelled';
  }
  return assemble();
}

interface StreamChunk {
  choices?: {
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[];
    };
    finish_reason?: string | null;
  }[];
  usage?: Usage | null;
}

/** Yields the `data:` payload of each SSE event; comments (`: keep-alive`) are skipped. */
export async function* sseData(res: Response): AsyncGenerator<string> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = '';
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(bytes, { stream: true }).replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
      if (data.length) yield data.join('\n');
    }
  }
}

/** POSTs JSON; turns connection failures and error statuses into one-line CliErrors. */
async function post(endpoint: Endpoint, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  const url = endpoint.baseUrl + path;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new CliError(`cannot reach ${endpoint.baseUrl}: ${errText(err)}`, ExitCode.server);
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let detail = text.trim().split('\n')[0] ?? '';
    try {
      detail = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? detail;
    } catch {
      // not JSON: keep the first line of the body
    }
    throw new CliError(`${url} answered ${res.status}${detail ? `: ${detail}` : ''}`, ExitCode.server);
  }
  return res;
}

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the server running?)',
  ENOTFOUND: 'host not found',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
};

function errText(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; message?: string };
  const code = e?.cause?.code;
  if (code && NETWORK_ERRORS[code]) return NETWORK_ERRORS[code];
  return e?.cause?.message ?? code ?? e?.message ?? String(err);
}
