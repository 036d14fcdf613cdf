// /chat/completions responses: the non-streaming object (§4.3-4.5) and the SSE chunk sequence (§4.6).
import { newResponseId } from './ids.js';
import type { FinishReason, GenEvent, GenUsage, Logprob } from './generation.js';
import type { ChatPlan } from './chat-plan.js';
import { drive, type RunContext } from './runner.js';

export function usageObject(u: GenUsage, thinking: boolean) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cacheHitTokens },
    ...(thinking ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
    prompt_cache_hit_tokens: u.cacheHitTokens,
    prompt_cache_miss_tokens: u.cacheMissTokens,
  };
}

export function logprobEntry(lp: Logprob) {
  return {
    token: lp.token,
    logprob: lp.logprob,
    bytes: lp.bytes,
    top_logprobs: lp.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  };
}

interface ToolAcc {
  index: number;
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export async function respondChat(
  ctx: RunContext,
  plan: ChatPlan,
  opts: { echoModel: string; stream: boolean; includeUsage: boolean; logprobs: boolean },
): Promise<void> {
  const id = newResponseId();
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'chat.completion.chunk', created, model: opts.echoModel, system_fingerprint: ctx.deps.cfg.systemFingerprint };
  const thinking = plan.thinking;
  const events = drive(ctx, { ...plan.spec, requestId: id });

  if (opts.stream) {
    const ch = ctx.channel;
    const chunk = (delta: object, extra: { logprobs?: object | null; finish?: FinishReason; usage?: object } = {}) => {
      const c: Record<string, unknown> = {
        ...base,
        choices: [{ index: 0, delta, logprobs: extra.logprobs ?? null, finish_reason: extra.finish ?? null }],
      };
      if (extra.usage) c.usage = extra.usage;
      else if (opts.includeUsage) c.usage = null;
      ch.event(c);
    };
    for await (const ev of events) {
      if (ch.closed) break;
      switch (ev.type) {
        case 'started':
          chunk(plan.thinking ? { role: 'assistant', content: null, reasoning_content: '' } : { role: 'assistant', content: '' });
          break;
        case 'reasoning':
          chunk({ content: null, reasoning_content: ev.text }, { logprobs: lpObj(opts.logprobs, null, ev.logprobs) });
          break;
        case 'content':
          chunk(plan.thinking ? { content: ev.text, reasoning_content: null } : { content: ev.text }, {
            logprobs: lpObj(opts.logprobs, ev.logprobs, null),
          });
          break;
        case 'tool_start':
          chunk({ tool_calls: [{ index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } }] });
          break;
        case 'tool_args':
          chunk({ tool_calls: [{ index: ev.index, function: { arguments: ev.text } }] });
          break;
        case 'done':
          chunk(plan.thinking ? { content: '', reasoning_content: null } : { content: '' }, {
            finish: ev.finish,
            usage: usageObject(ev.usage, thinking),
          });
          ch.event('[DONE]');
          ch.end();
          break;
      }
    }
    ch.end();
    return;
  }

  let content = '';
  let reasoning = '';
  const tools: ToolAcc[] = [];
  const lpContent: object[] = [];
  const lpReasoning: object[] = [];
  for await (const ev of events) {
    if (ev.type === 'reasoning') {
      reasoning += ev.text;
      for (const lp of ev.logprobs) lpReasoning.push(logprobEntry(lp));
    } else if (ev.type === 'content') {
      content += ev.text;
      for (const lp of ev.logprobs) lpContent.push(logprobEntry(lp));
    } else if (ev.type === 'tool_start') {
      tools[ev.index] = { index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } };
    } else if (ev.type === 'tool_args') {
      tools[ev.index]!.function.arguments += ev.text;
    } else if (ev.type === 'tools_void') {
      tools.length = Math.min(tools.length, ev.fromIndex);
    } else if (ev.type === 'done') {
      const message: Record<string, unknown> = { role: 'assistant', content };
      if (plan.thinking) message.reasoning_content = reasoning;
      if (tools.length) message.tool_calls = tools.filter(Boolean);
      ctx.channel.json(200, {
        id,
        object: 'chat.completion',
        created,
        model: opts.echoModel,
        choices: [
          {
            index: 0,
            message,
            logprobs: opts.logprobs
              ? { content: lpContent.length ? lpContent : null, reasoning_content: lpReasoning.length ? lpReasoning : null }
              : null,
            finish_reason: ev.finish,
          },
        ],
        usage: usageObject(ev.usage, thinking),
        system_fingerprint: ctx.deps.cfg.systemFingerprint,
      });
    }
  }
}

function lpObj(enabled: boolean, content: Logprob[] | null, reasoning: Logprob[] | null): object | null {
  if (!enabled) return null;
  const c = content?.length ? content.map(logprobEntry) : null;
  const r = reasoning?.length ? reasoning.map(logprobEntry) : null;
  return c || r ? { content: c, reasoning_content: r } : null;
}
