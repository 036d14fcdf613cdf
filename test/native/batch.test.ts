// The batched native entries (native/batch.cc) give the bits of the one-by-one calls and of the
// TypeScript reference: gemmBatch (several FP8/FP4 products, shared activations, odd sizes, NaN
// weight codes and NaN activation codes that send jobs back to the one-by-one path) and
// fp8AsBf16GemmGroups (the grouped wo_a projection, flagged elements in every group); also the
// model-level helpers built on them (linears, expertsForward).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { exactLinear, linear, linears, groupedDenseRows } from '../../src/model/linear.js';
import { expertForward, expertsForward } from '../../src/model/moe.js';
import type { Fp4Weight, Fp8Weight, GemmJob, Kernels, QuantizedActivations, Weight } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? (addon.gemmBatch ? false : 'addon built without batch.cc') : `native addon unavailable: ${reason}`;
const nk = addon ? makeNativeKernels(addon) : undefined;

const rnd = xorshift(0x1b873593);
const randInt = (n: number) => Math.floor(rnd() * n);

function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) assert.fail(`${what}[${i}]: ${got[i]} != ${want[i]}`);
  }
}

/** e4m3 codes without NaN, mixing zeros, subnormals and large magnitudes. */
function codes(n: number): Uint8Array {
  return new Uint8Array(n).map(() => {
    const r = rnd();
    const c = r < 0.2 ? randInt(24) : r < 0.3 ? 0x60 + randInt(0x1f) : randInt(0x7f);
    return c | (rnd() < 0.5 ? 0x80 : 0);
  });
}

function acts(rows: number, cols: number): QuantizedActivations {
  const scales = [1, 2 ** -7, 2 ** -20, 2 ** 10, 2 ** -126, 2 ** 100];
  return { rows, cols, q: codes(rows * cols), scale: new Float32Array((rows * cols) / 128).map(() => scales[randInt(scales.length)]!) };
}

const scaleBytes = [127, 120, 130, 0, 1, 254];

function fp8Weight(out: number, inF: number): Fp8Weight {
  const scale = new Uint8Array(Math.ceil(out / 128) * Math.ceil(inF / 128)).map(() => scaleBytes[randInt(scaleBytes.length)]!);
  return { kind: 'fp8', out, inF, data: codes(out * inF), scale };
}

function fp4Weight(out: number, inF: number): Fp4Weight {
  const scale = new Uint8Array((out * inF) / 32).map(() => scaleBytes[randInt(scaleBytes.length)]!);
  return { kind: 'fp4', out, inF, data: new Uint8Array((out * inF) / 2).map(() => randInt(256)), scale };
}

/** The jobs through gemmBatch, one by one (native) and through the reference: all the same bits. */
function checkBatch(jobs: { x: QuantizedActivations; w: Fp8Weight | Fp4Weight }[], what: string): void {
  const batched: GemmJob[] = jobs.map(({ x, w }) => ({ x, w, y: new Float32Array(x.rows * w.out).fill(NaN) }));
  nk!.gemmBatch!(batched);
  jobs.forEach(({ x, w }, i) => {
    const one = new Float32Array(x.rows * w.out);
    const ref = new Float32Array(x.rows * w.out);
    if (w.kind === 'fp4') {
      nk!.fp4Gemm(x, w, one);
      referenceKernels.fp4Gemm(x, w, ref);
    } else {
      nk!.fp8Gemm(x, w, one);
      referenceKernels.fp8Gemm(x, w, ref);
    }
    expectSame(batched[i]!.y, one, `${what} job ${i} (${w.kind} ${x.rows}x${w.out}x${w.inF}) vs one by one`);
    expectSame(batched[i]!.y, ref, `${what} job ${i} (${w.kind} ${x.rows}x${w.out}x${w.inF}) vs reference`);
  });
}

test('gemmBatch: mixed FP4/FP8 jobs with shared activations, 1..5 rows, odd output sizes == one by one == reference', { skip }, () => {
  for (const rows of [1, 2, 3, 5]) {
    const xa = acts(rows, 256);
    const xb = acts(rows, 384);
    const jobs = [
      { x: xa, w: fp4Weight(37, 256) },
      { x: xa, w: fp4Weight(1, 256) },
      { x: xa, w: fp8Weight(130, 256) },
      { x: xb, w: fp4Weight(257, 384) },
      { x: xb, w: fp8Weight(3, 384) },
      { x: xa, w: fp8Weight(5, 256) },
    ];
    checkBatch(jobs, `rows ${rows}`);
  }
  // decode-sized: many experts' w1/w3 sharing one activation row, then w2 with their own rows
  const x = acts(1, 1024);
  checkBatch(Array.from({ length: 12 }, () => ({ x, w: fp4Weight(512, 1024) })), 'experts w1/w3');
  checkBatch(Array.from({ length: 6 }, () => ({ x: acts(1, 512), w: fp4Weight(1024, 512) })), 'experts w2');
  checkBatch([], 'empty');
});

test('gemmBatch: NaN weight codes and K not a multiple of 128 go one by one, a NaN activation code sends the whole batch', { skip }, () => {
  const x = acts(2, 256);
  const nanW = fp8Weight(40, 256);
  nanW.data[77] = 0x7f;
  const xs: QuantizedActivations = { rows: 1, cols: 64, q: codes(64), scale: new Float32Array([0.5]) };
  checkBatch([{ x, w: fp4Weight(33, 256) }, { x, w: nanW }, { x, w: fp8Weight(9, 256) }, { x: xs, w: fp8Weight(7, 64) }], 'NaN weight, K=64');
  const xn = acts(3, 256);
  xn.q[300] = 0xff;
  checkBatch([{ x, w: fp4Weight(33, 256) }, { x: xn, w: fp4Weight(21, 256) }, { x: xn, w: fp8Weight(17, 256) }], 'NaN activation');
});

