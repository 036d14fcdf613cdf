// Lightning-indexer scores against compact FP4 keys, AVX2 version (the scheme is
// described in indexer_scalar.cc). Per entry and head, each block's integer code dot
// comes from vpmaddubsw (key codes + 12, unsigned, times signed query codes: pairs
// <= 2*24*12, no saturation) and vpmaddwd; the +12 offset is removed with the
// query's precomputed 12*Σq. Four heads are reduced together, and the per-head tail
// (RN32, bf16, relu, * weight, RN32, bf16, head sum) runs on 4 heads per vector.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cmath>

#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

/** Block sums (int32 x 4) of 4 consecutive 32-code blocks of one key and one head. */
inline __m128i blockDots4(const uint8_t* k, const int8_t* q) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i v[4];
  for (int b = 0; b < 4; b++) {
    const __m256i kb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 32 * b));
    const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * b));
    v[b] = _mm256_madd_epi16(_mm256_maddubs_epi16(kb, qb), ones);
  }
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/** RNE to BF16 of finite or infinite floats (NaN only as the x86 default NaN, which stays NaN). */
inline __m128 roundBf16x4(__m128 f) {
  const __m128i u = _mm_castps_si128(f);
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(1));
  const __m128i r = _mm_add_epi32(_mm_add_epi32(u, _mm_set1_epi32(0x7fff)), lsb);
  return _mm_castsi128_ps(_mm_and_si128(r, _mm_set1_epi32(int(0xffff0000u))));
}

/** Horizontal sums of 4 vectors: {Σa, Σb, Σc, Σd}. */
inline __m256d hsum4(__m256d a, __m256d b, __m256d c, __m256d d) {
  const __m256d ab = _mm256_hadd_pd(a, b);  // a01 b01 a23 b23
  const __m256d cd = _mm256_hadd_pd(c, d);  // c01 d01 c23 d23
  const __m256d lo = _mm256_permute2f128_pd(ab, cd, 0x20);  // a01 b01 c01 d01
  const __m256d hi = _mm256_permute2f128_pd(ab, cd, 0x31);  // a23 b23 c23 d23
  return _mm256_add_pd(lo, hi);
}

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

}  // namespace

void indexerScoresFp4(const IndexerFp4Args& a, int t0, int t1) {
  const int H = a.H, d = a.d, nb = d / 32;
  if (d % 128 != 0 || H % 4 != 0) return scalar::indexerScoresFp4(a, t0, t1);
  const int ng = nb / 4;
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  const __m256d inf = _mm256_set1_pd(INFINITY), zero = _mm256_setzero_pd();
  for (int t = t0; t < t1; t++) {
    if (!indexerFp4KeyOk(a, t)) {
      a.amb[t] = 1;
      continue;
    }
    const uint8_t* k = a.codes + size_t(t) * d;
    const float* ku = a.units + size_t(t) * nb;
    __m256d ss = zero, sa = zero, mn = inf;
    for (int h0 = 0; h0 < H; h0 += 4) {
      __m256d acc[4];
      for (int i = 0; i < 4; i++) {
        const int h = h0 + i;
        const int8_t* q = a.qc + size_t(h) * d;
        __m256d s = zero;
        for (int g = 0; g < ng; g++) {
          const __m128i dots = _mm_sub_epi32(blockDots4(k + 128 * g, q + 128 * g),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qcorr + h * nb + 4 * g)));
          const __m256d terms = _mm256_mul_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(dots), _mm256_loadu_pd(a.qu + h * nb + 4 * g)),
                                              _mm256_cvtps_pd(_mm_loadu_ps(ku + 4 * g)));
          s = _mm256_add_pd(s, terms);  // exact (indexerFp4KeyOk)
        }
        acc[i] = s;
      }
      const __m256d dot = hsum4(acc[0], acc[1], acc[2], acc[3]);
      const __m128 sb = roundBf16x4(_mm256_cvtpd_ps(dot));
      const __m128 relu = _mm_max_ps(sb, _mm_setzero_ps());  // s > 0 ? s : +0 (also for -0)
      const __m256d prod = _mm256_mul_pd(_mm256_cvtps_pd(relu), _mm256_cvtps_pd(_mm_loadu_ps(a.hw + h0)));
      const __m256d term = _mm256_cvtps_pd(roundBf16x4(_mm256_cvtpd_ps(prod)));
      const __m256d at = _mm256_and_pd(term, absMask);
      ss = _mm256_add_pd(ss, term);
      sa = _mm256_add_pd(sa, at);
      mn = _mm256_min_pd(mn, _mm256_blendv_pd(at, inf, _mm256_cmp_pd(at, zero, _CMP_EQ_OQ)));
    }
    alignas(32) double m4[4];
    _mm256_store_pd(m4, mn);
    const double mnAll = std::fmin(std::fmin(m4[0], m4[1]), std::fmin(m4[2], m4[3]));
    const double saAll = hsum(sa);
    if (!(saAll < mnAll * 0x1p45)) {
      a.amb[t] = 1;
      continue;
    }
    a.scores[t] = roundBf16(float(hsum(ss)));
    a.amb[t] = 0;
  }
}

}  // namespace avx2
}  // namespace dsv4
#endif
