// AVX2 + FMA exact FP8 kernels and the machine probes (compiled for avx2/fma
// here, called only after a runtime CPU check in addon.cc).
//
// FP8 x FP8 (fp8_gemm): each e4m3 weight byte is turned into a float64 by bit
// placement alone: top 16 bits = sign<<15 | (byte&0x7f)<<1, i.e. the e4m3
// exponent/mantissa land in the low exponent bits/top mantissa bits, giving
// exactly value * 2^-1016 (subnormal codes included). Activations are
// pre-scaled by 2^1015, so each FMA adds value_w * value_x / 2 exactly; the
// 128-term block sum needs at most 43 bits, so float64 holds it exactly.
//
// FP4 x FP8 (fp4_gemm) is in fp4_avx2.cc.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fp8_spread.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

// ---------- shared helpers ----------

struct Tables {
  double e4m3Scaled[256];  // e4m3 value * 2^1015 (fp8 activations)
  float e8m0[256];
  Tables() {
    for (int c = 0; c < 256; c++) {
      const int e = (c >> 3) & 15, m = c & 7;
      const int mag = e == 0 ? m : (8 + m) << (e - 1);  // value * 2^9
      e4m3Scaled[c] = std::ldexp(double((c & 0x80) ? -mag : mag), 1015 - 9);
      e8m0[c] = e8m0ToFloat(uint8_t(c));
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

// ---------- FP8 ----------

// The one-row GEMVs' prepared activations and converted weights share cvt32's order (the
// "spread order": position 4i + e of a 32-code step holds element (i < 4 ? 0 : 8) + (i & 3) +
// 4 (e & 1) + 16 (e >> 1), fp8_spread.h), so the activations are prepared by the same placement.
using Cvt8 = Fp8Spread;  // fp8_spread.h

/** 32 e4m3 codes -> 8 x 4 float64 (value * 2^-1016), in the spread order. */
inline void cvt32(const Cvt8& k, const uint8_t* p, __m256d q[8]) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i lo = _mm256_add_epi8(b, b);  // magnitude << 1 (sign bit drops out)
  const __m256i hi = _mm256_and_si256(b, k.sign);
  const __m256i w[2] = {_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi)};
  for (int h = 0; h < 2; h++) {
    q[4 * h] = _mm256_castsi256_pd(spreadWords<0>(k, w[h]));
    q[4 * h + 1] = _mm256_castsi256_pd(spreadWords<1>(k, w[h]));
    q[4 * h + 2] = _mm256_castsi256_pd(spreadWords<2>(k, w[h]));
    q[4 * h + 3] = _mm256_castsi256_pd(spreadWords<3>(k, w[h]));
  }
}

/** 32 activation codes -> prepared float64 lanes (value * 2^1015, the e4m3Scaled table's values)
 *  in the spread order, by cvt32's placement (value * 2^-1016) times 2^1023 and 2^1008 (exact) plus
 *  +0 (the table has no -0); false when a code is NaN. */
inline bool prepGemv32(const Cvt8& cv, const uint8_t* q, double* xd) {
  __m256d v[8];
  cvt32(cv, q, v);
  for (int g = 0; g < 8; g++)
    _mm256_storeu_pd(xd + 4 * g, _mm256_add_pd(_mm256_mul_pd(_mm256_mul_pd(v[g], _mm256_set1_pd(0x1p1023)), _mm256_set1_pd(0x1p1008)),
                                               _mm256_setzero_pd()));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)), m = _mm256_set1_epi8(0x7f);
  return _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(b, m), m)) == 0;
}

constexpr int kGemvBuf = 64;      // K blocks whose 4-row sums are buffered before the fp32 updates
// software prefetch of the one-row GEMV into L2 (T1), bytes ahead in each row stream: into L1 2 KiB ahead the
// prefetches held the L1 miss buffers; T1 8 KiB ahead: 2048x8192 from DRAM, 2 threads 23.2-23.8 -> 26.7 GB/s,
// 8192x1024 22.7 -> 24.5, bench-2g exact decode step (with the BF16 GEMV's T1) 44.9 -> 42.8 ms mean of 4, alternating
constexpr int kGemvAhead = 8192;

