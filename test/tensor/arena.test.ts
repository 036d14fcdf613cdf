// The weight arena (tensor/arena.ts): views of the asked sizes that never overlap, each starting on a
// 64-byte boundary in memory (2 MiB for blocks of their own), and a model's weights read into it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARENA_ALIGN, ARENA_CHUNK, WeightArena } from '../../src/tensor/arena.js';
import { loadNative } from '../../src/tensor/native.js';
import { openCheckpoint } from '../../src/checkpoint/index.js';
import { WeightReader } from '../../src/model/weights.js';

const { addon, reason } = loadNative();
const native = addon?.alignOffset ? addon : null;
const skip = native ? false : `native addon unavailable: ${reason}`;
const HUGE = 2 << 20;

test('arena: sizes, no overlap, byte offsets fit typed views of any width', () => {
  const a = new WeightArena();
  const sizes = [1, 63, 64, 65, 4096, 1000003, 0, 7, ARENA_CHUNK / 4 + 1, 3 << 20, 3 << 20, 5 << 20];
  const views = sizes.map((n) => a.alloc(n));
  views.forEach((v, i) => {
    assert.equal(v.length, sizes[i]);
    assert.equal(v.byteOffset % 8, 0);
    v.fill(i + 1);
  });
  views.forEach((v, i) => assert.ok(v.every((b) => b === i + 1), `view ${i} was overwritten`));
  assert.equal(a.allocated, sizes.reduce((x, y) => x + y, 0));
  assert.ok(a.reserved >= a.allocated);
  assert.throws(() => a.alloc(-1), RangeError);
  assert.throws(() => a.alloc(1.5), RangeError);
});

test('arena: every view starts on a cache line, blocks of their own on 2 MiB', { skip }, () => {
  const a = new WeightArena();
  for (const n of [1, 100, 4096, 1 << 20, 17, ARENA_CHUNK / 4 + 1, 12345, (ARENA_CHUNK * 3) / 4]) {
    const v = a.alloc(n);
    assert.equal(native!.alignOffset!(v, ARENA_ALIGN), 0, `${n} bytes`);
    if (n > ARENA_CHUNK / 4) assert.equal(native!.alignOffset!(v, HUGE), 0, `${n} bytes, own block`);
  }
  assert.throws(() => native!.alignOffset!(new Uint8Array(4), 3), /power of two/);
});

test('arena: a model reader puts its weights in the arena, aligned', { skip }, () => {
  const dir = new URL('../../../test/fixtures/golden/tiny-a/checkpoint', import.meta.url).pathname;
  const ck = openCheckpoint(dir);
  try {
    const rd = new WeightReader(ck);
    const names = ck.names().filter((n) => n.endsWith('.weight') && ck.tensor(n).shape.length === 2).slice(0, 12);
    assert.ok(names.length > 0);
    for (const n of names) {
      const w = rd.linear(n.slice(0, -'.weight'.length));
      const bytes = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
      assert.equal(native!.alignOffset!(bytes, ARENA_ALIGN), 0, n);
      assert.deepEqual(bytes, ck.tensor(n).bytes, n); // the same bytes as a plain read
    }
    assert.ok(rd.arena.allocated > 0);
  } finally {
    ck.close();
  }
});
