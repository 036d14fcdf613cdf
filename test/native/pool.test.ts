// The pool's two kinds of jobs back to back (native/pool.cc): decode-sized products run as chunks
// claimed by whichever thread is free (runChunks), prefill-sized ones as one static share per
// thread (run). Hundreds of alternating calls, each checked bit for bit against the TypeScript
// reference: a worker taking a stale job, a chunk run twice or skipped would show as a wrong or
// unwritten (NaN) element. Also with 1, 3 and 5 threads (child processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { exactLinear } from '../../src/model/linear.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;
const rnd = xorshift(0x2545f491);
const randInt = (n: number) => Math.floor(rnd() * n);

/** e4m3 codes without NaN (0x7f / 0xff). */
const code = () => {
  const c = randInt(256);
  return (c & 0x7f) === 0x7f ? c - 1 : c;
};

function acts(rows: number, cols: number): QuantizedActivations {
  const q = new Uint8Array(rows * cols).map(code);
  const scale = new Float32Array((rows * cols) / 128).map(() => 2 ** (randInt(40) - 20));
  return { rows, cols, q, scale };
}

function fp8Weight(out: number, inF: number): Fp8Weight {
  const data = new Uint8Array(out * inF).map(code);
  const scale = new Uint8Array(Math.ceil(out / 128) * (inF / 128)).map(() => 117 + randInt(20));
  return { kind: 'fp8', out, inF, data, scale };
}

function fp4Weight(out: number, inF: number): Fp4Weight {
  const data = new Uint8Array((out * inF) / 2).map(() => randInt(256));
  const scale = new Uint8Array((out * inF) / 32).map(() => 117 + randInt(20));
  return { kind: 'fp4', out, inF, data, scale };
}

function bf16Weight(out: number, inF: number): Bf16Weight {
  // finite BF16 values of moderate range: sign, exponent 100..150, random mantissa
  const data = new Uint16Array(out * inF).map(() => (randInt(2) << 15) | ((100 + randInt(51)) << 7) | randInt(128));
  return { kind: 'bf16', out, inF, data };
}

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer), w = new Uint32Array(want.buffer);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.fail(`${what}: element ${i}: ${got[i]} != ${want[i]}`);
}

test('chunked (1-row) and static (many-row) jobs alternating, 300 calls, every output bit-exact', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  // each product large enough to be split (>= 256 KiB of work per share: several chunks per thread)
  const w8 = fp8Weight(2003, 1024), w4 = fp4Weight(1501, 1024), wb = bf16Weight(1200, 1024);
  const x1 = acts(1, 1024), x8 = acts(8, 1024);
  const xf = Float32Array.from({ length: 1024 }, () => Math.fround((rnd() - 0.5) * 2 ** (randInt(20) - 10)));
  const calls: { run: (y: Float32Array) => void; want: Float32Array; what: string }[] = [];
  const add = (what: string, n: number, ref: (y: Float32Array) => void, run: (y: Float32Array) => void) => {
    const want = new Float32Array(n);
    ref(want);
    calls.push({ run, want, what });
  };
  add('fp8 1 row', 2003, (y) => referenceKernels.fp8Gemm(x1, w8, y), (y) => nk.fp8Gemm(x1, w8, y));
  add('fp8 8 rows', 8 * 2003, (y) => referenceKernels.fp8Gemm(x8, w8, y), (y) => nk.fp8Gemm(x8, w8, y));
  add('fp4 1 row', 1501, (y) => referenceKernels.fp4Gemm(x1, w4, y), (y) => nk.fp4Gemm(x1, w4, y));
  add('bf16 1 row', 1200, (y) => y.set(exactLinear(xf, 1, wb)), (y) => nk.bf16Gemm!(xf, 1, wb, y));
  add('batch 1 row', 2003 + 1501, (y) => {
    referenceKernels.fp8Gemm(x1, w8, y.subarray(0, 2003));
    referenceKernels.fp4Gemm(x1, w4, y.subarray(2003));
  }, (y) => nk.gemmBatch!([{ x: x1, w: w8, y: y.subarray(0, 2003) }, { x: x1, w: w4, y: y.subarray(2003) }]));
  for (let i = 0; i < 300; i++) {
    const c = calls[i % 5 === 1 ? 1 : randInt(calls.length)]!;
    const got = new Float32Array(c.want.length).fill(NaN);
    c.run(got);
    sameBits(got, c.want, `call ${i} (${c.what})`);
  }
});

if (!process.env.DSV4_TEST_CHILD) {
  test('the same with 1, 3 and 5 threads (child processes)', { skip }, () => {
    for (const env of [{ DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }, { DSV4_THREADS: '5' }]) runTestFileInChild(import.meta.url, env, 1);
  });
}
