import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  E4M3_VALUES, E2M1_VALUES, e4m3Encode, e2m1Encode, e8m0Value, e8m0Encode, bf16Bits, bf16Value, roundBf16,
  packE2M1, unpackE2M1, f32ToBf16,
} from '../../src/tensor/formats.js';
import { e4m3Code, e2m1Code, pow2CeilScale, actQuant, actQuantInPlace, fp4ActQuantInPlace, fp8BlockScale } from '../../src/tensor/quant.js';

test('every E4M3FN code decodes per spec §2.1 and re-encodes to itself', () => {
  let finite = 0;
  for (let c = 0; c < 256; c++) {
    const v = E4M3_VALUES[c]!;
    if ((c & 0x7f) === 0x7f) { assert.ok(Number.isNaN(v)); continue; }
    finite++;
    assert.equal(e4m3Encode(v), c, `code ${c}`);
    assert.equal(e4m3Code(v), c, `fast code ${c}`);
  }
  assert.equal(finite, 254);
  assert.equal(E4M3_VALUES[0x7e], 448);
  assert.equal(E4M3_VALUES[0x01], 2 ** -9);
  assert.equal(E4M3_VALUES[0x08], 2 ** -6);
  assert.equal(E4M3_VALUES[0x07], 7 * 2 ** -9);
});

test('E4M3 rounding: midpoints go to the even code, both encoders agree', () => {
  const pos = [...Array(127).keys()].map((c) => E4M3_VALUES[c]!);
  for (let c = 0; c + 1 < pos.length; c++) {
    const mid = (pos[c]! + pos[c + 1]!) / 2;
    const even = c % 2 === 0 ? c : c + 1;
    assert.equal(e4m3Code(mid), even, `tie between ${c} and ${c + 1}`);
    assert.equal(e4m3Encode(mid), even);
    assert.equal(e4m3Code(-mid), 0x80 | even);
    const below = Math.fround(mid - mid * 2 ** -20);
    const above = Math.fround(mid + mid * 2 ** -20);
    assert.equal(e4m3Code(below), c);
    assert.equal(e4m3Code(above), c + 1);
    assert.equal(e4m3Encode(below), c);
    assert.equal(e4m3Encode(above), c + 1);
  }
  assert.equal(e4m3Code(448), 0x7e);
  assert.equal(e4m3Code(-448), 0xfe);
  assert.equal(e4m3Code(2 ** -10), 0); // tie at half the smallest subnormal -> 0
  assert.equal(e4m3Code(3 * 2 ** -10), 2); // tie 1.5 subnormal ulps -> even (2)
});

test('every E2M1 nibble, ties to even, saturation, packing (low nibble = even element)', () => {
  assert.deepEqual([...E2M1_VALUES.slice(0, 8)], [0, 0.5, 1, 1.5, 2, 3, 4, 6]);
  for (let c = 0; c < 16; c++) {
    if (c === 8) { assert.ok(Object.is(E2M1_VALUES[c], -0)); }
    assert.equal(e2m1Code(E2M1_VALUES[c]!), c);
    assert.equal(e2m1Encode(E2M1_VALUES[c]!), c);
  }
  const ties: [number, number][] = [[0.25, 0], [0.75, 2], [1.25, 2], [1.75, 4], [2.5, 4], [3.5, 6], [5, 6]];
  for (const [v, c] of ties) {
    assert.equal(e2m1Code(v), c, `tie ${v}`);
    assert.equal(e2m1Encode(v), c);
    assert.equal(e2m1Code(-v), 8 | c);
  }
  for (let v = -7; v <= 7; v += 1 / 64) assert.equal(e2m1Code(Math.max(-6, Math.min(6, v))), e2m1Encode(v), `v=${v}`);
  const packed = packE2M1([1, 2, 15, 7]);
  assert.deepEqual([...packed], [0x21, 0x7f]);
  assert.equal(unpackE2M1(packed, 0), 0.5);
  assert.equal(unpackE2M1(packed, 1), 1);
  assert.equal(unpackE2M1(packed, 2), -6);
  assert.equal(unpackE2M1(packed, 3), 6);
});

test('every UE8M0 byte', () => {
  for (let b = 0; b < 255; b++) {
    assert.equal(e8m0Value(b), 2 ** (b - 127));
    assert.equal(e8m0Encode(2 ** (b - 127)), b);
  }
  assert.ok(Number.isNaN(e8m0Value(255)));
});

