// POST /anthropic/v1/messages request body (§8.1, §8.2) → ChatRequest. Anthropic content blocks become the
// encoder's OpenAI-shaped messages: thinking → reasoning_content, tool_use → tool_calls, tool_result → tool.
import type { V4Message } from './codec.js';
import type { ServerConfig } from './config.js';
import { invalidRequest } from './errors.js';
import type { ChatRequest, ToolChoice, ToolFunction } from './chat-plan.js';
import { resolveAnthropicModel } from './models.js';
import { checkRange, type Json, Reader } from './validate.js';

const EFFORTS = ['low', 'medium', 'high', 'xhigh', 'ultra', 'max'] as const;

export interface AnthropicRequest {
  chat: ChatRequest;
  stream: boolean;
  system: string;
}

export function parseMessagesRequest(cfg: ServerConfig, r: Reader, agentHeaders: (system: string) => boolean, countOnly = false): AnthropicRequest {
  r.string('model', true);
  const maxTokens = countOnly ? r.integer('max_tokens') : (r.required('max_tokens'), r.integer('max_tokens'));
  const raw = r.array('messages', true)!;
  // Claude Code 2.1.x also sends `system`-role entries inside `messages`: they join the system prompt
  // (unless the server is strict, where they stay a 400 as on DeepSeek).
  const system = [systemText(r), ...raw.flatMap((v, i) => inlineSystem(cfg, r.element('messages', i, v)))].filter(Boolean).join('\n');
  const stop = r.array('stop_sequences') ? r.stringList('stop_sequences', 16) : [];
  const stream = r.bool('stream') ?? false;
  const temperature = r.number('temperature');
  const topP = r.number('top_p');
  const topK = r.integer('top_k');
  const th = r.object('thinking');
  const thinkingType = th?.enumOf('type', ['enabled', 'disabled', 'adaptive'] as const);
  if (th && thinkingType === undefined) th.required('type');
  const effort = r.object('output_config')?.enumOf('effort', EFFORTS) ?? null;
  const userId = r.object('metadata')?.string('user_id');
  const tools = parseTools(r);
  const toolChoice = parseToolChoice(r);
  const model = resolveAnthropicModel(cfg, r.obj.model);
  checkRange('temperature', temperature, 0, 2);
  checkRange('top_p', topP, 0, 1);
  const messages: V4Message[] = [];
  if (system) messages.push({ role: 'system', content: system });
  raw.forEach((v, i) => {
    const m = r.element('messages', i, v);
    if (m.obj.role !== 'system' || cfg.strictAnthropic) convertMessage(m, messages);
  });
  void topK; // §8.2: top_k is ignored
  return {
    stream,
    system,
    chat: {
      dialect: 'anthropic',
      model,
      messages,
      tools,
      toolChoice: toolChoice ?? (tools.length ? 'auto' : null),
      thinking: thinkingType === undefined ? null : thinkingType !== 'disabled',
      effort,
      prefix: null,
      jsonMode: false,
      temperature,
      topP,
      stop,
      maxTokens,
      logprobs: false,
      agent: agentHeaders(system),
      cacheScope: userId,
    },
  };
}

function systemText(r: Reader): string {
  const v = r.obj.system;
  return v === undefined || v === null ? '' : textBlocks(r, 'system', v);
}

/** The text of a `system`-role message inside `messages`; [] for other roles. */
function inlineSystem(cfg: ServerConfig, m: Reader): string[] {
  return m.obj.role === 'system' && !cfg.strictAnthropic ? [textBlocks(m, 'content', m.required('content'))] : [];
}

/** A string, or a sequence of text blocks joined by newlines. */
function textBlocks(owner: Reader, key: string, v: Json): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) owner.typeError(key, v, 'a string or a sequence of text blocks');
  return v
    .map((b, i) => {
      const br = owner.element(key, i, b);
      br.enumOf('type', ['text'] as const) ?? br.required('type');
      return br.string('text', true)!;
    })
    .join('\n');
}

function blockText(v: Json | undefined, where: Reader): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) where.typeError('content', v, 'a string or a sequence');
  // Same joining as the reference encoder's tool_result handling.
  return v
    .map((b, i) => {
      const br = where.element('content', i, b);
      const type = br.string('type', true)!;
      if (type !== 'text') throw invalidRequest(`Unsupported content block type in tool_result: ${type}`);
      return br.string('text', true)!;
    })
    .join('\n\n');
}

function convertMessage(m: Reader, out: V4Message[]): void {
  const role = m.enumOf('role', ['user', 'assistant'] as const);
  if (!role) m.required('role');
  const c = m.required('content');
  const blocks: Reader[] = [];
  if (typeof c === 'string') {
    out.push({ role: role!, content: c });
    return;
  }
  if (!Array.isArray(c)) m.typeError('content', c, 'a string or a sequence of content blocks');
  c.forEach((b, i) => blocks.push(m.element('content', i, b)));
  if (role === 'assistant') {
    let content = '';
    let reasoning: string | undefined;
    const calls: NonNullable<V4Message['tool_calls']> = [];
    for (const b of blocks) {
      const type = b.string('type', true)!;
      if (type === 'text') content += b.string('text', true)!;
      else if (type === 'thinking') reasoning = (reasoning ?? '') + b.string('thinking', true)!;
      else if (type === 'redacted_thinking') continue;
      else if (type === 'tool_use') {
        const input = b.required('input');
        calls.push({
          id: b.string('id', true)!,
          type: 'function',
          function: { name: b.string('name', true)!, arguments: JSON.stringify(input) },
        });
      } else throw invalidRequest(`Unsupported content block type for assistant messages: ${type}`);
    }
    const msg: V4Message = { role: 'assistant', content };
    if (reasoning !== undefined) msg.reasoning_content = reasoning;
    if (calls.length) msg.tool_calls = calls;
    out.push(msg);
    return;
  }
  // user: tool results become tool messages (merged back into the user turn by the encoder), texts join.
  const texts: string[] = [];
  for (const b of blocks) {
    const type = b.string('type', true)!;
    if (type === 'text') texts.push(b.string('text', true)!);
    else if (type === 'tool_result') {
      out.push({ role: 'tool', tool_call_id: b.string('tool_use_id', true)!, content: blockText(b.obj.content, b) });
    } else throw invalidRequest(`Unsupported content block type: ${type}`);
  }
  if (texts.length || !blocks.length) out.push({ role: 'user', content: texts.join('\n') });
}

function parseTools(r: Reader): ToolFunction[] {
  const raw = r.array('tools');
  if (!raw) return [];
  const tools: ToolFunction[] = [];
  raw.forEach((t, i) => {
    const tr = r.element('tools', i, t);
    const type = tr.string('type');
    const name = tr.string('name', true)!;
    const schema = tr.object('input_schema');
    // Server tools (web_search_…, bash_…) carry a `type` and no schema: not rendered.
    if (type && type !== 'custom' && !schema) return;
    if (!schema) tr.required('input_schema');
    tools.push({ name, description: tr.string('description'), parameters: schema!.obj as Record<string, unknown> });
  });
  return tools;
}

function parseToolChoice(r: Reader): ToolChoice | undefined {
  const tc = r.object('tool_choice');
  if (!tc) return undefined;
  const type = tc.enumOf('type', ['auto', 'any', 'tool', 'none'] as const) ?? (tc.required('type') as never);
  if (type === 'tool') return { name: tc.string('name', true)! };
  return type === 'any' ? 'required' : type;
}
