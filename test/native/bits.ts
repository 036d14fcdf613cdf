// Bit-for-bit comparison of kernel outputs with the reference (any NaN matches any NaN).
import assert from 'node:assert/strict';

export function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(want[i]!) && Number.isNaN(got[i]!)) continue;
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i}: native ${got[i]} (0x${g[i]!.toString(16)}) != reference ${want[i]} (0x${w[i]!.toString(16)})`);
  }
}

/** Element-wise Object.is of fp32 or float64 outputs (-0 differs from +0; any NaN matches any NaN). */
export function assertSameValues(got: Float32Array | Float64Array, want: Float32Array | Float64Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(want[i]) && Number.isNaN(got[i])) continue;
    assert.ok(Object.is(got[i], want[i]), `${what}[${i}]: native ${got[i]} != reference ${want[i]}`);
  }
}