test('BF16 RNE: ties to even, carries, inf, NaN, subnormals', () => {
  assert.equal(bf16Bits(1), 0x3f80);
  assert.equal(bf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(bf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie -> even (up)
  assert.equal(bf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(bf16Bits(Math.fround(3.3895313892515355e38)), 0x7f7f);
  assert.equal(bf16Bits(3.4028234663852886e38), 0x7f80); // rounds up to inf
  assert.equal(bf16Bits(-Infinity), 0xff80);
  assert.equal(bf16Bits(NaN), 0x7fc0);
  assert.equal(bf16Bits(2 ** -133), 0x0001);
  assert.equal(bf16Bits(2 ** -134), 0x0000); // tie -> even (0)
  assert.equal(bf16Value(0xbf80), -1);
  // f64 input rounds to fp32 first (canonical double rounding)
  const x = 1 + 2 ** -8 + 2 ** -40; // fp32 rounding removes 2^-40, then the tie goes to even
  assert.equal(roundBf16(x), 1);
});

test('f32ToBf16 == bf16Bits per element (all exponents, ties, NaN payloads, a view at an offset)', () => {
  const bits = new Uint32Array(4097);
  for (let i = 0; i < bits.length; i++) bits[i] = (Math.imul(i, 2654435761) ^ (i << 7)) >>> 0;
  [0x3f808000, 0x3f818000, 0x7f800001, 0xffc12345, 0x7f800000, 0x00008000, 0x7f7fffff, 0x80000000].forEach((b, i) => (bits[i * 5] = b));
  const a = new Float32Array(bits.buffer, 4);
  const got = f32ToBf16(a);
  for (let i = 0; i < a.length; i++) assert.equal(got[i], bf16Bits(a[i]!), `element ${i}`);
});

test('act_quant scale: power of two from the fp32 product, ceil-log2 edge (§2.3)', () => {
  assert.equal(pow2CeilScale(1), 1);
  assert.equal(pow2CeilScale(Math.fround(1 + 2 ** -23)), 2);
  assert.equal(pow2CeilScale(0.75), 1);
  // amax = 448: fl32(448 * fl32(1/448)) rounds back to exactly 1 -> scale 1; the next BF16 (450) -> 2
  const inv = Math.fround(1 / 448);
  assert.equal(Math.fround(448 * inv), 1);
  assert.equal(fp8BlockScale(new Float32Array([448]), 0, 1), 1);
  assert.equal(fp8BlockScale(new Float32Array([-450]), 0, 1), 2);
  // fp32 amax just below 448*2^k whose product rounds up onto the power of two
  assert.equal(fp8BlockScale(new Float32Array([Math.fround(448 * (1 - 2 ** -24))]), 0, 1), 1);
  assert.equal(fp8BlockScale(new Float32Array([0]), 0, 1), pow2CeilScale(Math.fround(Math.fround(1e-4) * inv)));
  const x = new Float32Array(128).map((_, i) => roundBf16((i - 64) * 0.37));
  const qa = actQuant(x, 1, 128);
  const s = qa.scale[0]!;
  assert.equal(s, pow2CeilScale(Math.fround(roundBf16(64 * 0.37) * inv)));
  for (let i = 0; i < 128; i++) assert.equal(qa.q[i], e4m3Code(Math.fround(x[i]! / s)));
  const y = x.slice();
  actQuantInPlace(y, 0, 128, 64);
  for (let b = 0; b < 2; b++) {
    const sb = fp8BlockScale(x, b * 64, 64);
    for (let i = b * 64; i < b * 64 + 64; i++) assert.equal(y[i], roundBf16(E4M3_VALUES[e4m3Code(x[i]! / sb)]! * sb));
  }
  const z = new Float32Array(32).map((_, i) => roundBf16(i * 0.1 - 1.2));
  const z0 = z.slice();
  fp4ActQuantInPlace(z, 0, 32);
  const s4 = pow2CeilScale(Math.fround(roundBf16(31 * 0.1 - 1.2) * Math.fround(1 / 6)));
  for (let i = 0; i < 32; i++) assert.equal(z[i], E2M1_VALUES[e2m1Code(Math.max(-6, Math.min(6, z0[i]! / s4)))]! * s4);
});
