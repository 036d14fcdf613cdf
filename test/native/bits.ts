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
