// Opening a checkpoint directory in the official Hugging Face layout (spec §5):
// config.json + either model.safetensors.index.json and its shards, or a single
// model.safetensors (or any *.safetensors files). Only headers are read here;
// tensor bytes are read on demand.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modelArgsFromHfConfig } from './config.js';
import { CheckpointError } from './errors.js';
import { SafetensorsFile, type TensorEntry } from './safetensors.js';
import { validateCheckpoint } from './validate.js';
import type { Checkpoint, ModelArgs, TensorData } from './types.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface OpenCheckpointOptions {
  /** Fields that win over config.json (e.g. maxSeqLen; default 4096 as the reference). */
  overrides?: Partial<ModelArgs>;
  /**
   * Header-level validation against the inventory implied by config.json (cheap: no tensor data
   * is read). Default true. Set false to open partial or non-standard checkpoints.
   */
  validate?: boolean;
}

/** Where one tensor of an opened checkpoint lives. */
export interface TensorLocation extends TensorEntry {
  /** Shard file name, relative to the checkpoint directory. */
  readonly file: string;
}

/** Optional files next to the weights, as paths (undefined when absent). */
export interface CheckpointSideFiles {
  readonly generationConfig?: string;
  readonly tokenizerJson?: string;
  readonly tokenizerConfig?: string;
}

export class LocalCheckpoint implements Checkpoint {
  /** Called after every tensor read with its byte count (e.g. to draw load progress against totalBytes()). */
  onRead: ((bytes: number, name: string) => void) | null = null;
  /** Parsed generation_config.json, or {} when absent. */
  readonly generationConfig: Record<string, unknown>;
  readonly sideFiles: CheckpointSideFiles;
  private readonly files: Map<string, SafetensorsFile>;
  private readonly locations: Map<string, TensorLocation>;

  constructor(
    readonly dir: string,
    readonly args: ModelArgs,
    readonly hfConfig: Record<string, unknown>,
    files: Map<string, SafetensorsFile>,
    locations: Map<string, TensorLocation>,
    generationConfig: Record<string, unknown>,
    sideFiles: CheckpointSideFiles,
  ) {
    this.files = files;
    this.locations = locations;
    this.generationConfig = generationConfig;
    this.sideFiles = sideFiles;
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  names(): string[] {
    return [...this.locations.keys()];
  }

  /** dtype, shape, shard and byte range of a tensor, without reading it. */
  info(name: string): TensorLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new CheckpointError('tensor not in checkpoint', this.dir, name);
    return loc;
  }

  /** Shard file names (relative to dir), in index order. */
  shardFiles(): string[] {
    return [...this.files.keys()];
  }

  tensor(name: string, alloc?: (byteLength: number) => Uint8Array): TensorData {
    const loc = this.info(name);
    const t = this.files.get(loc.file)!.read(name, alloc);
    this.onRead?.(loc.byteLength, name);
    return t;
  }

  /** Reads a tensor straight into caller-owned memory (e.g. an expert-cache slab). */
  readInto(name: string, dst: Uint8Array): void {
    const loc = this.info(name);
    this.files.get(loc.file)!.readRange(loc, dst);
    this.onRead?.(loc.byteLength, name);
  }

  /** Total bytes of all tensors. */
  totalBytes(): number {
    let n = 0;
    for (const l of this.locations.values()) n += l.byteLength;
    return n;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

export function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CheckpointError(`cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, path);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`invalid JSON (${(e as Error).message})`, path);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CheckpointError('expected a JSON object', path);
  return v as Record<string, unknown>;
}

/** Reads and maps config.json of `dir` (no weights needed: `dsv4 info` works on a bare config). */
export function readCheckpointConfig(dir: string, overrides?: Partial<ModelArgs>): { hfConfig: Record<string, unknown>; args: ModelArgs } {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) throw new CheckpointError('missing config.json', dir);
  const hfConfig = readJsonFile(p);
  return { hfConfig, args: modelArgsFromHfConfig(hfConfig, overrides, p) };
}

/** Shard file -> tensor names it should hold, from the index (or from the files themselves). */
function shardPlan(dir: string): { plan: Map<string, string[]> | null; files: string[] } {
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    const index = readJsonFile(indexPath);
    const wm = index.weight_map;
    if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) throw new CheckpointError('missing or invalid "weight_map"', indexPath);
    const plan = new Map<string, string[]>();
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
        throw new CheckpointError(`invalid shard name ${JSON.stringify(file)}`, indexPath, name);
      }
      let list = plan.get(file);
      if (!list) plan.set(file, (list = []));
      list.push(name);
    }
    for (const [file, names] of plan) {
      if (!existsSync(join(dir, file))) throw new CheckpointError(`index names shard '${file}' (e.g. for tensor '${names[0]}'), which does not exist`, indexPath);
    }
    return { plan, files: [...plan.keys()] };
  }
  if (existsSync(join(dir, SINGLE_FILE))) return { plan: null, files: [SINGLE_FILE] };
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new CheckpointError(`no ${INDEX_FILE}, ${SINGLE_FILE} or *.safetensors files`, dir);
  return { plan: null, files };
}

function optionalFile(dir: string, name: string): string | undefined {
  const p = join(dir, name);
  return existsSync(p) ? p : undefined;
}

/**
 * Opens a checkpoint directory: config.json, the shard headers (via the index when
 * present), generation_config.json and the tokenizer files' presence. Throws
 * CheckpointError naming the file and tensor at fault.
 */
export function openCheckpoint(dir: string, opts: OpenCheckpointOptions = {}): LocalCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CheckpointError('not a directory', dir);
  const { hfConfig, args } = readCheckpointConfig(dir, opts.overrides);
  const { plan, files: fileNames } = shardPlan(dir);

  const files = new Map<string, SafetensorsFile>();
  const locations = new Map<string, TensorLocation>();
  try {
    for (const file of fileNames) {
      const path = join(dir, file);
      const st = SafetensorsFile.open(path);
      files.set(file, st);
      const expectedList = plan?.get(file);
      const expected = expectedList ? new Set(expectedList) : null;
      if (expected) {
        for (const name of expected) {
          if (!st.has(name)) throw new CheckpointError(`the index places this tensor here, but the file does not hold it`, path, name);
        }
      }
      for (const e of st.entries.values()) {
        if (expected && !expected.has(e.name)) {
          // Present in a shard but not indexed to it: loaders that follow the index would never see it.
          throw new CheckpointError(`tensor present in the file but the index does not place it here`, path, e.name);
        }
        const prev = locations.get(e.name);
        if (prev) throw new CheckpointError(`tensor appears in two files (also in ${prev.file})`, path, e.name);
        locations.set(e.name, { ...e, file });
      }
    }
  } catch (e) {
    for (const f of files.values()) f.close();
    throw e;
  }

  const gen = optionalFile(dir, 'generation_config.json');
  const ckpt = new LocalCheckpoint(dir, args, hfConfig, files, locations, gen ? readJsonFile(gen) : {}, {
    generationConfig: gen,
    tokenizerJson: optionalFile(dir, 'tokenizer.json'),
    tokenizerConfig: optionalFile(dir, 'tokenizer_config.json'),
  });
  if (opts.validate !== false) {
    try {
      validateCheckpoint(ckpt);
    } catch (e) {
      ckpt.close();
      throw e;
    }
  }
  return ckpt;
}
