// Shared pieces of the AVX2 exact dense kernels (bf16.h): bf16_avx2.cc (the GEMVs) and
// dense_gemm_avx2.cc (the tiled GEMM). Weight placement as float64, prepared activations, and the
// settling of certified float64 sums into fp32 outputs. Include only after the AVX2 target pragma
// and <immintrin.h>, like those files.
#pragma once
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "bf16.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {
namespace dense {

constexpr int kXExp = 512;  // activations are prepared as x * 2^512 (* fp8 block scale)
constexpr int kPerm16[16] = {0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15};

/** Exact result scale: (w * 2^-896)(x * 2^512) = wx * 2^-384; fp8: (c * 2^-1016)(x * s * 2^512) = (c s) x * 2^-504. */
inline double resultScale(DenseKind k) { return std::ldexp(1.0, k == DenseKind::Bf16 ? 384 : 504); }

struct Consts {
  __m256i m8fff, m80ff, c0, c1;
  __m256d absMask;
  Consts() {
    m8fff = _mm256_set1_epi16(short(0x8fff));
    m80ff = _mm256_set1_epi16(short(0x80ff));
    absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    // per 128-bit lane, qword q <- bytes 0, 2, 3 of dword d at bytes 5, 6, 7: c0 takes dwords 0, 1; c1 dwords 2, 3
    alignas(32) int8_t b[2][32];
    for (int h = 0; h < 2; h++)
      for (int i = 0; i < 32; i++) {
        const int q = (i >> 3) & 1, byte = i & 7, d = 2 * h + q;
        b[h][i] = byte == 5 ? int8_t(4 * d) : byte == 6 ? int8_t(4 * d + 2) : byte == 7 ? int8_t(4 * d + 3) : int8_t(-1);
      }
    c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b[0]));
    c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b[1]));
  }
};

/** 16 weights -> 4 x 4 float64 in kPerm16 order; A: top 16 bits of each lane, B: the next byte (low byte). */
inline void placeF64(const Consts& c, __m256i A, __m256i B, __m256d q[4]) {
  const __m256i lo = _mm256_unpacklo_epi16(B, A), hi = _mm256_unpackhi_epi16(B, A);
  q[0] = _mm256_castsi256_pd(_mm256_shuffle_epi8(lo, c.c0));
  q[1] = _mm256_castsi256_pd(_mm256_shuffle_epi8(lo, c.c1));
  q[2] = _mm256_castsi256_pd(_mm256_shuffle_epi8(hi, c.c0));
  q[3] = _mm256_castsi256_pd(_mm256_shuffle_epi8(hi, c.c1));
}

template <DenseKind KIND>
inline void load16(const Consts& c, const uint8_t* p, __m256d q[4]) {
  if (KIND == DenseKind::Bf16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // srai keeps the sign at bit 15; the mask clears its copies at 14..12
    placeF64(c, _mm256_and_si256(_mm256_srai_epi16(v, 3), c.m8fff), _mm256_slli_epi16(v, 5), q);
  } else {
    const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    placeF64(c, _mm256_and_si256(_mm256_slli_epi16(v, 1), c.m80ff), _mm256_setzero_si256(), q);
  }
}

/** The same placement for one weight (tails). */
template <DenseKind KIND>
inline double placed1(const uint8_t* row, int k) {
  uint64_t bits;
  if (KIND == DenseKind::Bf16) {
    uint16_t v;
    std::memcpy(&v, row + 2 * size_t(k), 2);
    bits = (uint64_t(v & 0x8000) << 48) | (uint64_t(v & 0x7fff) << 45);
  } else {
    const uint8_t v = row[k];
    bits = (uint64_t(v & 0x80) << 56) | (uint64_t(v & 0x7f) << 49);
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

inline double hsum(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/** Vector part of a row: elements [h, k16(K, h)) in chunks of 16 (h: scalar head that aligns the loads). */
inline int k16(int K, int h) { return h + ((K - h) & ~15); }

/** Summation depth of dotTile: lane chains, the accumulator tree, hsum, the sequential head and tail. */
inline int depth(int K, int h, int nacc) { return (k16(K, h) - h) / 16 * (4 / nacc) + 4 + h + (K - k16(K, h)); }

/** max |x| per 128-block of one row (Inf when the block holds Inf/NaN), on the magnitude bits: Inf and NaN
 *  compare above every finite value. */
inline void blockMax(const float* x, int K, double* mr) {
  const __m256i mag = _mm256_set1_epi32(0x7fffffff);
  for (int b = 0; b < (K + 127) / 128; b++) {
    const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
    __m256i v = _mm256_setzero_si256();
    int k = k0;
    for (; k + 8 <= k1; k += 8) v = _mm256_max_epu32(v, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k)), mag));
    alignas(32) uint32_t l[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(l), v);
    uint32_t top = 0;
    for (int i = 0; i < 8; i++) top = l[i] > top ? l[i] : top;
    for (; k < k1; k++) {
      uint32_t u;
      std::memcpy(&u, x + k, 4);
      u &= 0x7fffffff;
      top = u > top ? u : top;
    }
    float t;
    std::memcpy(&t, &top, 4);
    mr[b] = top >= 0x7f800000u ? INFINITY : double(t);
  }
}

