// AVX2 + FMA fast-numerics FP8 and BF16 products for few activation rows (fastgemv.h). Lanes are weight
// rows: per step of 64 bytes (a whole cache line of each row), 8 rows' 32 bytes at a time are transposed
// as dwords (24 shuffles), so a vector holds for 8 rows the codes k..k+3 (BF16: k, k+1, each the top
// half of its fp32: a shift or an and); each FP8 code becomes an fp32 by
// placement: moved to the top byte of a 16-bit half (vpsllw 8 for the even bytes), vpsraw 4 smears
// the sign over bits 15-11 and puts eeee.mmm at bits 10-4, the low half moved up by vpslld 16, then
// vpand 0x87f00000: an fp32 of exactly value * 2^-120 (e4m3 subnormals become fp32 subnormals, which
// FMA takes at full speed here: microbenchmark). The activations are prepared per 128-row weight
// block as x * 2^(b-7) (blockActs, exact), so each vfmadd231ps adds exactly the reference's
// (value * 2^(b-127)) * x with one rounding, in the output's single accumulator, k increasing: the
// bits of fast-products.ts. 4 groups of 8 rows run together (4 independent FMA chains per activation
// row: the FMA latency). Each step's codes are converted once into a buffer that the rows use 2 at a
// time (4 at a time with one group of 8 rows: rows 4 KiB multiples apart). 1-2 activation rows have
// the chain semantics instead (fastchain_avx2.cc); their former in-register form here lost to the
// exact GEMVs.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fast_place.h"
#include "fastgemv.h"

