// hcChain (native opsHcChain, model/hc.ts): one decode row's hc_post, the next hc_pre and its RMSNorm in one
// call equal the TypeScript steps bit for bit (random data, cancellations, ties, non-finite values left to the
// steps); the portable C++ path and one thread are checked by re-running this file in a child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { rmsNorm } from '../../src/tensor/norm.js';
import { roundBf16 } from '../../src/tensor/formats.js';
import { hcChain, hcPost, hcPre, type HcParams, type HcPreResult } from '../../src/model/hc.js';
import { assertSameValues } from './bits.js';

const { addon, reason } = loadNative();
const nk = addon ? makeNativeKernels(addon) : null;
const skip = nk?.hcChain ? false : `native hcChain unavailable: ${addon ? 'addon predates it' : reason}`;

// different eps for the norms and the Sinkhorn: a swap of the two fails the comparison
const NORM_EPS = 1e-6;
const HC_EPS = 0.01;

let seed = 77;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const bf = (lo: number, hi: number) => roundBf16((rnd() * 2 - 1) * 2 ** Math.floor(lo + rnd() * (hi - lo)));


function params(hc: number, dim: number): HcParams {
  const nMix = (2 + hc) * hc;
  return {
    fn: new Float32Array(nMix * hc * dim).map(() => Math.fround((rnd() * 2 - 1) * 0.05)),
    base: new Float32Array(nMix).map(() => Math.fround(rnd() - 0.5)),
    scale: new Float32Array(3).map(() => Math.fround(0.5 + rnd())),
  };
}

/** The steps in TypeScript (no kernels): hcPost when out is given, hcPre, rmsNorm. */
function reference(out: Float32Array | null, X: Float32Array, h: HcPreResult | null, hc: number, dim: number, p: HcParams, normW: Float32Array) {
  const Xn = out ? hcPost(out, X, 1, hc, dim, h!) : X;
  const next = hcPre(Xn, 1, hc, dim, p, 20, NORM_EPS, HC_EPS);
  return { X: Xn, h: next, a: rmsNorm(next.y, 1, dim, normW, NORM_EPS) };
}

function check(out: Float32Array | null, X: Float32Array, h: HcPreResult | null, hc: number, dim: number, p: HcParams, normW: Float32Array, what: string) {
  const want = reference(out, X, h, hc, dim, p, normW);
  const got = hcChain(nk!, out, X, h, 1, hc, dim, p, normW, 20, NORM_EPS, HC_EPS);
  assertSameValues(got.X, want.X, `${what}: X`);
  assertSameValues(got.h.y, want.h.y, `${what}: y`);
  assertSameValues(got.h.post, want.h.post, `${what}: post`);
  assertSameValues(got.h.comb, want.h.comb, `${what}: comb`);
  assertSameValues(got.a, want.a, `${what}: rmsNorm`);
}

test('hcChain: native (one call) == hcPost, hcPre, rmsNorm in TypeScript, with and without hc_post', { skip }, () => {
  // [4, 2048]: bench-2g's shape (the mixes split over the pool); [4, 44] / [3, 20]: no 8-multiple row (portable mixes)
  for (const [hc, dim] of [[4, 2048], [4, 256], [2, 64], [4, 44], [3, 20]] as const) {
    const p = params(hc, dim);
    const normW = new Float32Array(dim).map(() => bf(-2, 2));
    const X = new Float32Array(hc * dim).map(() => bf(-8, 4));
    for (let d = 0; d < dim; d += 5) X[dim + d] = -X[d]!; // exact cancellations between streams
    const h = hcPre(X, 1, hc, dim, params(hc, dim), 20, 1e-6, 1e-6);
    const out = new Float32Array(dim).map(() => bf(-6, 6));
    // the native call decides these inputs (the comparison is not reference vs reference)
    const nMix = (2 + hc) * hc;
    const status = (o: Float32Array | null) =>
      nk!.hcChain!(o, X, o ? h.post : null, o ? h.comb : null, new Float32Array(hc * dim), p.fn, p.base, p.scale, normW,
        new Float64Array(nMix + 2 * hc + hc * hc), new Float32Array(2 * dim), hc, dim, 20, HC_EPS, NORM_EPS);
    assert.equal(status(null), 0, `hc ${hc} dim ${dim}: hc_pre decided`);
    assert.equal(status(out), 0, `hc ${hc} dim ${dim}: hc_post + hc_pre decided`);
    check(null, X, null, hc, dim, p, normW, `hc ${hc} dim ${dim}, no hc_post`);
    check(out, X, h, hc, dim, p, normW, `hc ${hc} dim ${dim}, hc_post`);
    // equal mixing weights: cancellations, all-zero columns, midpoint ties in hc_post
    const flat = { ...h, comb: new Float64Array(hc * hc).fill(0.25) };
    for (let d = 0; d < dim; d += 3) X[dim + d] = -X[d]!;
    for (let j = 0; j < hc; j++) X[j * dim + 1] = 0;
    for (let j = 0; j < hc; j++) X[j * dim + 2] = j === 0 ? 1 : 2 ** -25;
    check(out, X, flat, hc, dim, p, normW, `hc ${hc} dim ${dim}, equal weights`);
  }
});

test('hcChain: non-finite values are left to the steps (same bits, NaN where the reference has it)', { skip }, () => {
  const hc = 4;
  const dim = 64;
  const p = params(hc, dim);
  const normW = new Float32Array(dim).map(() => bf(-2, 2));
  const X = new Float32Array(hc * dim).map(() => bf(-8, 4));
  const h = hcPre(X, 1, hc, dim, params(hc, dim), 20, 1e-6, 1e-6);
  const nMix = (2 + hc) * hc;
  const run = (o: Float32Array | null, x: Float32Array) =>
    nk!.hcChain!(o, x, h.post, h.comb, new Float32Array(hc * dim), p.fn, p.base, p.scale, normW, new Float64Array(nMix + 2 * hc + hc * hc),
      new Float32Array(2 * dim), hc, dim, 20, HC_EPS, NORM_EPS);
  const nanX = X.slice();
  nanX[5] = NaN; // hc_pre's mixes undecided: nothing done without hc_post
  assert.equal(run(null, nanX), 1);
  check(null, nanX, null, hc, dim, p, normW, 'NaN stream');
  const out = new Float32Array(dim).map(() => bf(-6, 6));
  out[3] = Infinity; // hc_post output infinite
  assert.notEqual(run(out, X), 0);
  check(out, X, h, hc, dim, p, normW, 'infinite sub-layer output');
});

test('hcChain: the portable C++ path (DSV4_NO_AVX2=1) and one thread pass the same checks', { skip: skip || (process.env.DSV4_TEST_CHILD ? 'in the child' : false) }, () => {
  for (const env of [{ DSV4_NO_AVX2: '1' }, { DSV4_THREADS: '1' }]) runTestFileInChild(import.meta.url, env, 2);
});
