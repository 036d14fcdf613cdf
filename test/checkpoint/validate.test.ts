// Every way a checkpoint can be broken gives a CheckpointError naming the file and
// the tensor at fault (issue 4, deliverable 6). Each case corrupts a fresh copy of
// a tiny checkpoint written at test time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, openCheckpoint } from '../../src/checkpoint/index.js';
import { makeScratch, readJson, rewriteHeader, rewriteShard, writeJson, type Scratch } from './helpers.js';

let s: Scratch;
before(async () => {
  s = await makeScratch();
});
after(() => s.cleanup());

const SHARD1 = 'model-00001-of-00004.safetensors';
const LAST = 'model-00004-of-00004.safetensors';

function expectError(dir: string, pattern: RegExp, where: { file?: RegExp; tensor?: string }): CheckpointError {
  let err: unknown;
  try {
    openCheckpoint(dir).close();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof CheckpointError, `expected a CheckpointError, got ${String(err)}`);
  assert.match(err.message, pattern);
  if (where.file) assert.match(err.file ?? '', where.file);
  if (where.tensor !== undefined) assert.equal(err.tensor, where.tensor);
  assert.ok(!err.message.includes('\n'), 'one line');
  return err;
}

/** The shard holding `name`, per the index. */
function shardOf(dir: string, name: string): string {
  return readJson(join(dir, 'model.safetensors.index.json')).weight_map[name];
}

test('the pristine tiny checkpoint validates', () => {
  const c = openCheckpoint(s.tiny);
  assert.equal(c.names().length, 427);
  c.close();
});

test('missing tensor', () => {
  const d = s.copy('missing');
  const name = 'layers.1.attn.wkv.scale';
  const file = shardOf(d, name);
  rewriteShard(join(d, file), (ts) => ts.filter((t) => t.name !== name));
  const idx = readJson(join(d, 'model.safetensors.index.json'));
  delete idx.weight_map[name];
  writeJson(join(d, 'model.safetensors.index.json'), idx);
  expectError(d, /missing tensor required by .*config\.json/, { tensor: name });
});

test('unexpected tensor', () => {
  const d = s.copy('unexpected');
  rewriteShard(join(d, SHARD1), (ts) => [...ts, { name: 'layers.0.attn.bogus', dtype: 'F32', shape: [2], bytes: new Uint8Array(8) }]);
  const idx = readJson(join(d, 'model.safetensors.index.json'));
  idx.weight_map['layers.0.attn.bogus'] = SHARD1;
  writeJson(join(d, 'model.safetensors.index.json'), idx);
  expectError(d, /unexpected tensor/, { tensor: 'layers.0.attn.bogus', file: new RegExp(SHARD1) });
});

test('wrong shape', () => {
  const d = s.copy('shape');
  const name = 'layers.0.attn_norm.weight';
  const file = shardOf(d, name);
  rewriteShard(join(d, file), (ts) => ts.map((t) => (t.name === name ? { ...t, shape: [2, 64] } : t)));
  expectError(d, /stored as BF16 \[2, 64\] but .* implies BF16 \[128\]/, { tensor: name, file: new RegExp(file) });
});

test('wrong dtype', () => {
  const d = s.copy('dtype');
  const name = 'layers.0.attn.attn_sink';
  const file = shardOf(d, name);
  rewriteShard(join(d, file), (ts) => ts.map((t) => (t.name === name ? { ...t, dtype: 'I32' } : t)));
  expectError(d, /stored as I32 \[4\] but .* implies F32 \[4\]/, { tensor: name });
});

test('truncated file', () => {
  const d = s.copy('truncated');
  const p = join(d, LAST);
  truncateSync(p, statSync(p).size - 100);
  expectError(d, /out of range.*truncated/, { file: new RegExp(LAST) });
});

test('corrupt header (invalid JSON)', () => {
  const d = s.copy('header');
  const fd = openSync(join(d, SHARD1), 'r+');
  writeSync(fd, Buffer.from('}}}}'), 0, 4, 8);
  closeSync(fd);
  expectError(d, /corrupt safetensors header/, { file: new RegExp(SHARD1) });
});

test('corrupt header length', () => {
  const d = s.copy('headerlen');
  const fd = openSync(join(d, SHARD1), 'r+');
  writeSync(fd, Buffer.alloc(8, 0xff), 0, 8, 0);
  closeSync(fd);
  expectError(d, /header length .* exceeds/, { file: new RegExp(SHARD1) });
});

test('offsets out of range', () => {
  const d = s.copy('offsets');
  let name = '';
  rewriteHeader(join(d, SHARD1), (hdr) => {
    // Shift the last tensor's range (same span) past the end of the data.
    name = Object.keys(hdr).filter((k) => k !== '__metadata__').pop()!;
    const [b, e] = hdr[name].data_offsets;
    hdr[name].data_offsets = [b + 64, e + 64];
  });
  expectError(d, /data_offsets .* out of range/, { tensor: name, file: new RegExp(SHARD1) });
});

test('overlapping data_offsets', () => {
  const d = s.copy('overlap');
  rewriteHeader(join(d, SHARD1), (hdr) => {
    // Move the second tensor back by one byte into the first one's range.
    const [a, b] = Object.keys(hdr).filter((k) => k !== '__metadata__').map((k) => hdr[k]);
    const len = b.data_offsets[1] - b.data_offsets[0];
    b.data_offsets = [a.data_offsets[1] - 1, a.data_offsets[1] - 1 + len];
  });
  expectError(d, /overlap/, { file: new RegExp(SHARD1) });
});

test('index naming a missing shard', () => {
  const d = s.copy('noshard');
  rmSync(join(d, LAST));
  expectError(d, new RegExp(`index names shard '${LAST}'.*does not exist`), { file: /index\.json$/ });
});

test('index placing a tensor in the wrong shard', () => {
  const d = s.copy('misplaced');
  const idx = readJson(join(d, 'model.safetensors.index.json'));
  idx.weight_map['embed.weight'] = LAST;
  writeJson(join(d, 'model.safetensors.index.json'), idx);
  expectError(d, /index places this tensor here, but the file does not hold it/, { tensor: 'embed.weight', file: new RegExp(LAST) });
});

test('config inconsistent with the tensors', () => {
  const d = s.copy('config');
  const cfg = readJson(join(d, 'config.json'));
  cfg.n_routed_experts = 4;
  writeJson(join(d, 'config.json'), cfg);
  expectError(d, /stored as BF16 \[8, 128\] but .*config\.json implies BF16 \[4, 128\]/, { tensor: 'layers.0.ffn.gate.weight' });
});

test('config malformed', () => {
  const d = s.copy('badconfig');
  const cfg = readJson(join(d, 'config.json'));
  cfg.num_hidden_layers = 7;
  writeJson(join(d, 'config.json'), cfg);
  expectError(d, /compress_ratios has 5 entries, expected .* = 8/, { file: /config\.json$/ });
  writeFileSync(join(d, 'config.json'), '{ not json');
  expectError(d, /invalid JSON/, { file: /config\.json$/ });
});
