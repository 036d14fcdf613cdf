// POST /chat/completions request body (§4.1, §4.2, §14) → ChatRequest. Field types and enums follow the
// deserializer's strictness; ranges give DeepSeek's messages.
import type { V4Message } from './codec.js';
import type { ServerConfig } from './config.js';
import { invalidRequest } from './errors.js';
import type { ChatRequest, ToolChoice, ToolFunction } from './chat-plan.js';
import { resolveModel } from './models.js';
import { checkStrictSchema } from './strict-schema.js';
import { checkRange, type Json, Reader } from './validate.js';

export const EFFORTS = ['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'] as const;
const ROLES = ['system', 'user', 'assistant', 'tool', 'latest_reminder'] as const;
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export interface OpenAIChatRequest {
  chat: ChatRequest;
  stream: boolean;
  includeUsage: boolean;
}

/** The sampling and streaming fields shared by chat completions and FIM (spec §4, §6.3), in schema order. */
export function readSamplingFields(r: Reader) {
  return {
    maxTokens: r.integer('max_tokens'),
    temperature: r.number('temperature'),
    topP: r.number('top_p'),
    frequencyPenalty: r.number('frequency_penalty'),
    presencePenalty: r.number('presence_penalty'),
    stop: r.stringList('stop', 16),
    stream: r.bool('stream') ?? false,
    includeUsage: r.object('stream_options')?.bool('include_usage') ?? false,
    seed: seedOf(r),
  };
}

/**
 * `seed` is outside DeepSeek's schema (§4.1: ignored), so anything but a safe integer is still ignored; an
 * integer seeds the request's sampler, making its output reproducible (same model, same request).
 */
function seedOf(r: Reader): number | undefined {
  const v = r.obj.seed;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

/** DeepSeek's ranges for the sampling fields (checked after the schema, as serde would). */
export function checkSamplingRanges(f: { temperature?: number; topP?: number; frequencyPenalty?: number; presencePenalty?: number }): void {
  checkRange('temperature', f.temperature, 0, 2);
  checkRange('top_p', f.topP, 0, 1);
  checkRange('frequency_penalty', f.frequencyPenalty, -2, 2);
  checkRange('presence_penalty', f.presencePenalty, -2, 2);
}

export function parseChatRequest(cfg: ServerConfig, r: Reader, beta: boolean, agent: boolean): OpenAIChatRequest {
  r.string('model', true);
  const messagesRaw = r.array('messages', true)!;
  const thinkingR = r.object('thinking');
  const thinkingType = thinkingR?.enumOf('type', ['enabled', 'disabled', 'adaptive'] as const);
  if (thinkingR && thinkingType === undefined) thinkingR.required('type');
  const effort = r.enumOf('reasoning_effort', EFFORTS) ?? null;
  const { maxTokens, temperature, topP, frequencyPenalty, presencePenalty, stop, stream, includeUsage, seed } =
    readSamplingFields(r);
  const rf = r.object('response_format');
  const rfType = rf?.enumOf('type', ['text', 'json_object', 'json_schema'] as const);
  if (rfType === 'json_schema') throw invalidRequest('This response_format type is unavailable now');
  const logprobs = r.bool('logprobs') ?? false;
  const topLogprobs = r.integer('top_logprobs');
  const userId = r.string('user_id');
  const tools = parseTools(r, beta);
  const toolChoice = parseToolChoice(r);

  // Semantic checks after the schema (serde reports schema errors first).
  const model = resolveModel(cfg, r.obj.model);
  if (!messagesRaw.length) throw invalidRequest('Invalid messages: at least one message is required');
  checkSamplingRanges({ temperature, topP, frequencyPenalty, presencePenalty });
  checkRange('top_logprobs', topLogprobs, 0, 20);
  if (topLogprobs !== undefined && !logprobs) throw invalidRequest('logprobs must be set to true when top_logprobs is used');
  const { messages, prefix } = parseMessages(r, messagesRaw, beta, cfg);

  return {
    stream,
    includeUsage,
    chat: {
      dialect: 'openai',
      model,
      messages,
      tools,
      toolChoice: toolChoice ?? (tools.length ? 'auto' : null),
      thinking: thinkingType === undefined ? null : thinkingType !== 'disabled',
      effort,
      prefix,
      jsonMode: rfType === 'json_object',
      temperature,
      topP,
      frequencyPenalty,
      presencePenalty,
      stop,
      maxTokens,
      seed,
      logprobs,
      topLogprobs,
      agent,
      cacheScope: userId,
    },
  };
}

function textOf(m: Reader, required: boolean, allowNull: boolean): string | null {
  const v = required ? m.required('content') : m.obj.content;
  if (v === undefined) return null;
  if (v === null) {
    if (allowNull) return null;
    m.typeError('content', v, 'a string');
  }
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    // §4.2 [INFER]: text-part arrays are joined; other parts (images) are rejected.
    const parts: string[] = [];
    v.forEach((p, i) => {
      const pr = m.element('content', i, p);
      const type = pr.string('type', true);
      if (type !== 'text') throw invalidRequest(`Unsupported content part type: ${type}`);
      parts.push(pr.string('text', true)!);
    });
    return parts.join('\n');
  }
  m.typeError('content', v, 'a string');
}

