// route (moe.ts): the top-k expert selection equals the comparator sort's order
// (score descending, ties to the lower expert id), ties, ±0 and NaN scores included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { route, type MoeConfig, type MoeWeights } from '../../src/model/moe.js';
import { exactLinear } from '../../src/model/linear.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import type { F32Weight } from '../../src/tensor/kernels.js';

const fr = Math.fround;

/** The selection as the full comparator sort of fl32(sigmoid(logit) + bias). */
function sortedExperts(x: Float32Array, rows: number, gate: F32Weight, bias: Float32Array, K: number): number[] {
  const E = gate.out;
  const logits = exactLinear(x, rows, gate, 0, E, new Float32Array(rows * E));
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const sel = Array.from({ length: E }, (_, e) => fr(fr(1 / (1 + Math.exp(-logits[r * E + e]!))) + bias[e]!));
    const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => sel[b]! - sel[a]! || a - b);
    out.push(...order.slice(0, K));
  }
  return out;
}

test('route: top-k experts in the comparator sort order (ties to the lower id), NaN scores through the sort', () => {
  let s = 99;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const E = 12;
  const dim = 8;
  const rows = 6;
  for (const K of [1, 4, 12]) {
    for (const variant of ['random', 'ties', 'nan']) {
      const gate: F32Weight = { kind: 'f32', out: E, inF: dim, data: new Float32Array(E * dim).map(() => fr(rnd() - 0.5)) };
      const bias = new Float32Array(E).map(() => (variant === 'random' ? fr(rnd() - 0.5) : Math.floor(rnd() * 3) * 0.25));
      if (variant !== 'random') {
        gate.data.copyWithin(5 * dim, 2 * dim, 3 * dim); // experts 2 and 5 score alike
        gate.data.copyWithin(9 * dim, 2 * dim, 3 * dim);
        bias[5] = bias[2]!;
        bias[9] = bias[2]!;
      }
      if (variant === 'nan') bias[7] = NaN;
      const x = new Float32Array(rows * dim).map(() => fr(rnd() * 4 - 2));
      x.fill(0, dim, 2 * dim); // row 1: every logit 0
      x.fill(-0, 3 * dim, 4 * dim); // row 3: -0 inputs
      const w: MoeWeights = { layer: 0, gate, bias, tid2eid: null, shared: { w1: gate, w2: gate, w3: gate } };
      const cfg: MoeConfig = { nExperts: E, topk: K, scoreFunc: 'sigmoid', routeScale: 1.5, swigluLimit: 0 };
      const got = route(referenceKernels, w, cfg, x, rows, new Int32Array(rows));
      assert.deepEqual([...got.experts], sortedExperts(x, rows, gate, bias, K), `K=${K} ${variant}`);
    }
  }
});
