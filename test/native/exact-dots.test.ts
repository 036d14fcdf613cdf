// opsExactDotsBf16 (native/ops_addon.cc): the flagged outputs of the native BF16 products settled as
// exact.ts dotF32 does (two float64 lanes, its bound, the TwoSum stage), the same bits as exactLinear;
// what it leaves undecided stays flagged for the TypeScript (denseProduct in tensor/native.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../../src/tensor/native.js';
import { exactLinear } from '../../src/model/linear.js';
import type { Bf16Weight } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';
import { bf16Bits } from '../../src/tensor/formats.js';

const { addon, reason } = loadNative();
const skip = addon?.opsExactDotsBf16 ? false : `native exactDotsBf16 unavailable: ${addon ? 'addon predates it' : reason}`;

const rnd = xorshift(0x1234567);

/** Flags every output of rows x [r0, r0+n), settles them natively, checks the settled ones against exactLinear. */
function check(x: Float32Array, rows: number, w: Bf16Weight, r0: number, n: number, what: string): { left: number; total: number } {
  const ambOff = 3;
  const amb = new Uint8Array(ambOff + rows * n + 2).fill(1);
  const y = new Float32Array(rows * n).fill(NaN);
  const left = addon!.opsExactDotsBf16!(x, rows, w.inF, w.data, r0, n, amb, ambOff, y);
  const want = exactLinear(x, rows, w, r0, n);
  let flagged = 0;
  for (let i = 0; i < rows * n; i++) {
    if (amb[ambOff + i]) {
      flagged++;
      assert.ok(Number.isNaN(y[i]), `${what}[${i}]: left flagged but written`);
    } else assert.ok(Object.is(y[i], want[i]), `${what}[${i}]: native ${y[i]} != reference ${want[i]}`);
  }
  assert.equal(left, flagged, `${what}: count of entries left`);
  assert.equal(amb[0] + amb[1] + amb[2] + amb[ambOff + rows * n]! + amb[ambOff + rows * n + 1]!, 5, `${what}: flags outside the range untouched`);
  return { left, total: rows * n };
}

test('exactDotsBf16: random wide-range products == exactLinear (odd K, row offsets)', { skip }, () => {
  for (const [rows, K, out, r0, n] of [[1, 2048, 40, 3, 30], [3, 300, 17, 0, 17], [2, 7, 9, 4, 5]] as const) {
    const w: Bf16Weight = { kind: 'bf16', out, inF: K, data: new Uint16Array(out * K).map(() => bf16Bits((rnd() * 2 - 1) * 2 ** Math.floor(rnd() * 40 - 20))) };
    const x = new Float32Array(rows * K).map(() => Math.fround((rnd() * 2 - 1) * 2 ** Math.floor(rnd() * 30 - 15)));
    const { left } = check(x, rows, w, r0, n, `random ${rows}x${K}`);
    assert.equal(left, 0, `random ${rows}x${K}: all decided`);
  }
});

test('exactDotsBf16: fp32 midpoints behind cancelling terms (the TwoSum stage), zeros, exact cancellation, non-finite left', { skip }, () => {
  const K = 64;
  const rows = 6;
  const w: Bf16Weight = { kind: 'bf16', out: 1, inF: K, data: new Uint16Array(K).fill(bf16Bits(1)) };
  const x = new Float32Array(rows * K);
  const row = (r: number, vals: number[]) => vals.forEach((v, i) => (x[r * K + i] = v));
  row(0, [2 ** 20, -(2 ** 20), 1, 2 ** -24]); // 1 + 2^-24: a tie, to even (1)
  row(1, [2 ** 20, -(2 ** 20), 1, 3 * 2 ** -24]); // above the midpoint
  row(2, [-(2 ** 20), 2 ** 20, -1, -(2 ** -24), 2 ** -60]); // 2^-60 inside a midpoint: beyond TwoSum, left
  row(3, []); // all zero: +0
  row(4, [3, 2 ** 30, -3, -(2 ** 30)]); // cancels exactly to 0
  row(5, [1, Infinity]); // non-finite: left to the TypeScript
  const amb = new Uint8Array(rows).fill(1);
  addon!.opsExactDotsBf16!(x, rows, K, w.data, 0, 1, amb, 0, new Float32Array(rows));
  assert.deepEqual([...amb], [0, 0, 1, 0, 0, 1], 'the midpoint and cancellation rows decided, the last two bits and the non-finite row left');
  check(x, rows, w, 0, 1, 'adversarial');
});