// 1-2 activation rows (R): NR weight rows n.. at once (up to G = 4 / R), converted on the fly, 2
// float64 accumulators per weight and activation row (8 FMA chains hide the latency; with 2
// activation rows each converted step serves both). Each K block's exact sums of the 4 (weight,
// activation) row pairs are reduced together into one vector (lane 2r + m with 2 rows) and
// buffered; the reference's fp32 block updates (below) then run for the 4 outputs per vector in
// increasing K: no horizontal sum or scalar fp32 chain per block and output, the accumulators stay
// in registers.
// always inlined: as a separate function (once fp8GemvRows also called it) GCC's clone ran 1.3x slower
template <int NR, int R>
__attribute__((always_inline)) inline void fp8Gemv(const GemmArgs& a, const Cvt8& cv, const double* xd, int n) {
  constexpr int G = 4 / R;
  const int K = a.K, nkb = K / 128;
  const Tables& T = tables();
  const __m256i sign = cv.sign, m1 = cv.mid[0], m2 = cv.mid[1], hi16 = cv.hi16;
  const uint8_t* w[G];
  for (int r = 0; r < G; r++) w[r] = a.w + size_t(n + (r < NR ? r : 0)) * K;
  // the rows share one scale row unless they straddle a 128-row block (not with aligned groups)
  const uint8_t* wsr[4];  // per lane
  for (int l = 0; l < 4; l++) {
    const int r = R == 1 ? l : l >> 1;
    wsr[l] = a.ws + size_t((n + (r < NR ? r : 0)) >> 7) * nkb;
  }
  const bool oneScale = wsr[0] == wsr[3];
  alignas(32) double buf[kGemvBuf * 4];
  __m128 acc = _mm_setzero_ps();
  for (int kb0 = 0; kb0 < nkb; kb0 += kGemvBuf) {
    const int kb1 = nkb - kb0 < kGemvBuf ? nkb : kb0 + kGemvBuf;
    for (int kb = kb0; kb < kb1; kb++) {
      // software prefetch kGemvAhead bytes ahead in each row slot's stream (this group's row r,
      // then the later groups'), 4 lines of a row together: the hardware prefetchers alone left
      // the cores waiting on DRAM (4-8 row streams per core); prefetching the next group's rows at
      // the same offset instead was 0.8-0.9x on K = 1024
      if ((kb & 1) == 0)
        for (int r = 0; r < NR; r++) {
          size_t off = size_t(kb) * 128 + kGemvAhead;
          const uint8_t* base = w[r];
          while (off >= size_t(K)) { off -= K; base += NR * size_t(K); }
          for (int l = 0; l < 4; l++) _mm_prefetch(reinterpret_cast<const char*>(base + off + 64 * l), _MM_HINT_T1);
        }
      __m256d s[8];
      for (auto& v : s) v = _mm256_setzero_pd();
#pragma GCC unroll 1  // unrolled, the 16 steps measured ~2% slower
      for (int c = 0; c < 128; c += 32) {
        const double* xc = xd + kb * 128 + c;
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
          if (R == 1) gemvStep(sign, m1, m2, hi16, w[r] + kb * 128 + c, xc, s[2 * r], s[2 * r + 1]);
          else gemvStep2(sign, m1, m2, hi16, w[r] + kb * 128 + c, xc, xc + K, s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]);
        }
      }
      _mm256_store_pd(buf + 4 * (kb - kb0), gemvBlockSums(s));
    }
    // the reference's fp32 block update for 4 outputs per vector: acc + fl32(2 s) * (xs * ws), in increasing K
    for (int kb = kb0; kb < kb1; kb++) {
      const __m128 ws = oneScale ? _mm_set1_ps(T.e8m0[wsr[0][kb]])
                                 : _mm_setr_ps(T.e8m0[wsr[0][kb]], T.e8m0[wsr[1][kb]], T.e8m0[wsr[2][kb]], T.e8m0[wsr[3][kb]]);
      const __m128 xs = R == 1 ? _mm_set1_ps(a.xs[kb]) : _mm_setr_ps(a.xs[kb], a.xs[nkb + kb], a.xs[kb], a.xs[nkb + kb]);
      const __m128 blk = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_load_pd(buf + 4 * (kb - kb0)), _mm256_set1_pd(2.0)));
      acc = _mm_add_ps(acc, _mm_mul_ps(blk, _mm_mul_ps(xs, ws)));
    }
  }
  alignas(16) float t[4];
  _mm_store_ps(t, acc);
  for (int l = 0; l < 4; l++) {
    const int r = R == 1 ? l : l >> 1, m = R == 1 ? 0 : l & 1;
    if (r < NR) a.y[size_t(m) * a.out + n + r] = t[l];
  }
}

