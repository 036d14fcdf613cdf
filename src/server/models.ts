// Model ids (§3) and the Anthropic name mapping (§8.1).
import type { ServerConfig } from './config.js';
import { invalidRequest } from './errors.js';

export interface ResolvedModel {
  /** The id echoed back in responses. */
  echo: string;
  /** The V4 id billed and served. */
  served: string;
  /** Thinking default for this id (§5.1). */
  thinkingDefault: boolean;
}

const ALIASES: Record<string, boolean> = { 'deepseek-chat': false, 'deepseek-reasoner': true };

function aliasTarget(cfg: ServerConfig): string {
  return cfg.servedModels.includes('deepseek-v4-flash') ? 'deepseek-v4-flash' : cfg.servedModels[0]!;
}

function unknownModel(cfg: ServerConfig, name: string) {
  const names = [...cfg.servedModels, ...(cfg.legacyAliases ? Object.keys(ALIASES) : [])];
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : names[0];
  return invalidRequest(`The supported API model names are ${list}, but you passed ${name}.`);
}

/** OpenAI-format model lookup; unknown id → 400 (§3). Legacy aliases echo the requested id ([INFER] §3). */
export function resolveModel(cfg: ServerConfig, name: unknown): ResolvedModel {
  if (typeof name !== 'string') throw unknownModel(cfg, String(name));
  if (cfg.servedModels.includes(name)) return { echo: name, served: name, thinkingDefault: true };
  if (cfg.legacyAliases && name in ALIASES) {
    return { echo: name, served: aliasTarget(cfg), thinkingDefault: ALIASES[name]! };
  }
  throw unknownModel(cfg, name);
}

/** Anthropic mapping (§8.1, window): opus → pro, everything else → flash; a trailing [1m] is stripped. */
export function resolveAnthropicModel(cfg: ServerConfig, name: unknown): ResolvedModel {
  let n = typeof name === 'string' ? name : '';
  while (/\[1m\]$/i.test(n)) n = n.slice(0, -4);
  if (cfg.servedModels.includes(n) || (cfg.legacyAliases && n in ALIASES)) {
    const r = resolveModel(cfg, n);
    return { ...r, echo: r.served };
  }
  const want = /^claude-opus/i.test(n) ? 'deepseek-v4-pro' : 'deepseek-v4-flash';
  const served = cfg.servedModels.includes(want) ? want : cfg.servedModels[0]!;
  return { echo: served, served, thinkingDefault: true };
}

export function listModels(cfg: ServerConfig): { object: 'list'; data: { id: string; object: 'model'; owned_by: string }[] } {
  const ids = [...cfg.servedModels, ...(cfg.legacyAliases && cfg.listAliases ? Object.keys(ALIASES) : [])];
  return { object: 'list', data: ids.map((id) => ({ id, object: 'model', owned_by: 'deepseek' })) };
}
