// Dialect-independent planning of a chat generation: thinking and effort semantics (§5), pass-back rules
// (§5.4, §8.2), tool choice (§5.6), prefix completion (§6.1), token limits (§3), sampling (§5.3).
// Both openai.ts and anthropic.ts normalize their request into a ChatRequest and call planChat().
import type { SamplingParams } from '../engine/api.js';
import { DsmlMachine } from '../engine/dsml-constraint.js';
import type { ChatCodec, V4Message } from './codec.js';
import type { ServerConfig } from './config.js';
import { contextOverflow, invalidRequest, maxTokensRange } from './errors.js';
import type { GenerationSpec } from './generation.js';
import type { ResolvedModel } from './models.js';

export interface ToolFunction {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
  strict?: boolean;
}

export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

export interface ChatRequest {
  dialect: 'openai' | 'anthropic';
  model: ResolvedModel;
  messages: V4Message[];
  tools: ToolFunction[];
  toolChoice: ToolChoice | null;
  /** Explicit thinking toggle; null = the model's default. */
  thinking: boolean | null;
  /** Raw effort value as sent (already enum-checked by the dialect); null = none sent. */
  effort: string | null;
  /** Last assistant message with prefix:true (§6.1). */
  prefix: { content: string; reasoning: string | null } | null;
  jsonMode: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  stop: string[];
  maxTokens?: number;
  /** Sampler seed (OpenAI dialect extension): same seed, same output. */
  seed?: number;
  logprobs: boolean;
  topLogprobs?: number;
  /** Request looks like Claude Code / OpenCode traffic (§5.2). */
  agent: boolean;
  /** `user_id` (§9.4): prefix-cache isolation scope; undefined = shared. */
  cacheScope?: string;
}

export interface ChatPlan {
  thinking: boolean;
  effort: 'high' | 'max' | null;
  spec: Omit<GenerationSpec, 'requestId'>;
}

const EFFORT_MAX = new Set(['xhigh', 'max', 'ultra']);