/** Outputs [n0, n1) of R (1-2) activation rows: groups of 4 / R weight rows, then the tail. */
template <int R>
void fp8GemvRange(const GemmArgs& a, const Cvt8& cv, const double* xd, int n0, int n1) {
  constexpr int G = 4 / R;
  int n = n0;
  for (; n + G <= n1; n += G) fp8Gemv<G, R>(a, cv, xd, n);
  if constexpr (G == 4) {
    if (n1 - n == 3) fp8Gemv<3, R>(a, cv, xd, n);
    else if (n1 - n == 2) fp8Gemv<2, R>(a, cv, xd, n);
  }
  if (n1 - n == 1) fp8Gemv<1, R>(a, cv, xd, n);
}

// rows > 1: activations are prepared in natural K order in chunks of fp8RowChunk rows, each K
// block's rows contiguous ([kb][row][128]: no cache-set conflicts at large K). Weights are
// converted per K block with 4 rows interleaved (one vector = 4 rows at one k), so a tile
// broadcasts each activation and its accumulators already hold 4 outputs each: no horizontal
// sums, and the fp32 block update runs on 4 outputs per vector.
// 256: every weight row is converted (and read from memory) once per 256 rows; with 64 (tuned for a
// 512 KiB L2) wo_b 256 x 8192 . 2048 x 8192 ran 0.88x, 1024 -> 8192 and 2048 -> 1024 0.90-0.97x (Zen 4,
// 1 MiB L2, 2 threads, alternating); 512 rows in 2 chunks of 256: 0.98x one chunk of 512
constexpr int kRowChunkMax = 256;
/** Rows per chunk: the fewest chunks of at most kRowChunkMax rows, of equal size (a multiple of 4, the
 *  last one shorter): every weight block converted into wb then serves as many rows as it can (48-row
 *  chunks left 64 rows as 48 + 16, the 16 paying a conversion per 16 rows). */
inline int fp8RowChunk(int rows) {
  const int chunks = (rows + kRowChunkMax - 1) / kRowChunkMax;
  return ((rows + chunks - 1) / chunks + 3) & ~3;
}
/** Activation rows that go through the GEMVs (weights converted on the fly) rather than tiles: the
 *  tiles convert weight panels to float64 in memory, which few rows do not repay (bench-2g wo_b at
 *  4 rows: 5.4x one row through the tiles). */
constexpr int kGemvRows8 = 7;

/** 3..kGemvRows8 activation rows: per group of 4 weight rows, the 2-row GEMV for each pair of
 *  activation rows and the 1-row GEMV for an odd last one, so the group's weights come from memory
 *  once and are reused from L1/L2. Each output gets the same block sums and fp32 chain. */
void fp8GemvRows(const GemmArgs& a, const Cvt8& cv, const double* xd, int n0, int n1) {
  const int nkb = a.K / 128;
  for (int n = n0; n < n1; n += 4) {
    const int n2 = n1 - n < 4 ? n1 : n + 4;
    for (int m = 0; m < a.rows; m += 2) {
      GemmArgs b = a;
      b.xs = a.xs + size_t(m) * nkb;
      b.y = a.y + size_t(m) * a.out;
      const double* x = xd + size_t(m) * a.K;
      if (a.rows - m >= 2) fp8GemvRange<2>(b, cv, x, n, n2);
      else fp8GemvRange<1>(b, cv, x, n, n2);
    }
  }
}

