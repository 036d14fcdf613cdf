// AVX2 + FMA version of ops2.h swiglu: 4 elements per step in float64 lanes with a polynomial exp.
// That exp is not libm's, but it is within 2^-50 of e^x (reduction by ln 2 in two parts, a
// degree-13 Taylor polynomial on |r| <= 0.35, FMA Horner), so the certificate of the scalar
// path applies with a wider margin: V8's quotient is within 2^-48 of ours (relative) and we
// accept the fp32 rounding only when it holds over ±2^-44. Any lane not settled that way (or
// with a non-finite input, or |gate| > 700) sends its 4 elements through the scalar path.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops2.h"

namespace dsv4 {
namespace ops2 {
namespace avx2 {

namespace {
/** e^x for |x| <= 700 (2^n stays a normal float64). */
inline __m256d exp4(__m256d x) {
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);  // ln 2, high part (32 bits)
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);          // ln 2, low part
  // Σ_{k<=13} r^k / k!, Horner from the top coefficient
  static const double kInvFact[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                      1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};
  __m256d p = _mm256_set1_pd(kInvFact[13]);
  for (int k = 12; k >= 0; k--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kInvFact[k]));
  const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n)), _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

/** exp4 of V vectors at once, the same operations per lane: V independent Horner chains interleaved
 *  (one chain leaves the FMA pipes waiting on its latency: 14 dependent FMAs per exp). */
template <int V>
inline void expN(__m256d* x) {
  static const double kInvFact[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                      1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};
  __m256d n[V], r[V], p[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; v++) {
    n[v] = _mm256_round_pd(_mm256_mul_pd(x[v], _mm256_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r[v] = _mm256_fnmadd_pd(n[v], _mm256_set1_pd(6.93147180369123816490e-01), x[v]);
    r[v] = _mm256_fnmadd_pd(n[v], _mm256_set1_pd(1.90821492927058770002e-10), r[v]);
    p[v] = _mm256_set1_pd(kInvFact[13]);
  }
#pragma GCC unroll 13
  for (int k = 12; k >= 0; k--) {
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) p[v] = _mm256_fmadd_pd(p[v], r[v], _mm256_set1_pd(kInvFact[k]));
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; v++) {
    const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n[v])), _mm256_set1_epi64x(1023)), 52);
    x[v] = _mm256_mul_pd(p[v], _mm256_castsi256_pd(e));
  }
}

/** formats.ts roundBf16 of 4 finite-or-infinite fp32 lanes (RNE on the bits). */
inline __m128 bf16x4(__m128 v) {
  const __m128i b = _mm_castps_si128(v);
  const __m128i odd = _mm_and_si128(_mm_srli_epi32(b, 16), _mm_set1_epi32(1));
  const __m128i r = _mm_add_epi32(_mm_add_epi32(b, _mm_set1_epi32(0x7fff)), odd);
  return _mm_castsi128_ps(_mm_slli_epi32(_mm_srli_epi32(r, 16), 16));
}
}  // namespace

void swiglu(const float* g, const float* u, size_t i0, size_t i1, int inter, double limit, const float* rw, float* h,
            std::vector<uint32_t>& undecided) {
  const __m256d lim = _mm256_set1_pd(limit), nlim = _mm256_set1_pd(-limit), one = _mm256_set1_pd(1.0);
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  const __m128 absMask32 = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)), inf = _mm_set1_ps(INFINITY);
  const __m256d range = _mm256_set1_pd(700), margin = _mm256_set1_pd(0x1p-44);
  const bool clamp = limit > 0;
  constexpr int V = 4;  // vectors per step: their exps' FMA chains interleaved
  // elements j..j+3 from g, u (as loaded: gf, uf; widened and clamped: gv, uv) and ex = exp(-gv): silu(g) * u
  // (times the routing weight w), stored as BF16 where certified, else the portable path for the 4
  const auto finish = [&](__m128 gf, __m128 uf, __m256d gv, __m256d uv, __m256d ex, __m256d w, size_t j) {
    const __m128 finite = _mm_and_ps(_mm_cmp_ps(_mm_and_ps(gf, absMask32), inf, _CMP_LT_OQ), _mm_cmp_ps(_mm_and_ps(uf, absMask32), inf, _CMP_LT_OQ));
    const __m256d inRange = _mm256_cmp_pd(_mm256_and_pd(gv, absMask), range, _CMP_LE_OQ);
    const __m256d d = _mm256_div_pd(gv, _mm256_add_pd(one, ex));
    const __m256d err = _mm256_mul_pd(_mm256_and_pd(d, absMask), margin);
    const __m128 f = _mm256_cvtpd_ps(d);
    const __m128 same = _mm_and_ps(_mm_cmp_ps(_mm256_cvtpd_ps(_mm256_sub_pd(d, err)), f, _CMP_EQ_OQ),
                                   _mm_cmp_ps(_mm256_cvtpd_ps(_mm256_add_pd(d, err)), f, _CMP_EQ_OQ));
    const int ok = _mm_movemask_ps(_mm_and_ps(finite, same)) & _mm256_movemask_pd(inRange);
    if (ok != 15) return ops2::swiglu(g, u, j, j + 4, inter, limit, rw, h, undecided);
    __m128 o = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(f), uv));
    if (rw) o = _mm256_cvtpd_ps(_mm256_mul_pd(w, _mm256_cvtps_pd(o)));
    _mm_storeu_ps(h + j, bf16x4(o));
  };
  for (size_t i = i0; i < i1;) {
    const size_t rowEnd = std::min(i1, (i / inter + 1) * size_t(inter));  // one routing weight per step
    const __m256d w = _mm256_set1_pd(rw ? double(rw[i / inter]) : 1.0);
    for (; i + 4 * V <= rowEnd; i += 4 * V) {
      // the 4-element step below, V at a time with the exps interleaved (the same operations per lane)
      __m128 gf[V], uf[V];
      __m256d gv[V], uv[V], ex[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; v++) {
        gf[v] = _mm_loadu_ps(g + i + 4 * v);
        uf[v] = _mm_loadu_ps(u + i + 4 * v);
        gv[v] = _mm256_cvtps_pd(gf[v]);
        uv[v] = _mm256_cvtps_pd(uf[v]);
        if (clamp) {
          uv[v] = _mm256_min_pd(lim, _mm256_max_pd(nlim, uv[v]));
          gv[v] = _mm256_min_pd(lim, gv[v]);
        }
        ex[v] = _mm256_sub_pd(_mm256_setzero_pd(), gv[v]);
      }
      expN<V>(ex);
#pragma GCC unroll 8
      for (int v = 0; v < V; v++) finish(gf[v], uf[v], gv[v], uv[v], ex[v], w, i + 4 * v);
    }
    for (; i + 4 <= rowEnd; i += 4) {
      const __m128 gf = _mm_loadu_ps(g + i), uf = _mm_loadu_ps(u + i);
      __m256d gv = _mm256_cvtps_pd(gf), uv = _mm256_cvtps_pd(uf);
      if (clamp) {
        uv = _mm256_min_pd(lim, _mm256_max_pd(nlim, uv));
        gv = _mm256_min_pd(lim, gv);
      }
      finish(gf, uf, gv, uv, exp4(_mm256_sub_pd(_mm256_setzero_pd(), gv)), w, i);
    }
    if (i < rowEnd) {
      ops2::swiglu(g, u, i, rowEnd, inter, limit, rw, h, undecided);
      i = rowEnd;
    }
  }
}

}  // namespace avx2
}  // namespace ops2
}  // namespace dsv4
#endif
