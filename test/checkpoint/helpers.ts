// Shared by the checkpoint tests: a tiny synthetic checkpoint written once per
// test file into a temp dir, and a way to rewrite one shard's tensors.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeHeader, SafetensorsFile, type DType } from '../../src/checkpoint/index.js';
import { initCheckpoint } from '../../src/checkpoint/init.js';

export const FIXTURES = join(process.cwd(), 'test/fixtures/checkpoint');

export interface Scratch {
  root: string;
  /** A pristine tiny checkpoint (seed 7). */
  tiny: string;
  /** A fresh copy of the tiny checkpoint to corrupt. */
  copy(name: string): string;
  cleanup(): void;
}

export async function makeScratch(): Promise<Scratch> {
  const root = mkdtempSync(join(tmpdir(), 'dsv4-ckpt-'));
  const tiny = join(root, 'tiny');
  await initCheckpoint({ preset: 'tiny', out: tiny, seed: 7 });
  return {
    root,
    tiny,
    copy(name: string) {
      const d = join(root, name);
      cpSync(tiny, d, { recursive: true });
      return d;
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface RawTensor {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

/** Reads every tensor of a shard, lets `edit` change the list, writes the shard back. */
export function rewriteShard(path: string, edit: (ts: RawTensor[]) => RawTensor[]): void {
  const f = SafetensorsFile.open(path);
  const ts = [...f.entries.keys()].map((n) => {
    const t = f.read(n);
    return { name: n, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes };
  });
  f.close();
  const out = edit(ts);
  const { header } = encodeHeader(out);
  writeFileSync(path, Buffer.concat([header, ...out.map((t) => Buffer.from(t.bytes))]));
}

export function readJson(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function writeJson(path: string, v: unknown): void {
  writeFileSync(path, JSON.stringify(v, null, 2));
}

/** Rewrites a shard's JSON header (data bytes unchanged) after `edit` changes it. */
export function rewriteHeader(path: string, edit: (header: Record<string, any>) => void): void {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  const text = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeFileSync(path, Buffer.concat([len, text, buf.subarray(8 + n)]));
}