/** Row groups of a register tile. Their converted blocks are interleaved per k ([k][group], 3 x 4
 *  rows): one tile step then loads 96 adjacent bytes; with each group's 128 vectors 4 KiB apart
 *  the 3x4 tile ran at ~70% of the float64 FMA rate in L1, interleaved ~94% (1 thread). */
constexpr int kTileG = 3;

/** Offset (in doubles) of row m's K block kb in the prepared activations (rows > 1). */
inline size_t fp8PrepAt(int rows, int K, int m, int kb) {
  const int rc = fp8RowChunk(rows), mc = m - m % rc, nr = rows - mc < rc ? rows - mc : rc;
  return size_t(mc) * K + (size_t(kb) * nr + (m - mc)) * 128;
}

/** 4 weight rows' 128-code block (r[j]) -> 128 vectors (k = 0..127, kTileG apart) of the 4 rows'
 *  float64 values (value * 2^-1016): bytes of rows 0/1 paired in the low lane and 2/3 in the high
 *  lane, then cvt32's placement, which emits them in k order. */
inline void cvt4x128(const Cvt8& k, const uint8_t* const r[4], __m256d* out) {
  for (int c = 0; c < 128; c += 32) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[0] + c));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[1] + c));
    const __m256i b2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[2] + c));
    const __m256i b3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[3] + c));
    const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
    const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
    // k 0-7, 8-15, 16-23, 24-31 of this chunk
    const __m256i q[4] = {_mm256_permute2x128_si256(l01, l23, 0x20), _mm256_permute2x128_si256(h01, h23, 0x20),
                          _mm256_permute2x128_si256(l01, l23, 0x31), _mm256_permute2x128_si256(h01, h23, 0x31)};
    for (int i = 0; i < 4; i++) {
      const __m256i lo = _mm256_add_epi8(q[i], q[i]), hi = _mm256_and_si256(q[i], k.sign);
      const __m256i w0 = _mm256_unpacklo_epi8(lo, hi), w1 = _mm256_unpackhi_epi8(lo, hi);
      __m256d* o = out + (c + 8 * i) * kTileG;
      for (int g = 0; g < 4; g++) {
        o[g * kTileG] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w0, k.ctl[g]));
        o[(4 + g) * kTileG] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w1, k.ctl[g]));
      }
    }
  }
}

/** The first `valid` (< 4) outputs of a block update (the last group of an odd-sized weight). */
__attribute__((noinline)) void fp8StorePart(float* y, __m128 upd, int kb, int valid) {
  alignas(16) float t[4];
  _mm_store_ps(t, upd);
  for (int j = 0; j < valid; j++) y[j] = kb ? y[j] + t[j] : t[j];
}

/** NG x NX tile of the block kb: NG groups of 4 weight rows (wb, [k][kTileG] vectors, scales
 *  wsr) times NX activation rows (xb, 128 apart), outputs y[m + x][n + 4g + j] for 4g + j < nout. */
