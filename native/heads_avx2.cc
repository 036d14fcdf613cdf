// AVX2 version of the Hadamard + FP4 step of ops2.h head (ROPE_HADAMARD_FP4: the indexer's queries
// and compressed keys). Every float64 operation and fp32 rounding is the scalar path's
// (ops2_scalar.cc hadamard, fp4InPlace), in the same order per element: the butterflies add and
// subtract the same operands, products by the powers of two are rounded once from float64, the
// E2M1 code counts the same thresholds. It takes only the common case, the transform exact in
// float64 (decided by the scalar path's own test) with finite outputs; anything else returns false
// with x untouched, and the scalar path runs.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "bf16_round8.h"
#include "kernels.h"  // roundBf16
#include "ops.h"      // settle
#include "ops2.h"

namespace dsv4 {
namespace ops2 {
namespace avx2 {

namespace {
constexpr int kMaxN = 1024;

/** fl32(a_i * s) for 8 fp32 lanes and a float64 s: the product in float64, rounded once. */
inline __m256 mulRound(__m256 a, __m256d s) {
  const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), s));
  const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), s));
  return _mm256_set_m128(hi, lo);
}

/** One 32-value block of quant.ts fp4ActQuantInPlace from h into x; false when its amax is not finite. */
inline bool fp4Block(const float* h, float* x) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4], m = _mm256_setzero_ps();
  for (int i = 0; i < 4; i++) {
    v[i] = _mm256_loadu_ps(h + 8 * i);
    m = _mm256_max_ps(m, _mm256_and_ps(v[i], absMask));
  }
  alignas(32) float mx[8];
  _mm256_store_ps(mx, m);
  float amax = 0;
  for (int i = 0; i < 8; i++) amax = mx[i] > amax ? mx[i] : amax;
  if (!std::isfinite(amax)) return false;
  const float FP4_INV = float(1.0 / 6), FP4_AMAX_MIN = float(6 * 0x1p-126);
  const double s = pow2CeilScale(float(double(amax < FP4_AMAX_MIN ? FP4_AMAX_MIN : amax) * FP4_INV)), inv = 1 / s;  // exact
  const __m256d S = _mm256_set1_pd(s), Inv = _mm256_set1_pd(inv);
  const __m256 lim = _mm256_set1_ps(6), nlim = _mm256_set1_ps(-6), signMask = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)));
  const __m256 values = _mm256_setr_ps(0, 0.5f, 1, 1.5f, 2, 3, 4, 6);
  for (int i = 0; i < 4; i++) {
    const __m256 c = _mm256_min_ps(_mm256_max_ps(mulRound(v[i], Inv), nlim), lim);  // clampF of finite values
    const __m256 a = _mm256_and_ps(c, absMask);
    // e2m1Round: the thresholds passed (each true compare is -1), ties to the even code
    __m256i code = _mm256_setzero_si256();
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_GT_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(0.75f), _CMP_GE_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(1.25f), _CMP_GT_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(1.75f), _CMP_GE_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(2.5f), _CMP_GT_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(3.5f), _CMP_GE_OQ)));
    code = _mm256_sub_epi32(code, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(5.0f), _CMP_GT_OQ)));
    const __m256 q = _mm256_or_ps(_mm256_permutevar8x32_ps(values, code), _mm256_and_ps(c, signMask));  // copysign
    _mm256_storeu_ps(x + 8 * i, bf16Round8(mulRound(q, S)));
  }
  return true;
}
}  // namespace