export function planChat(cfg: ServerConfig, codec: ChatCodec, req: ChatRequest): ChatPlan {
  // §5.2: "none" turns thinking off; combining an effort with thinking:disabled is an error (§5.6).
  let thinking = req.thinking ?? req.model.thinkingDefault;
  if (req.effort === 'none') {
    if (req.thinking === true) throw invalidRequest('thinking options type cannot be enabled when reasoning_effort is none');
    thinking = false;
  } else if (req.effort !== null && req.thinking === false) {
    throw invalidRequest('thinking options type cannot be disabled when reasoning_effort is set');
  }
  let effort: 'high' | 'max' | null = null;
  if (thinking) {
    if (req.effort !== null) effort = EFFORT_MAX.has(req.effort) ? 'max' : 'high';
    else effort = cfg.agentMaxEffort && req.agent ? 'max' : 'high';
  }

  if (thinking) {
    // §5.6: forced tool choice is not available in thinking mode.
    if (req.toolChoice === 'required' || (req.toolChoice !== null && typeof req.toolChoice === 'object')) {
      throw invalidRequest('Thinking mode does not support this tool_choice');
    }
    // §5.4 / §8.2: an assistant turn that called tools must carry its reasoning back.
    for (const m of req.messages) {
      if (m.role === 'assistant' && m.tool_calls?.length && typeof m.reasoning_content !== 'string') {
        throw invalidRequest(
          req.dialect === 'openai'
            ? 'The `reasoning_content` in the thinking mode must be passed back to the API.'
            : 'The `content[].thinking` in the thinking mode must be passed back to the API.',
        );
      }
    }
  }
  if (typeof req.toolChoice === 'object' && req.toolChoice !== null) {
    const name = req.toolChoice.name;
    if (!req.tools.some((t) => t.name === name)) throw invalidRequest(`Tool choice '${name}' is not in the list of tools`);
  }
  if ((req.toolChoice === 'required' || typeof req.toolChoice === 'object') && req.toolChoice !== null && !req.tools.length) {
    throw invalidRequest('tool_choice requires tools to be specified');
  }

  // Tools are rendered into the system prompt (reference encoder: `tools` on the first system message).
  const messages = req.messages.map((m) => ({ ...m }));
  const renderTools = req.tools.length > 0 && req.toolChoice !== 'none';
  if (renderTools) {
    let sys = messages.find((m) => m.role === 'system');
    if (!sys) {
      sys = { role: 'system', content: '' };
      messages.unshift(sys);
    }
    sys.tools = req.tools.map((t) => ({ type: 'function' as const, function: toolSchema(t) }));
  }

  let text: string;
  let startInReasoning = thinking;
  let forcedAnswerPrefix: string | undefined;
  if (req.prefix) {
    // §6.1: the model continues the given assistant text; with reasoning_content and no content, it continues
    // the reasoning itself.
    const last: V4Message = { role: 'assistant', content: req.prefix.content, prefix: true };
    if (req.prefix.reasoning !== null) last.reasoning_content = req.prefix.reasoning;
    const r = codec.renderPrefix([...messages, last], thinking, effort);
    text = r.prompt;
    startInReasoning = r.continues === 'reasoning';
  } else text = codec.render(messages, thinking, effort);
  const forced = req.toolChoice !== null && req.toolChoice !== 'auto' && req.toolChoice !== 'none';
  const named = typeof req.toolChoice === 'object' && req.toolChoice !== null ? req.toolChoice.name : null;
  // §6.2: strict tools (all-or-none, checked by the dialect) are decoded under the engine's DSML constraint,
  // which also forces the tool-call block itself; a named choice narrows the tools to that one.
  const strictTools =
    renderTools && req.tools.every((t) => t.strict)
      ? {
          tools: req.tools
            .filter((t) => named === null || t.name === named)
            .map((t) => ({ name: t.name, parameters: t.parameters ?? { type: 'object', properties: {} } })),
          forced,
        }
      : undefined;
  if (strictTools && req.prefix) {
    // §6.1 with §6.2: the constraint and the output parser start where the given prefix ends (which may be
    // inside a tool-call block: its call is then returned whole, with schema-valid arguments).
    forcedAnswerPrefix = startInReasoning ? (req.prefix.reasoning ?? '') : req.prefix.content;
    try {
      DsmlMachine.start({ kind: 'dsml_tools', ...strictTools, thinking: startInReasoning, prefix: forcedAnswerPrefix });
    } catch {
      throw invalidRequest('Invalid prefix: the assistant prefix does not follow the strict tool-call format');
    }
  }
  if (!strictTools && !req.prefix && !thinking && forced && renderTools) {
    // Forced tool use (non-thinking only): the answer is made to start with the tool-call block.
    forcedAnswerPrefix = codec.toolCallsOpen + codec.invokeOpen;
    if (named !== null) forcedAnswerPrefix += `${named}">\n`;
    text += forcedAnswerPrefix;
  }
  const prompt = codec.tokenize(text);

  const room = cfg.contextLength - prompt.length;
  let maxTokens: number;
  if (req.maxTokens !== undefined) {
    if (req.maxTokens < 1 || req.maxTokens > cfg.maxOutputTokens) throw maxTokensRange(cfg.maxOutputTokens);
    if (req.maxTokens > room) throw contextOverflow(cfg.contextLength, prompt.length, req.maxTokens);
    maxTokens = req.maxTokens;
  } else {
    // §4.1 [INFER]: omitted max_tokens = the remaining context, capped; never a context error unless the
    // prompt alone does not fit.
    if (room < 1) throw contextOverflow(cfg.contextLength, prompt.length, 1);
    maxTokens = Math.min(cfg.maxOutputTokens, room);
  }

  // §5.3: sampling parameters have no effect in thinking mode.
  const sampling: SamplingParams = {
    temperature: thinking ? 1 : (req.temperature ?? 1),
    topP: thinking ? 1 : (req.topP ?? 1),
    topK: thinking ? 0 : (req.topK ?? 0),
    frequencyPenalty: thinking ? 0 : (req.frequencyPenalty ?? 0),
    presencePenalty: thinking ? 0 : (req.presencePenalty ?? 0),
    maxTokens,
    seed: req.seed ?? cfg.defaultSeed,
    stop: req.stop,
    stopAtEos: true,
    logprobs: req.logprobs,
    topLogprobs: req.logprobs ? (req.topLogprobs ?? 0) : undefined,
  };
  return {
    thinking,
    effort,
    spec: {
      prompt,
      sampling,
      startInReasoning,
      jsonAnswer: req.jsonMode && !strictTools,
      strictTools,
      forcedAnswerPrefix,
      cacheHitGranularity: cfg.cacheHitGranularity,
      cacheScope: req.cacheScope,
    },
  };
}

function toolSchema(t: ToolFunction): Record<string, unknown> {
  const f: Record<string, unknown> = { name: t.name };
  if (t.description !== undefined) f.description = t.description;
  if (t.parameters !== undefined) f.parameters = t.parameters;
  return f;
}

/** §5.2: Claude Code / OpenCode request fingerprints. */
export function looksLikeAgent(headers: Record<string, string | string[] | undefined>, system?: string): boolean {
  const h = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v.join(',') : (v ?? '');
  };
  const ua = h('user-agent');
  if (ua.startsWith('claude-cli/') || ua.includes('claude-code') || ua.startsWith('opencode/')) return true;
  if (h('x-claude-code-session-id')) return true;
  if (h('anthropic-beta').includes('claude-code-')) return true;
  if (Object.keys(headers).some((k) => k.startsWith('x-opencode-'))) return true;
  return !!system && system.startsWith('You are Claude Code');
}
