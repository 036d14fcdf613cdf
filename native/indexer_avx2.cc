// Lightning-indexer scores against compact FP4 keys, AVX2 version (the scheme is
// described in indexer_scalar.cc). Keys are interleaved per group of 8 entries by
// 4-code chunks, so one 32-byte load holds one chunk of 8 entries: vpmaddubsw with
// the broadcast query chunk (key codes + 12 unsigned, query codes signed; pairs
// <= 2*24*12) accumulates a block's 8 chunks in int16 (<= 4608) per entry lane, and
// vpmaddwd gives the 8 entries' block dots in int32, with no horizontal sums; the +12
// offset is removed with the query's precomputed 12*Σq. The per-head tail (RN32, bf16,
// relu, * weight, RN32, bf16) and the head sum run on the 8 entries as vector lanes; the
// head sum's exactness certificate uses the largest and smallest nonzero |term| (integer
// min/max of their bits). Four heads per pass over a group's key chunks (headDots: each
// chunk loaded once for them, the block terms by one FMA each): a decode call at 128K
// context (64 heads x 32768 entries, 2 threads) 1.10-1.28x one head per pass.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "indexer_dots.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

/** RNE to BF16 of finite or infinite floats (NaN only as the x86 default NaN, which stays NaN). */
inline __m256 roundBf16x8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
  return _mm256_castsi256_ps(_mm256_and_si256(r, _mm256_set1_epi32(int(0xffff0000u))));
}

inline __m256 fromPd(__m256d lo, __m256d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/** The AVX2 chunk step of indexerHeadDots (indexer_dots.h): int16 pair sums, one vpmaddwd per block. */
struct Avx2Step {
  static inline __m256i add(__m256i acc, __m256i kc, __m256i q) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(kc, q)); }
  static inline __m256i dots(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
};

/** P heads' block dots against one group (VNNI form where the CPU has it: indexer_vnni.cc). */
template <int P>
inline void headDots(bool vnni, const IndexerFp4Args& a, const uint8_t* K, int h, int nb, const double* kud, double (*out)[8]) {
  if (vnni) return indexerHeadDotsVnni(P, a, K, h, nb, kud, out);
  indexerHeadDots<P, Avx2Step>(a, K, h, nb, kud, out);
}

}  // namespace

// ---------- float keys (queries or keys not in compact form) ----------

void indexerScores(const IndexerArgs& a, int t0, int t1) {
  const int H = a.H, d = a.d;
  if (d % 8 != 0 || d > 1024) return scalar::indexerScores(a, t0, t1);
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  // queries as float64 (and magnitudes) once per call; keys once per entry, shared by all heads
  std::vector<double> qd(size_t(H) * d), qa(size_t(H) * d);
  int qlsb[512], lsb[512];
  for (int h = 0; h < H; h++) qlsb[h] = minLsbExponent(a.q + size_t(h) * d, d);
  for (size_t i = 0; i < qd.size(); i++) {
    qd[i] = a.q[i];
    qa[i] = std::fabs(qd[i]);
  }
  alignas(32) double kd[1024], ka[1024];
  double ds[512], dt[512];
  for (int t = t0; t < t1; t++) {
    const float* k = a.keys + size_t(t) * d;
    const int klsb = minLsbExponent(k, d);
    for (int j = 0; j < d; j += 4) {
      const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(k + j));
      _mm256_store_pd(kd + j, v);
      _mm256_store_pd(ka + j, _mm256_and_pd(v, absMask));
    }
    for (int h = 0; h < H; h++) {
      const double* q = qd.data() + size_t(h) * d;
      const double* qm = qa.data() + size_t(h) * d;
      __m256d s0 = _mm256_setzero_pd(), s1 = s0, m0 = s0, m1 = s0;
      for (int j = 0; j < d; j += 8) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(q + j), _mm256_load_pd(kd + j), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(q + j + 4), _mm256_load_pd(kd + j + 4), s1);
        m0 = _mm256_fmadd_pd(_mm256_loadu_pd(qm + j), _mm256_load_pd(ka + j), m0);
        m1 = _mm256_fmadd_pd(_mm256_loadu_pd(qm + j + 4), _mm256_load_pd(ka + j + 4), m1);
      }
      ds[h] = hsum(_mm256_add_pd(s0, s1));
      dt[h] = hsum(_mm256_add_pd(m0, m1));
      lsb[h] = productLsb(qlsb[h], klsb);
    }
    a.amb[t] = indexerFinish(a, ds, dt, lsb, &a.scores[t]) ? 0 : 1;
  }
}

