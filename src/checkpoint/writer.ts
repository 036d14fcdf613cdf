// Writes a checkpoint in the official HF layout (spec §5): shards
// model-0000i-of-0000N.safetensors, model.safetensors.index.json, config.json,
// generation_config.json. Tensor data is streamed chunk by chunk, never held whole.
import { closeSync, ftruncateSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_FILE } from './open.js';
import { specBytes, tensorInventory, type TensorSpec } from './inventory.js';
import { hfConfigFromArgs } from './presets.js';
import { encodeHeader } from './safetensors.js';
import { synthTensor } from './synth.js';
import type { ModelArgs } from './types.js';

export interface ShardPlan {
  readonly file: string;
  readonly tensors: readonly TensorSpec[];
  readonly bytes: number;
}

/** Greedy split in inventory order (globals, layer by layer, MTP), each shard at most maxShardBytes unless one tensor is larger. */
export function planShards(inv: readonly TensorSpec[], maxShardBytes: number): ShardPlan[] {
  const groups: { tensors: TensorSpec[]; bytes: number }[] = [];
  let cur: { tensors: TensorSpec[]; bytes: number } | null = null;
  for (const t of inv) {
    const b = specBytes(t);
    if (!cur || (cur.tensors.length > 0 && cur.bytes + b > maxShardBytes)) groups.push((cur = { tensors: [], bytes: 0 }));
    cur.tensors.push(t);
    cur.bytes += b;
  }
  const n = groups.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  return groups.map((g, i) => ({ file: n === 1 ? 'model.safetensors' : `model-${pad(i + 1)}-of-${pad(n)}.safetensors`, ...g }));
}

export interface WriteOptions {
  seed: number;
  maxShardBytes: number;
  /** Only config.json, generation_config.json and the index (for shapes nobody generates in full). */
  configOnly?: boolean;
  /**
   * Full layout with all-zero data as sparse files (headers written, files extended without
   * writing): opens and validates like the real thing at any size, using almost no disk.
   */
  sparse?: boolean;
  /** Called after each tensor with bytes written so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface WriteResult {
  shards: number;
  tensors: number;
  bytes: number;
}

/** The index file contents: weight_map sorted by name, as the official indexes are. */
export function indexJson(plans: readonly ShardPlan[]): string {
  const entries: [string, string][] = [];
  let total = 0;
  for (const p of plans) {
    total += p.bytes;
    for (const t of p.tensors) entries.push([t.name, p.file]);
  }
  entries.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return JSON.stringify({ metadata: { total_size: total }, weight_map: Object.fromEntries(entries) }, null, 2) + '\n';
}

export function writeConfigFiles(dir: string, a: ModelArgs): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigFromArgs(a), null, 2) + '\n');
  const gen = { _from_model_config: true, bos_token_id: a.bosTokenId, eos_token_id: a.eosTokenId, do_sample: true, temperature: 1.0, top_p: 1.0 };
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(gen, null, 2) + '\n');
}

/** Writes one safetensors file, pulling each tensor's bytes from `data` chunk by chunk. */
export function writeSafetensorsStream(
  path: string,
  tensors: readonly TensorSpec[],
  data: (t: TensorSpec) => Iterable<Uint8Array>,
  onTensor?: (bytes: number) => void,
): void {
  const { header } = encodeHeader(tensors);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    for (const t of tensors) {
      const want = specBytes(t);
      let got = 0;
      for (const chunk of data(t)) {
        writeSync(fd, chunk);
        got += chunk.length;
      }
      if (got !== want) throw new Error(`internal: ${t.name} produced ${got} bytes, expected ${want}`);
      onTensor?.(want);
    }
  } finally {
    closeSync(fd);
  }
}

/** Writes a deterministic random checkpoint for `a` into `dir` (created if needed). */
export function writeSyntheticCheckpoint(dir: string, a: ModelArgs, opts: WriteOptions): WriteResult {
  const inv = tensorInventory(a);
  const plans = planShards(inv, opts.maxShardBytes);
  const total = plans.reduce((s, p) => s + p.bytes, 0);
  writeConfigFiles(dir, a);
  if (plans.length > 1) writeFileSync(join(dir, INDEX_FILE), indexJson(plans));
  if (opts.sparse && !opts.configOnly) {
    for (const p of plans) {
      const { header, dataBytes } = encodeHeader(p.tensors);
      const fd = openSync(join(dir, p.file), 'w');
      try {
        writeSync(fd, header);
        ftruncateSync(fd, header.length + dataBytes);
      } finally {
        closeSync(fd);
      }
    }
  } else if (!opts.configOnly) {
    let done = 0;
    for (const p of plans) {
      writeSafetensorsStream(join(dir, p.file), p.tensors, (t) => synthTensor(t, a, opts.seed), (b) => {
        done += b;
        opts.onProgress?.(done, total);
      });
    }
  }
  return { shards: plans.length, tensors: inv.length, bytes: total };
}