function parseMessages(r: Reader, raw: Json[], beta: boolean, cfg: ServerConfig) {
  const messages: V4Message[] = [];
  let prefix: ChatRequest['prefix'] = null;
  raw.forEach((v, i) => {
    const m = r.element('messages', i, v);
    const role = m.enumOf('role', ROLES) ?? (m.required('role') as never);
    if (role === 'assistant') {
      const content = textOf(m, false, true);
      const reasoning = m.obj.reasoning_content;
      if (reasoning !== undefined && reasoning !== null && typeof reasoning !== 'string') {
        m.typeError('reasoning_content', reasoning, 'a string');
      }
      const msg: V4Message = { role, content: content ?? '' };
      if (typeof reasoning === 'string') msg.reasoning_content = reasoning;
      const calls = m.array('tool_calls');
      if (calls?.length) msg.tool_calls = calls.map((c, j) => parseToolCall(m.element('tool_calls', j, c)));
      if (m.bool('prefix')) {
        if (i !== raw.length - 1) throw invalidRequest('Only the last message can have prefix set to true');
        if (!beta && cfg.requireBetaForPrefix) {
          throw invalidRequest('Chat prefix completion is only available on the beta endpoint (base_url=/beta)');
        }
        prefix = { content: content ?? '', reasoning: typeof reasoning === 'string' ? reasoning : null };
        return;
      }
      messages.push(msg);
    } else if (role === 'tool') {
      const content = textOf(m, true, false)!;
      messages.push({ role, content, tool_call_id: m.string('tool_call_id', true)! });
    } else {
      messages.push({ role, content: textOf(m, true, false)! });
    }
  });
  return { messages, prefix };
}

function parseToolCall(c: Reader): NonNullable<V4Message['tool_calls']>[number] {
  const id = c.string('id');
  c.enumOf('type', ['function'] as const) ?? c.required('type');
  const f = c.object('function', true)!;
  const name = f.string('name', true)!;
  const args = f.string('arguments', true)!;
  return { ...(id !== undefined ? { id } : {}), type: 'function', function: { name, arguments: args } };
}

function parseTools(r: Reader, beta: boolean): ToolFunction[] {
  const raw = r.array('tools');
  if (!raw) return [];
  if (raw.length > 128) throw invalidRequest('Invalid tools: at most 128 tools are supported');
  const tools = raw.map((t, i) => {
    const tr = r.element('tools', i, t);
    tr.enumOf('type', ['function'] as const) ?? tr.required('type');
    const f = tr.object('function', true)!;
    const name = f.string('name', true)!;
    if (!TOOL_NAME.test(name)) {
      throw invalidRequest(`Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`);
    }
    const description = f.string('description');
    const params = f.object('parameters');
    const strict = f.bool('strict') ?? false;
    return { name, description, parameters: params?.obj as Record<string, unknown> | undefined, strict };
  });
  const strict = tools.filter((t) => t.strict);
  if (strict.length) {
    // §6.2: strict mode is a /beta feature, all-or-none, with checked schemas.
    if (!beta) throw invalidRequest('Strict mode of function calling is only available on the beta endpoint (base_url=/beta)');
    if (strict.length !== tools.length) throw invalidRequest('All functions must have strict set to true when any does');
    for (const t of tools) checkStrictSchema(t.name, t.parameters ?? { type: 'object', properties: {}, required: [], additionalProperties: false });
  }
  return tools;
}

function parseToolChoice(r: Reader): ToolChoice | undefined {
  const v = r.obj.tool_choice;
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    if (v === 'none' || v === 'auto' || v === 'required') return v;
    r.fail('tool_choice', `unknown variant \`${v}\`, expected one of none, auto, required or a tool`);
  }
  const tc = r.object('tool_choice')!;
  tc.enumOf('type', ['function'] as const) ?? tc.required('type');
  return { name: tc.object('function', true)!.string('name', true)! };
}
