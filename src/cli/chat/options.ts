// Options shared by `dsv4 chat` and `dsv4 run`: where to send requests and the generation settings.
import { Option, type Command } from 'commander';
import type { ChatSettings, Effort } from './client.js';
import { sizeArg } from '../size-arg.js';
import { CliError, ExitCode } from './errors.js';
import { numericsOption, speculativeOption, type Numerics } from '../numerics.js';

export interface CommonOptions {
  model?: string;
  url?: string;
  apiKey?: string;
  modelId: string;
  system?: string;
  think: boolean;
  effort: Effort;
  temperature?: number;
  maxTokens?: number;
  contextLength?: number;
  memoryBudget?: number;
  numerics?: Numerics;
  speculative?: 'mtp' | 'off';
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--model <dir>', 'checkpoint directory to run in this process (default: the embedded default model)')
    .option('--url <url>', 'use a running DeepSeek-compatible server instead, e.g. http://127.0.0.1:8000 or https://api.deepseek.com')
    .option('--api-key <key>', 'API key for --url (default: $DEEPSEEK_API_KEY)')
    .option('--model-id <id>', 'model name sent in requests', 'deepseek-v4-flash')
    .option('--system <text>', 'system prompt')
    .option('--no-think', 'thinking mode off (it is on by default, as in the DeepSeek API)')
    .addOption(new Option('--effort <level>', 'reasoning effort while thinking').choices(['high', 'max']).default('high'))
    .option('--temperature <t>', 'sampling temperature 0-2 (used when thinking is off)', parseTemperature)
    .option('--max-tokens <n>', 'most tokens to generate, thinking included', parseMaxTokens)
    .option('--context-length <n>', 'context in tokens for a local model (default: the engine default)', (v) => parsePositive('--context-length', v))
    .option('--memory-budget <size>', 'local model: RAM for routed experts, e.g. 20G (they stream from the checkpoint through an LRU cache)', sizeArg)
    .addOption(numericsOption())
    .addOption(speculativeOption());
}

export function settingsFrom(o: CommonOptions): ChatSettings {
  return { model: o.modelId, thinking: o.think, effort: o.effort, temperature: o.temperature, maxTokens: o.maxTokens };
}

function parseTemperature(v: string): number {
  const t = Number(v);
  if (v.trim() === '' || !Number.isFinite(t) || t < 0 || t > 2) throw new CliError(`--temperature ${v}: expected a number from 0 to 2`, ExitCode.usage);
  return t;
}

function parseMaxTokens(v: string): number {
  return parsePositive('--max-tokens', v);
}

function parsePositive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${flag} ${v}: expected a whole number >= 1`, ExitCode.usage);
  return n;
}