template <int NG, int NX>
void fp8Tile(const GemmArgs& a, const __m256d* wb, const double* xb, const float* wsr, int n, int m, int kb, int nout) {
  const int nkb = a.K / 128;
  // the outputs this tile updates after its 128 k (rows a.out apart: at large out they fall out of L2
  // between K blocks), fetched while it runs
  for (int x = 0; x < NX; x++) {
    const float* yr = a.y + size_t(m + x) * a.out + n;
    _mm_prefetch(reinterpret_cast<const char*>(yr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(yr + 4 * NG - 1), _MM_HINT_T0);
  }
  __m256d acc[NG][NX];
  for (int g = 0; g < NG; g++)
    for (int x = 0; x < NX; x++) acc[g][x] = _mm256_setzero_pd();
  for (int k = 0; k < 128; k++) {
    __m256d wv[NG];
    for (int g = 0; g < NG; g++) wv[g] = wb[k * kTileG + g];
    for (int x = 0; x < NX; x++) {
      const __m256d xv = _mm256_broadcast_sd(xb + x * 128 + k);
      for (int g = 0; g < NG; g++) acc[g][x] = _mm256_fmadd_pd(wv[g], xv, acc[g][x]);
    }
  }
  // the reference's fp32 block update per element: acc + fl32(2 s) * (xs * ws)
#pragma GCC unroll 4
  for (int x = 0; x < NX; x++) {
    const __m128 xs = _mm_set1_ps(a.xs[size_t(m + x) * nkb + kb]);
    float* yr = a.y + size_t(m + x) * a.out + n;
#pragma GCC unroll 3
    for (int g = 0; g < NG; g++) {
      const __m128 blk = _mm256_cvtpd_ps(_mm256_add_pd(acc[g][x], acc[g][x]));
      const __m128 upd = _mm_mul_ps(blk, _mm_mul_ps(xs, _mm_load_ps(wsr + 4 * g)));
      if (4 * g + 4 <= nout) _mm_storeu_ps(yr + 4 * g, kb ? _mm_add_ps(_mm_loadu_ps(yr + 4 * g), upd) : upd);
      else fp8StorePart(yr + 4 * g, upd, kb, nout - 4 * g);
    }
  }
}

template <int NX>
void fp8TileX(const GemmArgs& a, const __m256d* wb, const double* xb, const float* wsr, int n, int m, int kb, int ng, int nout) {
  if (ng == 3) fp8Tile<3, NX>(a, wb, xb, wsr, n, m, kb, nout);
  else if (ng == 2) fp8Tile<2, NX>(a, wb, xb, wsr, n, m, kb, nout);
  else fp8Tile<1, NX>(a, wb, xb, wsr, n, m, kb, nout);
}

/** A tile of ng (1..3) row groups and nx (1..4) activation rows. */
void fp8TileAny(const GemmArgs& a, const __m256d* wb, const double* xb, const float* wsr, int n, int m, int kb, int ng, int nx, int nout) {
  switch (nx) {
    case 4: return fp8TileX<4>(a, wb, xb, wsr, n, m, kb, ng, nout);
    case 3: return fp8TileX<3>(a, wb, xb, wsr, n, m, kb, ng, nout);
    case 2: return fp8TileX<2>(a, wb, xb, wsr, n, m, kb, ng, nout);
    default: return fp8TileX<1>(a, wb, xb, wsr, n, m, kb, ng, nout);
  }
}

}  // namespace

// ---------- FP8 entry points ----------

size_t fp8PrepBytesPerRow(int K) { return size_t(K) * sizeof(double); }

bool fp8Prepare(const GemmArgs& a, uint8_t* prep, int m0, int m1) {
  static const Cvt8 cv;
  const Tables& T = tables();
  bool ok = true;
  for (int m = m0; m < m1; m++) {
    const uint8_t* q = a.xq + size_t(m) * a.K;
    if (a.rows <= kGemvRows8) {  // the GEMVs' spread order, row after row, vectorized
      double* xd = reinterpret_cast<double*>(prep) + size_t(m) * a.K;
      for (int c = 0; c < a.K; c += 32) ok &= prepGemv32(cv, q + c, xd + c);
      continue;
    }
    for (int kb = 0; kb < a.K / 128; kb++) {  // more rows: natural order in the blocked layout
      double* xd = reinterpret_cast<double*>(prep) + fp8PrepAt(a.rows, a.K, m, kb);
      for (int p = 0; p < 128; p++) {
        const uint8_t code = q[kb * 128 + p];
        if ((code & 0x7f) == 0x7f) ok = false;
        xd[p] = T.e4m3Scaled[code];
      }
    }
  }
  return ok;
}

