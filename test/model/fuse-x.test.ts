// fuseXProducts (attention.ts): the layer's BF16 products of x become row ranges of one weight, same values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuseXProducts, type AttentionWeights } from '../../src/model/attention.js';
import type { Bf16Weight, Weight } from '../../src/tensor/kernels.js';

const bf16 = (out: number, inF: number, seed: number): Bf16Weight => ({ kind: 'bf16', out, inF, data: new Uint16Array(out * inF).map((_, i) => (i * 2654435761 + seed) >>> 17) });
const comp = (wkv: Weight, wgate: Weight) => ({ ratio: 4, width: 8, rotate: false, wkv, wgate, ape: new Float32Array(0), norm: new Float32Array(0) });
const layer = (withIndexer: boolean, gate: Weight = bf16(6, 16, 2)): AttentionWeights => ({
  wqA: bf16(1, 16, 9), qNorm: new Float32Array(0), wqB: bf16(1, 16, 9), wkv: bf16(1, 16, 9), kvNorm: new Float32Array(0), woA: bf16(1, 16, 9),
  woB: bf16(1, 16, 9), sink: new Float32Array(0), compressor: comp(bf16(6, 16, 1), gate),
  indexer: withIndexer ? { nHeads: 2, headDim: 4, topk: 2, wqB: bf16(8, 16, 3), weightsProj: bf16(2, 16, 4), compressor: comp(bf16(3, 16, 5), bf16(3, 16, 6)) } : null,
});

test('fuseXProducts: compressor, indexer compressor and weights_proj rows in one weight, the originals views of it', () => {
  const w = layer(true);
  const parts = [w.compressor!.wkv, w.compressor!.wgate, w.indexer!.compressor.wkv, w.indexer!.compressor.wgate, w.indexer!.weightsProj] as Bf16Weight[];
  const before = parts.map((p) => p.data.slice());
  fuseXProducts(w);
  const f = w.xFused!;
  assert.equal(f.out, 6 + 6 + 3 + 3 + 2);
  const after = [w.compressor!.wkv, w.compressor!.wgate, w.indexer!.compressor.wkv, w.indexer!.compressor.wgate, w.indexer!.weightsProj] as Bf16Weight[];
  let row = 0;
  after.forEach((p, i) => {
    assert.deepEqual(p.data, before[i], `part ${i} values`);
    assert.equal(p.data.buffer, f.data.buffer, `part ${i} is a view`);
    assert.equal(p.data.byteOffset, row * 16 * 2, `part ${i} offset`);
    assert.equal(p.out, parts[i]!.out);
    row += p.out;
  });
});

test('fuseXProducts: HCA layers (no indexer) fuse wkv and wgate; non-BF16 weights are left alone', () => {
  const w = layer(false);
  fuseXProducts(w);
  assert.equal(w.xFused?.out, 12);
  const q: Weight = { kind: 'fp8', out: 6, inF: 16, data: new Uint8Array(96), scale: new Uint8Array(1) };
  const v = layer(false, q);
  fuseXProducts(v);
  assert.equal(v.xFused, undefined);
  assert.equal(v.compressor!.wgate, q);
});

test('fuseXProducts: the fused weight lives in the memory `alloc` gives (the weight arena), at its offset', () => {
  const w = layer(true);
  const values = w.compressor!.wkv.kind === 'bf16' ? w.compressor!.wkv.data.slice() : null;
  const backing = new Uint8Array(4096);
  let asked = 0;
  fuseXProducts(w, (bytes) => backing.subarray(64, 64 + (asked = bytes)));
  const f = w.xFused!;
  assert.equal(asked, 2 * f.out * f.inF);
  assert.equal(f.data.buffer, backing.buffer);
  assert.equal(f.data.byteOffset, 64);
  assert.deepEqual((w.compressor!.wkv as Bf16Weight).data, values);
});
