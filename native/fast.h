// Fast numerics products (src/tensor/fast-products.ts is the reference): both operands
// dequantized exactly to fp32, then per output one fp32 accumulator, k increasing from 0,
// acc = fma(w, x, acc). Any order of the outputs is fine; each output's k order is not.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels.h"  // roundBf16

namespace dsv4 {
namespace fast {

enum class Kind : int { Fp8 = 0, Fp4 = 1, Bf16 = 2, Fp8AsBf16 = 3 };

constexpr int KC = 256;     // k block: a weight panel (<= 6 KiB) stays in L1, activation tiles in L2
constexpr int NR_MAX = 6;  // weight rows per panel at most

/** One activation matrix: e4m3 codes + 1x128 fp32 scales (quant), or fp32 values. */
struct Act {
  const void* x;
  const float* xs;  // quant only
  int rows, K;
  bool quant;
  float* prep;  // prepared fp32 values (layout of the kernel path), rows padded to mpad
  int tw;       // activation rows per tile: 16 (6-row weight panels) or 24 (4-row panels)
  int mpad;     // rows rounded up to tiles
};

/** Weight rows per panel: AVX2 register tiles of 6 x 16 or 4 x 24 outputs (12 accumulators). */
inline int panelRows(const Act& a) { return a.tw == 24 ? 4 : 6; }

/** The tile height that wastes the fewest lanes for `rows` activation rows: tiles with fewer than 12
 *  accumulators run slower (6 x 8: ~3/4 speed, 4 x 8 and 4 x 16 about as long as 4 x 24). */
inline int tileRows(int rows) {
  const int r16 = rows % 16, r24 = rows % 24;
  const double c16 = rows / 16 * 16 + (r16 == 0 ? 0 : r16 <= 8 ? 32 / 3.0 : 16);
  const double c24 = rows / 24 * 24 + (r24 == 0 ? 0 : r24 <= 16 ? 16 : 24);
  return c24 < c16 ? 24 : 16;
}

/** One product y[rows, n] = act . W[r0 .. r0+n)ᵀ. */
struct Job {
  Kind kind;
  const Act* act;
  const void* w;       // e4m3 / packed e2m1 bytes, or BF16 words
  const uint8_t* ws;   // ue8m0 scales (fp8: 128x128 blocks, fp4: 1x32)
  int r0, n;
  float* y;
};

/** AVX2: floats between the sums of two output columns kept between k blocks: a cache line more
 *  than the rows, so the columns do not share cache sets. */
inline int carryStride(const Act& a) { return a.mpad + 16; }

inline float bitsToFloat(uint32_t u) { return __builtin_bit_cast(float, u); }
inline uint32_t floatBits(float f) { return __builtin_bit_cast(uint32_t, f); }

/** ue8m0 byte as fp32: 2^(b-127) (2^-127 is an fp32 subnormal), 255 NaN. */
// from the bits (libm's ldexpf was a call per 32 FP4 weights): exponent field b, or 2^22 * 2^-149 for b = 0
inline float e8m0(uint8_t b) { return b == 255 ? NAN : bitsToFloat(b ? uint32_t(b) << 23 : 0x400000u); }

/** Exact e4m3 value (0x7f/0xff NaN). */
inline float e4m3(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return NAN;
  const float v = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(float(8 + m), e - 10);
  return (c & 0x80) ? -v : v;
}

inline float e2m1(uint8_t nib) {
  static const float t[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  return t[nib & 15];
}

/** Dequantized weight row r (absolute), k in [k0, k1), into out[0 .. k1-k0): the portable form. */
inline void weightRow(const Job& j, int r, int k0, int k1, float* out) {
  const int K = j.act->K;
  switch (j.kind) {
    case Kind::Fp8:
    case Kind::Fp8AsBf16: {
      const uint8_t* w = static_cast<const uint8_t*>(j.w) + size_t(r) * K;
      const int nkb = (K + 127) / 128;
      for (int k = k0; k < k1; k++) {
        // e4m3 x 2^e is exact in fp32 or overflows: fp32 multiplies round as the reference
        const uint8_t b = j.ws[size_t(r >> 7) * nkb + (k >> 7)];
        if (j.kind == Kind::Fp8) out[k - k0] = e4m3(w[k]) * e8m0(b);
        else out[k - k0] = roundBf16(b == 255 ? e4m3(w[k]) * 0x1p127f * 2.0f : e4m3(w[k]) * e8m0(b));  // dense.ts: 2^128, not NaN
      }
      break;
    }
    case Kind::Fp4: {
      const uint8_t* w = static_cast<const uint8_t*>(j.w) + size_t(r) * (K / 2);
      const uint8_t* s = j.ws + size_t(r) * (K / 32);
      for (int k = k0; k < k1; k++) out[k - k0] = e2m1(uint8_t(w[k >> 1] >> ((k & 1) * 4))) * e8m0(s[k >> 5]);
      break;
    }
    case Kind::Bf16: {
      const uint16_t* w = static_cast<const uint16_t*>(j.w) + size_t(r) * K;
      for (int k = k0; k < k1; k++) out[k - k0] = bitsToFloat(uint32_t(w[k]) << 16);
      break;
    }
  }
}

/** Dequantized activation (m, k): code x scale (one fp32 rounding) or the fp32 value. */
inline float actValue(const Act& a, int m, int k) {
  if (!a.quant) return static_cast<const float*>(a.x)[size_t(m) * a.K + k];
  return e4m3(static_cast<const uint8_t*>(a.x)[size_t(m) * a.K + k]) * a.xs[size_t(m) * (a.K / 128) + (k >> 7)];
}

namespace scalar {
/** Prepared layout: row-major [rows][K] fp32; tiles [t0, t1) of a.tw rows. */
void prepare(const Act& a, int t0, int t1);
/** Panels [p0, p1) (panelRows weight rows each) x tiles [t0, t1) (a.tw activation rows each) of j. */
void run(const Job& j, int p0, int p1, int t0, int t1);
}  // namespace scalar

namespace avx2 {
/** Prepared layout: per k block of KC, per tile, [k][a.tw] fp32 (rows >= a.rows zero). */
void prepare(const Act& a, int t0, int t1);
/** Panels [p0, p1) x tiles [t0, t1) of j. */
void run(const Job& j, int p0, int p1, int t0, int t1);
}  // namespace avx2

}  // namespace fast
}  // namespace dsv4