constexpr int kLsbUnknown = INT_MIN + 1;  // an activation row lsb not computed yet

/** minLsbExponent (kernels_scalar.cc) 8 values at a time: per value the lowest set bit of the significand
 *  (implicit bit included), whose float conversion is exact and gives its exponent. INT_MIN when any value
 *  is Inf/NaN, INT_MAX when all are zero. A dense GEMM settles each activation row's open outputs with it
 *  (the scalar loop took ~1 ns per value, ~1% of an exact bench-2g prefill). */
inline int minLsbExponentAvx2(const float* v, int n) {
  const __m256i zero = _mm256_setzero_si256(), ff = _mm256_set1_epi32(255), mant = _mm256_set1_epi32(0x7fffff);
  const __m256i implicit = _mm256_set1_epi32(0x800000), one = _mm256_set1_epi32(1), none = _mm256_set1_epi32(INT_MAX);
  const __m256i bias = _mm256_set1_epi32(150 + 127);  // lsb = max(e, 1) - 150 + log2(low); float(low)'s exponent is log2(low) + 127
  __m256i best = none, special = zero;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    const __m256i e = _mm256_and_si256(_mm256_srli_epi32(u, 23), ff);
    special = _mm256_or_si256(special, _mm256_cmpeq_epi32(e, ff));
    const __m256i M = _mm256_or_si256(_mm256_and_si256(u, mant), _mm256_andnot_si256(_mm256_cmpeq_epi32(e, zero), implicit));
    const __m256i low = _mm256_and_si256(M, _mm256_sub_epi32(zero, M));
    const __m256i lg = _mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(low)), 23);
    const __m256i lsb = _mm256_sub_epi32(_mm256_add_epi32(_mm256_max_epi32(e, one), lg), bias);
    best = _mm256_min_epi32(best, _mm256_blendv_epi8(lsb, none, _mm256_cmpeq_epi32(M, zero)));  // zeros: no lsb
  }
  if (!_mm256_testz_si256(special, special)) return INT_MIN;
  alignas(32) int l[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l), best);
  int r = INT_MAX;
  for (int j = 0; j < 8; j++) r = l[j] < r ? l[j] : r;
  const int t = minLsbExponent(v + i, n - i);
  return t == INT_MIN ? INT_MIN : t < r ? t : r;
}

/** 16 activations at x as x * f in kPerm16 order at d (the order load16 gives the weights), its 4
 *  vectors vs doubles apart. */
inline void prep16(const float* x, double* d, __m256d f, size_t vs = 4) {
  const __m128 a0 = _mm_loadu_ps(x), a1 = _mm_loadu_ps(x + 4), b0 = _mm_loadu_ps(x + 8), b1 = _mm_loadu_ps(x + 12);
  _mm256_storeu_pd(d, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a0, b0, _MM_SHUFFLE(1, 0, 1, 0))), f));
  _mm256_storeu_pd(d + vs, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a0, b0, _MM_SHUFFLE(3, 2, 3, 2))), f));
  _mm256_storeu_pd(d + 2 * vs, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a1, b1, _MM_SHUFFLE(1, 0, 1, 0))), f));
  _mm256_storeu_pd(d + 3 * vs, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a1, b1, _MM_SHUFFLE(3, 2, 3, 2))), f));
}

