// /anthropic/v1/messages responses (§8.3) and the streaming event sequence (§8.4).
import type { ChatPlan } from './chat-plan.js';
import type { FinishReason, GenUsage } from './generation.js';
import { newResponseId } from './ids.js';
import { drive, type RunContext } from './runner.js';

export function anthropicUsage(u: GenUsage) {
  return {
    input_tokens: u.cacheMissTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: u.cacheHitTokens,
    output_tokens: u.completionTokens,
    service_tier: 'standard',
  };
}

function stopReason(finish: FinishReason, stopSequence: string | null): string {
  if (finish === 'tool_calls') return 'tool_use';
  if (finish === 'length') return 'max_tokens';
  if (stopSequence) return 'stop_sequence';
  return 'end_turn';
}

function parseInput(args: string): unknown {
  try {
    const v = JSON.parse(args);
    return v !== null && typeof v === 'object' ? v : { arguments: args };
  } catch {
    return { arguments: args };
  }
}

export async function respondMessages(ctx: RunContext, plan: ChatPlan, opts: { echoModel: string; stream: boolean }): Promise<void> {
  const id = newResponseId();
  const events = drive(ctx, { ...plan.spec, requestId: id });
  if (opts.stream) return streamMessages(ctx, plan, id, opts.echoModel, events);

  let reasoning = '';
  let text = '';
  const tools: { id: string; name: string; args: string }[] = [];
  for await (const ev of events) {
    if (ev.type === 'reasoning') reasoning += ev.text;
    else if (ev.type === 'content') text += ev.text;
    else if (ev.type === 'tool_start') tools[ev.index] = { id: ev.id, name: ev.name, args: '' };
    else if (ev.type === 'tool_args') tools[ev.index]!.args += ev.text;
    else if (ev.type === 'tools_void') tools.length = Math.min(tools.length, ev.fromIndex);
    else if (ev.type === 'done') {
      const content: object[] = [];
      // §8.3: the thinking block's signature is the message id.
      if (plan.thinking) content.push({ type: 'thinking', thinking: reasoning, signature: id });
      if (text || !tools.length) content.push({ type: 'text', text });
      for (const t of tools.filter(Boolean)) content.push({ type: 'tool_use', id: t.id, name: t.name, input: parseInput(t.args) });
      ctx.channel.json(200, {
        id,
        type: 'message',
        role: 'assistant',
        model: opts.echoModel,
        content,
        stop_reason: stopReason(ev.finish, ev.stopSequence),
        stop_sequence: ev.stopSequence,
        usage: anthropicUsage(ev.usage),
      });
    }
  }
}

async function streamMessages(
  ctx: RunContext,
  plan: ChatPlan,
  id: string,
  model: string,
  events: AsyncGenerator<import('./generation.js').GenEvent>,
): Promise<void> {
  const ch = ctx.channel;
  const send = (name: string, data: Record<string, unknown>) => ch.event({ type: name, ...data }, name);
  let index = -1;
  let open: 'thinking' | 'text' | 'tool' | null = null;
  let pinged = false;
  const toolBlock = new Map<number, number>();
  const start = (kind: 'thinking' | 'text' | 'tool', block: object) => {
    close();
    index++;
    open = kind;
    send('content_block_start', { index, content_block: block });
    // §8.4: ping follows the first content_block_start.
    if (!pinged) {
      pinged = true;
      send('ping', {});
    }
  };
  const close = () => {
    if (open === null) return;
    if (open === 'thinking') send('content_block_delta', { index, delta: { type: 'signature_delta', signature: id } });
    send('content_block_stop', { index });
    open = null;
  };
  for await (const ev of events) {
    if (ch.closed) break;
    switch (ev.type) {
      case 'started':
        send('message_start', {
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: anthropicUsage({
              promptTokens: ev.promptTokens,
              cacheHitTokens: ev.cacheHitTokens,
              cacheMissTokens: ev.promptTokens - ev.cacheHitTokens,
              completionTokens: 0,
              reasoningTokens: 0,
            }),
          },
        });
        if (plan.thinking && plan.spec.startInReasoning) start('thinking', { type: 'thinking', thinking: '', signature: '' });
        break;
      case 'reasoning':
        if (open !== 'thinking') start('thinking', { type: 'thinking', thinking: '', signature: '' });
        if (ev.text) send('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: ev.text } });
        break;
      case 'content':
        if (!ev.text) break;
        if (open !== 'text') start('text', { type: 'text', text: '' });
        send('content_block_delta', { index, delta: { type: 'text_delta', text: ev.text } });
        break;
      case 'tool_start':
        start('tool', { type: 'tool_use', id: ev.id, name: ev.name, input: {} });
        toolBlock.set(ev.index, index);
        break;
      case 'tool_args':
        if (ev.text) send('content_block_delta', { index: toolBlock.get(ev.index) ?? index, delta: { type: 'input_json_delta', partial_json: ev.text } });
        break;
      case 'done':
        if (index < 0 || open === 'thinking') start('text', { type: 'text', text: '' });
        close();
        send('message_delta', {
          delta: { stop_reason: stopReason(ev.finish, ev.stopSequence), stop_sequence: ev.stopSequence },
          usage: anthropicUsage(ev.usage),
        });
        send('message_stop', {});
        break;
    }
  }
  ch.end();
}