namespace dsv4 {
namespace fastgemv {
namespace avx2 {

namespace {

/** Dwords r[i][d] -> t[d][i] of 8 rows of 32 bytes. */
inline void transpose8(const uint8_t* w, size_t stride, __m256i t[8]) {
  __m256i r[8], a[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(i) * stride));
  for (int i = 0; i < 8; i += 2) {
    a[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    a[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_unpacklo_epi64(a[i], a[i + 2]);
    r[i + 1] = _mm256_unpackhi_epi64(a[i], a[i + 2]);
    r[i + 2] = _mm256_unpacklo_epi64(a[i + 1], a[i + 3]);
    r[i + 3] = _mm256_unpackhi_epi64(a[i + 1], a[i + 3]);
  }
  // r[i] for i < 4 holds dword i of rows 0,1,2,3 (low lane) | dword i+4 of rows 0..3 (high lane)
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2x128_si256(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2x128_si256(r[i], r[i + 4], 0x31);
  }
}

/** FP8: a dword holds codes k..k+3; each becomes an fp32 of value * 2^-120. */
struct Fp8Codec {
  static constexpr int kPerDword = 4;
  static inline void convert(__m256i t, __m256 v[4]) { placeFp8(t, v); }
};

/** BF16: a dword holds values k, k+1; each is the top half of its fp32. */
struct Bf16Codec {
  static constexpr int kPerDword = 2;
  static inline void convert(__m256i t, __m256 v[2]) {
    v[0] = _mm256_castsi256_ps(_mm256_slli_epi32(t, 16));
    v[1] = _mm256_castsi256_ps(_mm256_and_si256(t, _mm256_set1_epi32(int(0xffff0000u))));
  }
};

/** The next strip's lines at this step into L2 (rows of a strip are far apart: the streams are short for small K). */
template <int G>
inline void prefetchNext(const uint8_t* w, size_t stride, size_t off) {
  for (int i = 0; i < 8 * G; i++) _mm_prefetch(reinterpret_cast<const char*>(w + size_t(8 * G + i) * stride + off), _MM_HINT_T1);
}

/** acc of G groups x MT rows into y (row m at y + m * n), the first `valid` of the G*8 outputs. */
template <int G, int MT>
inline void store(const __m256 acc[G][MT], float* y, size_t n, int valid) {
  for (int m = 0; m < MT; m++)
    for (int g = 0; g < G; g++) {
      float* o = y + size_t(m) * n + 8 * g;
      if (valid >= 8 * (g + 1)) _mm256_storeu_ps(o, acc[g][m]);
      else if (valid > 8 * g) {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, acc[g][m]);
        std::memcpy(o, tmp, sizeof(float) * size_t(valid - 8 * g));
      }
    }
}

/** MT rows of the converted step v[g][0 .. S) (k from k0) into acc (loaded from and stored to mem). */
template <int G, int MT, int S>
inline void fmaStep(const __m256 (*v)[64], const float* x, size_t K, size_t k0, __m256* mem) {
  __m256 acc[G][MT];
  for (int g = 0; g < G; g++)
    for (int m = 0; m < MT; m++) acc[g][m] = mem[g * MT + m];
#pragma GCC unroll 8
  for (int j = 0; j < S; j++)
#pragma GCC unroll 4
    for (int m = 0; m < MT; m++) {
      const __m256 b = _mm256_broadcast_ss(x + size_t(m) * K + k0 + j);
#pragma GCC unroll 4
      for (int g = 0; g < G; g++) acc[g][m] = _mm256_fmadd_ps(v[g][j], b, acc[g][m]);
    }
  for (int g = 0; g < G; g++)
    for (int m = 0; m < MT; m++) mem[g * MT + m] = acc[g][m];
}

/** fn(m, mt) over the activation rows in blocks of MB (4 or 2), the remainder as 2 and 1. */
template <int MB, class F>
inline void rowBlocks(int R, F fn) {
  int m = 0;
  for (; m + MB <= R; m += MB) fn(m, MB);
  if (m + 2 <= R) fn(m, 2), m += 2;
  if (m < R) fn(m, 1);
}

/**
 * G groups x R > 2 activation rows: each step's codes converted once into a buffer, then used by
 * the rows MB at a time (their sums kept in memory between steps, [g][mt] per row block).
 */
template <class C, int G, int MB>
void stripBuffered(const uint8_t* w, size_t stride, size_t K, const float* x, int R, float* y, size_t n, int valid) {
  constexpr int P = C::kPerDword, S = 16 * P;
  alignas(32) __m256 v[G][64];
  alignas(32) __m256 acc[kMaxRows * G];
  for (int i = 0; i < R * G; i++) acc[i] = _mm256_setzero_ps();
  for (size_t k = 0; k < K; k += S) {
    const size_t off = k * 4 / P;
    prefetchNext<G>(w, stride, off);
    for (int g = 0; g < G; g++)
      for (int h = 0; h < 2; h++) {
        __m256i t[8];
        transpose8(w + size_t(8 * g) * stride + off + 32 * h, stride, t);
        for (int d = 0; d < 8; d++) C::convert(t[d], v[g] + S / 2 * h + P * d);
      }
    rowBlocks<MB>(R, [&](int m, int mt) {
      if (mt == 4) fmaStep<G, 4, S>(v, x + size_t(m) * K, K, k, acc + m * G);
      else if (mt == 2) fmaStep<G, 2, S>(v, x + size_t(m) * K, K, k, acc + m * G);
      else fmaStep<G, 1, S>(v, x + size_t(m) * K, K, k, acc + m * G);
    });
  }
  rowBlocks<MB>(R, [&](int m, int mt) {
    float* o = y + size_t(m) * n;
    if (mt == 4) store<G, 4>(reinterpret_cast<const __m256(*)[4]>(acc + m * G), o, n, valid);
    else if (mt == 2) store<G, 2>(reinterpret_cast<const __m256(*)[2]>(acc + m * G), o, n, valid);
    else store<G, 1>(reinterpret_cast<const __m256(*)[1]>(acc + m * G), o, n, valid);
  });
}

/** G groups of rows from w, all R > 2 activation rows (1-2: fastchain_avx2.cc), outputs into y (first `valid`). */
template <class C, int G>
void groups(const uint8_t* w, size_t stride, size_t K, const float* x, int R, float* y, size_t n, int valid) {
  stripBuffered<C, G, G == 1 ? 4 : 2>(w, stride, K, x, R, y, n, valid);
}

/** Rows [c, end) of j's weight (bytes `stride` per row) with prepared activations x. */
template <class C>
void range(const Job& j, size_t stride, const float* x, int c, int end) {
  const uint8_t* w = static_cast<const uint8_t*>(j.w);
  const size_t K = size_t(j.K);
  // rows a multiple of 4 KiB apart share L1 sets: from 4 activation rows (enough FMA chains in one
  // group) 8 rows at a time, else 32 (16384x2048 BF16 at 4-8 rows 1.1-1.3x -> 1.5-2.0x the exact kernel)
  if (j.R < 4 || stride % 4096 != 0)
    for (; c + 32 <= end; c += 32) groups<C, 4>(w + size_t(j.r0 + c) * stride, stride, K, x, j.R, j.y + c, size_t(j.n), 32);
  for (; c + 8 <= end; c += 8) groups<C, 1>(w + size_t(j.r0 + c) * stride, stride, K, x, j.R, j.y + c, size_t(j.n), 8);
  if (c < end) {  // fewer than 8 rows: a zero-padded copy
    thread_local std::vector<uint8_t> pad;
    pad.assign(8 * stride, 0);
    std::memcpy(pad.data(), w + size_t(j.r0 + c) * stride, size_t(end - c) * stride);
    groups<C, 1>(pad.data(), stride, K, x, j.R, j.y + c, size_t(j.n), end - c);
  }
}

}  // namespace

void rows(const Job& j, int a, int b, float* scratch) {
  if (j.kind == WeightKind::Bf16) return range<Bf16Codec>(j, size_t(j.K) * 2, j.x, a, b);  // values as they are
  for (int c = a; c < b;) {
    const int block = (j.r0 + c) >> 7, end = std::min(b, ((block + 1) << 7) - j.r0);  // within one 128-row block
    if (blockActs(j, block, scratch)) range<Fp8Codec>(j, size_t(j.K), scratch, c, end);
    else scalar::rows(j, c, end);
    c = end;
  }
}

}  // namespace avx2
}  // namespace fastgemv
}  // namespace dsv4
#endif