void fp8Rows(const GemmArgs& a, const uint8_t* prep, int n0, int n1) {
  static const Cvt8 cv;
  static const uint8_t zeros[128] = {};
  const double* xd = reinterpret_cast<const double*>(prep);
  if (a.rows == 1) return fp8GemvRange<1>(a, cv, xd, n0, n1);
  if (a.rows == 2) return fp8GemvRange<2>(a, cv, xd, n0, n1);
  if (a.rows <= kGemvRows8) return fp8GemvRows(a, cv, xd, n0, n1);
  const int K = a.K, nkb = K / 128;
  const Tables& T = tables();
  // K blocks outermost within a chunk of fp8RowChunk activation rows: the chunk's block (<= 256 KiB)
  // stays in L2 while each NG-row weight group of this thread is converted into wb and used by
  // all its rows (12x4 register tiles, smaller at the edges); each output's blocks are still
  // added in increasing K order. One tile's worth of rows per group: wb (12 KiB) then stays in L1
  // beside the activation rows streaming from L2 (24 rows: 1.02-1.12x slower, 1 thread).
  constexpr int NG = 12;
  alignas(32) __m256d wb[NG / 4 * 128];  // NG / 4 groups of 4 rows x 128 k, kTileG groups interleaved per k
  alignas(16) float wsr[NG];
  static_assert(NG / 4 % kTileG == 0, "whole tiles of groups in wb");
  const int rc = fp8RowChunk(a.rows);
  for (int mc = 0; mc < a.rows; mc += rc) {
    const int nr = a.rows - mc < rc ? a.rows - mc : rc;
    for (int kb = 0; kb < nkb; kb++) {
      const double* xb = xd + fp8PrepAt(a.rows, K, mc, kb);
      for (int n = n0; n < n1; n += NG) {
        const int ng = n1 - n < NG ? n1 - n : NG, groups = (ng + 3) / 4;
        for (int g = 0; g < groups; g++) {
          const uint8_t* r[4];
          for (int j = 0; j < 4; j++) {
            const int w = 4 * g + j;
            r[j] = w < ng ? a.w + size_t(n + w) * K + kb * 128 : zeros;
            // the next group's block of this row: rows are K bytes apart, beyond the hardware prefetcher
            if (w < ng) {
              _mm_prefetch(reinterpret_cast<const char*>(r[j] + NG * size_t(K)), _MM_HINT_T0);
              _mm_prefetch(reinterpret_cast<const char*>(r[j] + NG * size_t(K) + 64), _MM_HINT_T0);
            }
            wsr[w] = w < ng ? T.e8m0[a.ws[size_t((n + w) >> 7) * nkb + kb]] : 0.0f;
          }
          cvt4x128(cv, r, wb + (g - g % kTileG) * 128 + g % kTileG);
        }
        for (int m = 0; m < nr; m += 4) {
          const int nx = nr - m < 4 ? nr - m : 4;
          const double* xm = xb + size_t(m) * 128;
          for (int g = 0; g < groups; g += kTileG) {
            const int gg = groups - g < kTileG ? groups - g : kTileG;
            if (gg == 3 && nx == 4 && 4 * g + 12 <= ng) fp8Tile<3, 4>(a, wb + g * 128, xm, wsr + 4 * g, n + 4 * g, mc + m, kb, 12);
            else fp8TileAny(a, wb + g * 128, xm, wsr + 4 * g, n + 4 * g, mc + m, kb, gg, nx, ng - 4 * g);
          }
        }
      }
    }
  }
}

// ---------- utilities ----------

bool hasNanE4m3(const uint8_t* p, size_t n) {
  const __m256i mask = _mm256_set1_epi8(0x7f);
  __m256i any = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i b = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), mask);
    any = _mm256_or_si256(any, _mm256_cmpeq_epi8(b, mask));
  }
  if (!_mm256_testz_si256(any, any)) return true;
  for (; i < n; i++)
    if ((p[i] & 0x7f) == 0x7f) return true;
  return false;
}

double readSum(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m256i* v = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
  }
  alignas(32) int64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return double(t[0] + t[1] + t[2] + t[3]);
}

double fmaLoop(long iters) {
  __m256 acc[10];
  for (int i = 0; i < 10; i++) acc[i] = _mm256_set1_ps(float(i));
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < 10; i++) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  __m256 s = acc[0];
  for (int i = 1; i < 10; i++) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  return t[0];
}

}  // namespace avx2
}  // namespace dsv4
#endif