// ---------- settling 4 outputs at a time (GEMV groups, GEMM panels) ----------

/** settleF32's test on 4 sums s (exact products, depth D: eT = (D + 2) u 1.01) with magnitude bounds T:
 *  bit i set where s[i] certainly rounds to rv[i] (rv[i] != 0). */
inline int settle4(__m256d s, __m256d T, __m256d eT, __m128& rv) {
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  const __m256d e = _mm256_add_pd(_mm256_mul_pd(T, eT), _mm256_mul_pd(_mm256_and_pd(s, absMask), _mm256_set1_pd(std::ldexp(1.0, -51))));
  rv = _mm256_cvtpd_ps(s);
  const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(s, e)), hi = _mm256_cvtpd_ps(_mm256_add_pd(s, e));
  return _mm_movemask_ps(_mm_and_ps(_mm_and_ps(_mm_cmpeq_ps(lo, rv), _mm_cmpeq_ps(hi, rv)), _mm_cmpneq_ps(rv, _mm_setzero_ps())));
}

inline __m256d settleFactor(int D) { return _mm256_set1_pd(double(D + 2) * std::ldexp(1.0, -53) * 1.01); }

/** One output that settle4 left open: the certificate (products multiples of 2^lsb), else level 2 with
 *  the tight magnitude sum from tight(s1, t1) (scaled; returns its depth). NaN/Inf bounds: flagged. */
template <class Tight>
inline bool settleOne(double s, double T, int D, int lsb, float* y, DenseStats& st, Tight tight) {
  if (!std::isfinite(T)) return false;  // NaN/Inf weights or activations: the caller's exact path
  if (settleExactF32(s, T, D, lsb, y)) return true;
  st.tight++;
  double s1, t1;
  const int D1 = tight(s1, t1);
  return settleExactF32(s1, t1, D1, lsb, y);
}

/** Writes n4 <= 4 outputs (y, amb) from their scaled sums s4 and bounds T4: settle4's vector test, then
 *  slow(i, s, T, y) for each output it leaves open (true when settled). */
template <class Slow>
inline void settleStore4(__m256d s4, __m256d T4, __m256d eT, int n4, float* y, uint8_t* amb, DenseStats& st, Slow slow) {
  __m128 rv;
  const int ok4 = settle4(s4, T4, eT, rv);
  if (ok4 == 15 && n4 == 4) {
    _mm_storeu_ps(y, rv);
    std::memset(amb, 0, 4);
    return;
  }
  alignas(16) float rf[4];
  alignas(32) double sd[4], Td[4];
  _mm_store_ps(rf, rv);
  _mm256_store_pd(sd, s4);
  _mm256_store_pd(Td, T4);
  for (int i = 0; i < n4; i++) {
    bool ok = ok4 >> i & 1;
    if (ok) y[i] = rf[i];
    else ok = slow(i, sd[i], Td[i], y + i);
    amb[i] = ok ? 0 : 1;
    st.flagged += ok ? 0 : 1;
  }
}

// activation rows from which the tiled GEMM runs (FP8: below, the GEMV in passes of up to 3 rows;
// 1 thread, 1024x1024: 2.3-2.9x the 16-code GEMV at 2-3 rows, ahead of the tiles up to ~10 rows;
// BF16: 1-4 rows run the GEMV (then rowsKind's), 8 accumulator chains: the bench-2g head 129280x2048 from memory,
// 2 threads, same process alternating, 1.26-1.29x the tiles at 2 rows, 1.14-1.24x at 3, 1.18x at 4)
constexpr int kGemmRowsBf16 = 5, kGemmRowsFp8 = 8;

/** Output columns [j0, j1) with the tiled GEMM (dense_gemm_avx2.cc). */
void gemmRows(const DenseArgs& a, int j0, int j1, DenseStats& st);

/** Output columns [j0, j1) one weight row at a time (bf16_avx2.cc rowsKind): the GEMM's fallback when its
 *  buffers cannot be allocated. */
void gemvRows(const DenseArgs& a, int j0, int j1, DenseStats& st);

}  // namespace dense
}  // namespace avx2
}  // namespace dsv4
