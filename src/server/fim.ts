// POST /beta/completions: FIM completion (§6.3), always non-thinking, max_tokens capped at 4K.
import type { SamplingParams } from '../engine/api.js';
import { contextOverflow, invalidRequest, maxTokensRange } from './errors.js';
import type { GenUsage, Logprob } from './generation.js';
import { newResponseId } from './ids.js';
import { checkSamplingRanges, readSamplingFields } from './openai-request.js';
import { resolveModel } from './models.js';
import { drive, type RunContext } from './runner.js';
import { checkRange, type Reader } from './validate.js';

export async function handleFim(ctx: RunContext & { reader: Reader }): Promise<void> {
  const { cfg, codec } = ctx.deps;
  const r = ctx.reader;
  r.string('model', true);
  const prompt = r.string('prompt', true)!;
  const suffix = r.string('suffix') ?? '';
  const { maxTokens, temperature, topP, frequencyPenalty, presencePenalty, stop, stream, includeUsage, seed } =
    readSamplingFields(r);
  const echo = r.bool('echo') ?? false;
  const logprobs = r.integer('logprobs');
  const model = resolveModel(cfg, r.obj.model);
  checkSamplingRanges({ temperature, topP, frequencyPenalty, presencePenalty });
  checkRange('logprobs', logprobs, 0, 20);
  if (maxTokens !== undefined && (maxTokens < 1 || maxTokens > cfg.fimMaxTokens)) throw maxTokensRange(cfg.fimMaxTokens);

  const tokens = codec.tokenize(codec.renderFim(prompt, suffix));
  const room = cfg.contextLength - tokens.length;
  if (maxTokens !== undefined && maxTokens > room) throw contextOverflow(cfg.contextLength, tokens.length, maxTokens);
  if (room < 1) throw contextOverflow(cfg.contextLength, tokens.length, 1);
  if (!prompt && !suffix) throw invalidRequest('Invalid prompt: prompt must not be empty');
  const sampling: SamplingParams = {
    temperature: temperature ?? 1,
    topP: topP ?? 1,
    topK: 0,
    frequencyPenalty: frequencyPenalty ?? 0,
    presencePenalty: presencePenalty ?? 0,
    maxTokens: Math.min(maxTokens ?? cfg.fimMaxTokens, room),
    seed: seed ?? cfg.defaultSeed,
    stop,
    stopAtEos: true,
    logprobs: logprobs !== undefined,
    topLogprobs: logprobs,
  };
  const id = newResponseId();
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'text_completion', created, model: model.echo, system_fingerprint: cfg.systemFingerprint };
  const events = drive(ctx, {
    prompt: tokens,
    sampling,
    startInReasoning: false,
    jsonAnswer: false,
    raw: true,
    requestId: id,
    cacheHitGranularity: cfg.cacheHitGranularity,
  });
  const wantLp = logprobs !== undefined;
  let text = echo ? prompt : '';
  const lps: Logprob[] = [];
  const choice = (t: string, lp: Logprob[], offset: number, finish: string | null) => ({
    index: 0,
    text: t,
    logprobs: wantLp ? completionLogprobs(lp, offset) : null,
    finish_reason: finish,
  });
  let offset = text.length;
  if (stream) {
    const ch = ctx.channel;
    for await (const ev of events) {
      if (ch.closed) break;
      if (ev.type === 'started' && echo && prompt) {
        ch.event({ ...base, choices: [choice(prompt, [], 0, null)], ...(includeUsage ? { usage: null } : {}) });
      } else if (ev.type === 'content') {
        ch.event({ ...base, choices: [choice(ev.text, ev.logprobs, offset, null)], ...(includeUsage ? { usage: null } : {}) });
        offset += ev.text.length;
      } else if (ev.type === 'done') {
        ch.event({ ...base, choices: [choice('', [], offset, ev.finish)], usage: fimUsage(ev.usage) });
        ch.event('[DONE]');
      }
    }
    ch.end();
    return;
  }
  for await (const ev of events) {
    if (ev.type === 'content') {
      text += ev.text;
      lps.push(...ev.logprobs);
    } else if (ev.type === 'done') {
      ctx.channel.json(200, { ...base, choices: [choice(text, lps, echo ? prompt.length : 0, ev.finish)], usage: fimUsage(ev.usage) });
    }
  }
}

function fimUsage(u: GenUsage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_cache_hit_tokens: u.cacheHitTokens,
    prompt_cache_miss_tokens: u.cacheMissTokens,
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

function completionLogprobs(lps: Logprob[], start: number) {
  const text_offset: number[] = [];
  let off = start;
  for (const lp of lps) {
    text_offset.push(off);
    off += lp.token.length;
  }
  return {
    text_offset,
    token_logprobs: lps.map((l) => l.logprob),
    tokens: lps.map((l) => l.token),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [t.token, t.logprob]))),
  };
}
