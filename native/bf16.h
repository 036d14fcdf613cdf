// Exact dense products with BF16 values (F.linear under canonical rounding):
// y = RN32(exact x . w^T) for fp32 activations and weights that are BF16, or
// FP8 e4m3 codes times their ue8m0 128x128 block scale (wo_a, which the
// reference dequantizes to BF16: bf16(fp8 * scale) == fp8 * scale when the
// scale byte is in [3, 245]). Every product is exact in float64; the float64
// sum is certified in up to two passes (bf16_avx2.cc), else the element is
// flagged for the caller's exact path.
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>

namespace dsv4 {

enum class DenseKind : int { Bf16 = 0, Fp8 = 1 };

/** One call: y[m, j] for m < rows, j < n, weight rows r0 + j. */
struct DenseArgs {
  const float* x;       // [rows, K]
  int rows;
  int K;
  DenseKind kind;
  const void* w;        // Bf16: uint16 bits [*, K]; Fp8: e4m3 codes [*, K]
  const uint8_t* ws;    // Fp8: ue8m0 [ceil(*/128), ceil(K/128)]; Bf16: unused
  int r0;               // first weight row
  int n;                // weight rows used
  const float* bounds;  // [*, denseBoundsStride(K)] per-weight-row summary (denseBounds), or null
  float* y;             // [rows, n]
  uint8_t* amb;         // [rows, n]: 1 where the caller must compute the element exactly
  uint64_t call = 0;    // nextDenseCall() of the entry point's call (0: none): a thread running several
                        // chunks of one call prepares the activations once (decode GEMVs)
};

/** A number no other call of this process gets (never 0). */
uint64_t nextDenseCall();

/** Fallback counters of one call (tests and benchmarks read them). */
struct DenseStats {
  uint32_t tight = 0;    // elements recomputed with the tight bound (level 2)
  uint32_t flagged = 0;  // elements left to the caller (level 3)
};

/** Scale byte range where fp8 * 2^(b-127) is exactly a BF16 value. */
inline bool fp8ScaleExact(uint8_t b) { return b >= 3 && b <= 245; }

/** Floats per weight row in the bounds array: one per 128-column block, then the row's lsb. */
inline int denseBoundsStride(int K) { return (K + 127) / 128 + 1; }

/** For weight rows [r0, r1) (K columns), row r at bounds + r * denseBoundsStride(K): entry b >= sum
 *  over the 128-column block b of |w[r, k]| (value units; NaN for NaN/Inf weights or inexact fp8
 *  scales), then the min lsb exponent of the row's values (+Inf: all zero, NaN: not finite). */
void denseBounds(DenseKind kind, const void* w, const uint8_t* ws, int K, int r0, int r1, float* bounds);

/** The row lsb stored by denseBounds as an int (INT_MAX: all zero, INT_MIN: unknown). */
inline int denseBoundsLsb(float v) { return v != v ? INT_MIN : v > 1e9f ? INT_MAX : int(v); }

/** Exact values of weight row r as doubles (fp8: code value times block scale; NaN where the
 *  scale byte is outside [3, 245] or the code is NaN). */
void denseRowValues(DenseKind kind, const void* w, const uint8_t* ws, int K, int r, double* out);

namespace scalar {
/** Output columns [j0, j1): exact float64 products, tight error bound, exactness certificate. */
void denseRows(const DenseArgs& a, int j0, int j1, DenseStats& st);
}  // namespace scalar

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
/** Output columns [j0, j1), AVX2 + FMA (requires bounds). */
void denseRows(const DenseArgs& a, int j0, int j1, DenseStats& st);
/** denseBounds of BF16 rows (the row lsb as a lower bound: exponents only). */
void denseBoundsBf16(const uint16_t* w, int K, int r0, int r1, float* bounds);
}  // namespace avx2
#endif

}  // namespace dsv4
