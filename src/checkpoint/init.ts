// `dsv4 init` as a library call: a deterministic random checkpoint of a named
// preset (optionally resized) in the official layout. Tokenizer files are the
// caller's business (the tokenizer layer sits above this one).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from './errors.js';
import { INDEX_FILE } from './open.js';
import { isPresetName, PRESET_NAMES, PRESETS, presetArgs, type ShapeOverrides } from './presets.js';
import { writeSyntheticCheckpoint, type WriteResult } from './writer.js';
import type { ModelArgs } from './types.js';

export interface InitOptions {
  preset: string;
  out: string;
  seed?: number;
  overrides?: ShapeOverrides;
  /** Write config.json, generation_config.json and the index only. */
  configOnly?: boolean;
  /** All-zero sparse shards (full layout, almost no disk): for loader tests at real scale. */
  sparse?: boolean;
  maxShardBytes?: number;
  /** Replace an existing checkpoint in `out`. */
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface InitResult extends WriteResult {
  args: ModelArgs;
  dir: string;
}

/** Removes what a previous checkpoint left (shards, index, configs) so no stale shard survives. */
function clearCheckpointFiles(dir: string): void {
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.safetensors') || f === INDEX_FILE || f === 'config.json' || f === 'generation_config.json') rmSync(join(dir, f));
  }
}

export async function initCheckpoint(o: InitOptions): Promise<InitResult> {
  if (!isPresetName(o.preset)) throw new CheckpointError(`unknown preset '${o.preset}' (choose one of ${PRESET_NAMES.join(', ')})`);
  const args = presetArgs(o.preset, o.overrides);
  if (existsSync(o.out)) {
    const taken = readdirSync(o.out).some((f) => f.endsWith('.safetensors') || f === 'config.json');
    if (taken && !o.force) throw new CheckpointError('already holds a checkpoint (use --force to replace it)', o.out);
    if (taken) clearCheckpointFiles(o.out);
  }
  const r = writeSyntheticCheckpoint(o.out, args, {
    seed: o.seed ?? 0,
    maxShardBytes: o.maxShardBytes ?? PRESETS[o.preset].maxShardBytes,
    configOnly: o.configOnly,
    sparse: o.sparse,
    onProgress: o.onProgress,
  });
  return { ...r, args, dir: o.out };
}