bool hadamardFp4(float* x, int n, float scale) {
  if (n < 32 || n > kMaxN || n % 32 || (n & (n - 1))) return false;
  alignas(32) double b[kMaxN];
  alignas(32) float h[kMaxN];
  // the scalar path's exactness test, computed as it does
  double t = 0;
  int lsb = 1 << 20;
  for (int i = 0; i < n; i++) {
    b[i] = x[i];
    t += std::fabs(double(x[i]));
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    u &= 0x7fffffffu;
    if (u == 0) continue;
    const int e = int(u >> 23);
    const int l = __builtin_ctz((u & 0x7fffff) | (e ? 0x800000u : 0)) + (e ? e : 1) - 150;
    lsb = l < lsb ? l : lsb;
  }
  if (!(lsb < 900 && t < std::ldexp(1.0, lsb + 53))) return false;
  // butterflies of length 1 and 2 inside each 4-lane vector, then across vectors (b[k] +- b[k + len])
  for (int k = 0; k < n; k += 4) {
    __m256d v = _mm256_load_pd(b + k);
    __m256d u = _mm256_movedup_pd(v), w = _mm256_permute_pd(v, 0xf);  // [v0 v0 v2 v2], [v1 v1 v3 v3]
    v = _mm256_blend_pd(_mm256_add_pd(u, w), _mm256_sub_pd(u, w), 0xa);
    u = _mm256_permute2f128_pd(v, v, 0x00), w = _mm256_permute2f128_pd(v, v, 0x11);  // [v0 v1 v0 v1], [v2 v3 v2 v3]
    _mm256_store_pd(b + k, _mm256_blend_pd(_mm256_add_pd(u, w), _mm256_sub_pd(u, w), 0xc));
  }
  for (int len = 4; len < n; len <<= 1)
    for (int i = 0; i < n; i += len << 1)
      for (int k = i; k < i + len; k += 4) {
        const __m256d u = _mm256_load_pd(b + k), w = _mm256_load_pd(b + k + len);
        _mm256_store_pd(b + k, _mm256_add_pd(u, w));
        _mm256_store_pd(b + k + len, _mm256_sub_pd(u, w));
      }
  // exact sums: fl32 of each (an exact zero as +0), then bf16(fl32(r * scale))
  const __m256d S = _mm256_set1_pd(double(scale)), zero = _mm256_setzero_pd();
  const __m256i expMask = _mm256_set1_epi32(0x7f800000);
  __m256i special = _mm256_setzero_si256();
  for (int j = 0; j < n; j += 8) {
    const __m256d lo = _mm256_load_pd(b + j), hi = _mm256_load_pd(b + j + 4);
    const __m128 rl = _mm256_cvtpd_ps(_mm256_and_pd(lo, _mm256_cmp_pd(lo, zero, _CMP_NEQ_UQ)));
    const __m128 rh = _mm256_cvtpd_ps(_mm256_and_pd(hi, _mm256_cmp_pd(hi, zero, _CMP_NEQ_UQ)));
    const __m256 r = bf16Round8(mulRound(_mm256_set_m128(rh, rl), S));
    special = _mm256_or_si256(special, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(r), expMask), expMask));
    _mm256_store_ps(h + j, r);
  }
  if (!_mm256_testz_si256(special, special)) return false;
  for (int j = 0; j < n; j += 32)
    if (!fp4Block(h + j, x + j)) return false;  // not reached: h is finite
  return true;
}

bool rmsScale(float* x, int n, float eps) {
  if (n <= 0 || n % 8 != 0) return false;
  // the BF16 squares (fp32 products, as float(double(x) * x): x² is exact in float64) in 8 float64 sums
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (int i = 0; i < n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = bf16Round8(_mm256_mul_ps(v, v));
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  alignas(32) double l[4];
  _mm256_store_pd(l, _mm256_add_pd(s0, s1));
  const double s = (l[0] + l[1]) + (l[2] + l[3]);
  // the scalar path's bound: nonnegative terms, each through <= n/8 + 3 <= n - 1 additions
  constexpr double U = 0x1p-53;
  float mean;
  if (s == 0) mean = 0.0f;
  else if (!ops::settle(s / n, (s * (n + 2) * U * 1.01) / n + std::fabs(s / n) * 2 * U, &mean)) return false;
  const float v = roundBf16(float(double(roundBf16(mean)) + eps));
  // rs is a BF16 value, so fl32(x * rs) is the float64 product rounded once
  const __m256 rs = _mm256_set1_ps(roundBf16(float(1 / std::sqrt(double(v)))));
  for (int i = 0; i < n; i += 8) _mm256_storeu_ps(x + i, bf16Round8(_mm256_mul_ps(_mm256_loadu_ps(x + i), rs)));
  return true;
}

}  // namespace avx2
}  // namespace ops2
}  // namespace dsv4
#endif