test('fp8AsBf16GemmGroups == fp8AsBf16Gemm per group == exactLinear, flagged elements in every group', { skip }, () => {
  for (const [rows, G, n, K] of [[1, 8, 64, 256], [3, 4, 33, 200], [2, 3, 130, 128], [1, 2, 5, 13]] as const) {
    const scale = new Uint8Array(Math.ceil((G * n) / 128) * Math.ceil(K / 128)).map(() => 110 + randInt(30));
    const w: Fp8Weight = { kind: 'fp8', out: G * n, inF: K, data: codes(G * n * K), scale };
    // NaN codes in the last group's rows and an out-of-range scale (BF16 overflow) where there is more than one scale row
    w.data[(G * n - 1) * K + 3] = 0x7f;
    if (scale.length > Math.ceil(K / 128)) scale[scale.length - 1] = 250;
    const xs = Array.from({ length: G }, () => new Float32Array(rows * K).map(() => Math.fround((rnd() * 2 - 1) * 2 ** (randInt(30) - 15))));
    const ys = xs.map(() => new Float32Array(rows * n).fill(NaN));
    const before = addon!.denseStats().elements;
    nk!.fp8AsBf16GemmGroups!(xs, rows, w, n, ys);
    assert.equal(addon!.denseStats().elements - before, G * rows * n, 'denseStats counts the grouped products');
    for (let g = 0; g < G; g++) {
      const one = new Float32Array(rows * n);
      nk!.fp8AsBf16Gemm!(xs[g]!, rows, w, g * n, n, one);
      expectSame(ys[g]!, one, `groups ${rows}x${G}x${n}x${K} group ${g} vs one call`);
      expectSame(ys[g]!, exactLinear(xs[g]!, rows, w, g * n, n), `groups ${rows}x${G}x${n}x${K} group ${g} vs exactLinear`);
    }
    const viaHelper = groupedDenseRows(nk!, xs, rows, w, n);
    const viaRef = groupedDenseRows(referenceKernels, xs, rows, w, n);
    for (let g = 0; g < G; g++) expectSame(viaHelper[g]!, viaRef[g]!, `groupedDenseRows group ${g}`);
  }
  assert.throws(() => nk!.fp8AsBf16GemmGroups!([new Float32Array(128)], 1, fp8Weight(4, 128), 5, [new Float32Array(5)]), RangeError);
});

/** BF16-valued activations (what linear() receives). */
function bf16Rows(rows: number, cols: number): Float32Array {
  const x = new Float32Array(rows * cols).map(() => (rnd() * 2 - 1) * 2 ** (randInt(8) - 4));
  const u = new Uint32Array(x.buffer);
  for (let i = 0; i < u.length; i++) u[i] = u[i]! & 0xffff0000;
  return x;
}

test('linears and expertsForward: batched == one by one == the TypeScript kernels', { skip }, () => {
  const unbatched: Kernels = { ...nk!, gemmBatch: undefined };
  const x1 = bf16Rows(2, 256);
  const jobs: { x: Float32Array; rows: number; w: Weight }[] = [
    { x: x1, rows: 2, w: fp4Weight(40, 256) },
    { x: x1, rows: 2, w: fp8Weight(17, 256) },
    { x: bf16Rows(1, 128), rows: 1, w: { kind: 'bf16', out: 3, inF: 128, data: new Uint16Array(384).map(() => 0x3f00 + randInt(0x200)) } },
    { x: bf16Rows(0, 256), rows: 0, w: fp4Weight(8, 256) },
  ];
  const got = linears(nk!, jobs);
  jobs.forEach((j, i) => {
    expectSame(got[i]!, linear(unbatched, j.x, j.rows, j.w), `linears job ${i} vs one by one`);
    expectSame(got[i]!, linear(referenceKernels, j.x, j.rows, j.w), `linears job ${i} vs reference`);
  });
  const expert = () => ({ w1: fp4Weight(128, 256), w3: fp4Weight(128, 256), w2: fp4Weight(256, 128) });
  const shared = { w1: fp8Weight(128, 256), w3: fp8Weight(128, 256), w2: fp8Weight(256, 128) };
  const inputs = [
    { e: expert(), x: bf16Rows(1, 256), rows: 1, rw: new Float32Array([0.25]) },
    { e: expert(), x: bf16Rows(3, 256), rows: 3, rw: new Float32Array([0.5, 1.5, 0.125]) },
    { e: shared, x: bf16Rows(2, 256), rows: 2, rw: null },
  ];
  const outs = expertsForward(nk!, inputs, 7);
  inputs.forEach(({ e, x, rows, rw }, i) => {
    expectSame(outs[i]!, expertForward(unbatched, e, x, rows, 7, rw), `expert ${i} vs one by one`);
    expectSame(outs[i]!, expertForward(referenceKernels, e, x, rows, 7, rw), `expert ${i} vs reference`);
  });
});

test('the portable kernels and other thread counts give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '3' }, { DSV4_THREADS: '1' }, { DSV4_THREADS: '5' }]) runTestFileInChild(import.meta.url, env, 4);
});