// ---------- compact FP4 keys ----------

void indexerScoresFp4(const IndexerFp4Args& a, int t0, int t1) {
  const int H = a.H, d = a.d, nb = d / 32;
  if (t0 % 8 != 0 || nb > 32) return scalar::indexerScoresFp4(a, t0, t1);
  const __m256d zero = _mm256_setzero_pd();
  const bool vnni = cpuVnni();
  alignas(32) double kud[32 * 8];  // key units of the group, [block][lane]
  for (int g0 = t0; g0 < t1; g0 += 8) {
    const int n = t1 - g0 < 8 ? t1 - g0 : 8;
    bool ok[8], any = false;
    for (int l = 0; l < 8; l++) {
      ok[l] = l < n && indexerFp4KeyOk(a, g0 + l);
      any = any || ok[l];
      for (int b = 0; b < nb; b++) kud[b * 8 + l] = ok[l] ? double(a.units[size_t(g0 + l) * nb + b]) : 0.0;
    }
    if (!any) {
      for (int l = 0; l < n; l++) a.amb[g0 + l] = 1;
      continue;
    }
    const uint8_t* K = a.codes + size_t(g0) * d;
    // per lane: running head sum (float64, lanes 0-3 and 4-7), and the bits of the largest and
    // (minus one, so that zeros wrap to the top) smallest nonzero |term|
    __m256d ss0 = zero, ss1 = zero;
    __m256i maxBits = _mm256_setzero_si256(), minBitsM1 = _mm256_set1_epi32(-1);
    const __m256i absBits = _mm256_set1_epi32(0x7fffffff), one = _mm256_set1_epi32(1);
    // the block dots of four heads per pass over the group's key chunks (each chunk loaded once for them)
    alignas(32) double hd[4][8];
    for (int h = 0; h < H; h++) {
      if ((h & 3) == 0) {
        switch (H - h) {
          case 1: headDots<1>(vnni, a, K, h, nb, kud, hd); break;
          case 2: headDots<2>(vnni, a, K, h, nb, kud, hd); break;
          case 3: headDots<3>(vnni, a, K, h, nb, kud, hd); break;
          default: headDots<4>(vnni, a, K, h, nb, kud, hd);
        }
      }
      const double* hv = hd[h & 3];
      const __m256 s = roundBf16x8(fromPd(_mm256_load_pd(hv), _mm256_load_pd(hv + 4)));
      const __m256 relu = _mm256_max_ps(s, _mm256_setzero_ps());  // s > 0 ? s : +0 (also for -0)
      // an fp32 product is RN32 of the exact product (subnormal and overflowing results included)
      const __m256 term = roundBf16x8(_mm256_mul_ps(relu, _mm256_set1_ps(a.hw[h])));
      const __m256i tb = _mm256_and_si256(_mm256_castps_si256(term), absBits);
      maxBits = _mm256_max_epu32(maxBits, tb);
      minBitsM1 = _mm256_min_epu32(minBitsM1, _mm256_sub_epi32(tb, one));
      ss0 = _mm256_add_pd(ss0, _mm256_cvtps_pd(_mm256_castps256_ps128(term)));
      ss1 = _mm256_add_pd(ss1, _mm256_cvtps_pd(_mm256_extractf128_ps(term, 1)));
    }
    alignas(32) double ss[8];
    alignas(32) uint32_t mx[8], mnm1[8];
    _mm256_store_pd(ss, ss0);
    _mm256_store_pd(ss + 4, ss1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(mx), maxBits);
    _mm256_store_si256(reinterpret_cast<__m256i*>(mnm1), minBitsM1);
    for (int l = 0; l < n; l++) {
      // terms are BF16 (multiples of 2^(e_min - 7)): the float64 sum is exact when
      // H * max|term| (>= Σ|term|) < min nonzero |term| * 2^45; inf/NaN terms fail the test
      float tmax, tmin;
      const uint32_t mnb = mnm1[l] + 1u;
      std::memcpy(&tmax, &mx[l], 4);
      std::memcpy(&tmin, &mnb, 4);
      const bool finite = mx[l] < 0x7f800000u;
      if (!ok[l] || !finite || !(mnb == 0 || double(H) * tmax < double(tmin) * 0x1p45)) {
        a.amb[g0 + l] = 1;
        continue;
      }
      a.scores[g0 + l] = roundBf16(float(ss[l]));
      a.amb[g0 + l] = 0;
    }
  }
}

}  // namespace avx2
}  // namespace dsv4
#endif
