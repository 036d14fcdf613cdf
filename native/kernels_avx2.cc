// AVX2 + FMA exact kernels (compiled for avx2/fma here, called only after a
// runtime CPU check in addon.cc).
//
// FP8 x FP8 (fp8_gemm): each e4m3 weight byte is turned into a float64 by bit
// placement alone: top 16 bits = sign<<15 | (byte&0x7f)<<1, i.e. the e4m3
// exponent/mantissa land in the low exponent bits/top mantissa bits, giving
// exactly value * 2^-1016 (subnormal codes included). Activations are
// pre-scaled by 2^1015, so each FMA adds value_w * value_x / 2 exactly; the
// 128-term block sum needs at most 43 bits, so float64 holds it exactly.
//
// FP4 x FP8 (fp4_gemm): integers. An e4m3 activation is X * 2^-9 with
// X = D * 2^S (|D| <= 15, S <= 14): one signed digit byte D per element and an
// int16 factor 2^S per madd lane; an e2m1 weight is k/2 with k in [-12, 12],
// stored offset as u8 (k + 12) by a nibble table. vpmaddubsw/vpmaddwd give
// sum((k+12) X) exactly in int32; the prepared per-block correction 12 * sum(X)
// removes the offset. cvtdq2ps rounds the exact block sum once (RNE), as the
// reference does.
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
  int32_t e4m3Int[256];    // e4m3 value * 2^9 (fp4 activations)
  uint16_t digitLo[256];   // fp4 activations: the signed digit D as the low byte of an int16 (high byte 0)
  int16_t factor[256];     // fp4 activations: 2^S (value * 2^9 = D * 2^S)
  float e8m0[256];
  Tables() {
    for (int c = 0; c < 256; c++) {
      const int e = (c >> 3) & 15, m = c & 7;
      const int mag = e == 0 ? m : (8 + m) << (e - 1);  // value * 2^9
      const int v = (c & 0x80) ? -mag : mag;
      e4m3Int[c] = v;
      const int sh = e == 0 ? 0 : e - 1, d = e == 0 ? m : 8 + m;
      digitLo[c] = uint8_t(int8_t((c & 0x80) ? -d : d));
      factor[c] = int16_t(1 << sh);
      e4m3Scaled[c] = std::ldexp(double(v), 1015 - 9);
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
// "spread order": position 4i + e of a 32-code step holds element (i < 4 ? 0 : 8) + 2 (i & 3) +
// (e & 1) + 16 (e >> 1), fp8_spread.h), so the activations are prepared by the same placement.
using Cvt8 = Fp8Spread;  // fp8_spread.h

/** 32 e4m3 codes -> 8 x 4 float64 (value * 2^-1016), in the spread order. */
inline void cvt32(const Cvt8& k, const uint8_t* p, __m256d q[8]) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i lo = _mm256_add_epi8(b, b);  // magnitude << 1 (sign bit drops out)
  const __m256i hi = _mm256_and_si256(b, k.sign);
  const __m256i w0 = _mm256_unpacklo_epi8(lo, hi), w1 = _mm256_unpackhi_epi8(lo, hi);
  for (int g = 0; g < 4; g++) {
    q[g] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w0, k.ctl[g]));
    q[4 + g] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w1, k.ctl[g]));
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
constexpr int kGemvAhead = 2048;  // software prefetch distance of the one-row GEMV (bytes of each row)

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
  const __m256i sign = cv.sign, c0 = cv.ctl[0], c1 = cv.ctl[1], c2 = cv.ctl[2], c3 = cv.ctl[3];
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
      // then the next groups'), 4 lines of a row together: the hardware prefetchers alone left
      // the cores waiting on DRAM (4-8 row streams per core); prefetching the next group's rows at
      // the same offset instead was 0.8-0.9x on K = 1024
      if ((kb & 1) == 0)
        for (int r = 0; r < NR; r++) {
          size_t off = size_t(kb) * 128 + kGemvAhead;
          const uint8_t* base = w[r];
          while (off >= size_t(K)) { off -= K; base += NR * size_t(K); }
          for (int l = 0; l < 4; l++) _mm_prefetch(reinterpret_cast<const char*>(base + off + 64 * l), _MM_HINT_T0);
        }
      __m256d s[8];
      for (auto& v : s) v = _mm256_setzero_pd();
#pragma GCC unroll 1  // unrolled, the 16 steps measured ~2% slower
      for (int c = 0; c < 128; c += 32) {
        const double* xc = xd + kb * 128 + c;
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
          if (R == 1) gemvStep(sign, c0, c1, c2, c3, w[r] + kb * 128 + c, xc, s[2 * r], s[2 * r + 1]);
          else gemvStep2(sign, c0, c1, c2, c3, w[r] + kb * 128 + c, xc, xc + K, s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]);
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

// rows > 1: activations are prepared in natural K order in blocks of kRowChunk rows, each K
// block's rows contiguous ([kb][row][128]: no cache-set conflicts at large K). Weights are
// converted per K block with 4 rows interleaved (one vector = 4 rows at one k), so a tile
// broadcasts each activation and its accumulators already hold 4 outputs each: no horizontal
// sums, and the fp32 block update runs on 4 outputs per vector.
constexpr int kRowChunk = 48;
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

/** Offset (in doubles) of row m's K block kb in the prepared activations (rows > 1). */
inline size_t fp8PrepAt(int rows, int K, int m, int kb) {
  const int mc = m - m % kRowChunk, nr = rows - mc < kRowChunk ? rows - mc : kRowChunk;
  return size_t(mc) * K + (size_t(kb) * nr + (m - mc)) * 128;
}

/** 4 weight rows' 128-code block (r[j]) -> 128 vectors (k = 0..127) of the 4 rows' float64
 *  values (value * 2^-1016): bytes of rows 0/1 paired in the low lane and 2/3 in the high
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
      __m256d* o = out + c + 8 * i;
      for (int g = 0; g < 4; g++) {
        o[g] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w0, k.ctl[g]));
        o[4 + g] = _mm256_castsi256_pd(_mm256_shuffle_epi8(w1, k.ctl[g]));
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

/** NG x NX tile of the block kb: NG groups of 4 weight rows (wb, 128 vectors per group, scales
 *  wsr) times NX activation rows (xb, 128 apart), outputs y[m + x][n + 4g + j] for 4g + j < nout. */
template <int NG, int NX>
void fp8Tile(const GemmArgs& a, const __m256d* wb, const double* xb, const float* wsr, int n, int m, int kb, int nout) {
  const int nkb = a.K / 128;
  __m256d acc[NG][NX];
  for (int g = 0; g < NG; g++)
    for (int x = 0; x < NX; x++) acc[g][x] = _mm256_setzero_pd();
  for (int k = 0; k < 128; k++) {
    __m256d wv[NG];
    for (int g = 0; g < NG; g++) wv[g] = wb[g * 128 + k];
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

// ---------- FP4 ----------

// Prepared activations per 256-element chunk: 4 pieces of 64 elements, each
// 4 x 32 digit bytes then 4 x 32 bytes of int16 factors, then 8 int32 corrections
// and 8 float act scales times 2^-10 in lane order kLane4 (blocks 0,2,4,6,1,3,5,7: the order the
// piece reduction leaves them in). Each element X = D * f with D = +-M (|D| <= 15,
// the e4m3 significand) and f = 2^S (S <= 14): one digit byte per element in the
// maddubs byte matching its weight nibble (the pair's other byte 0), its factor in
// the madd int16 lane of that byte pair.
constexpr int kPiece = 8 * 32;
constexpr int kChunk = 4 * kPiece + 32 + 32 + 4 * 64;
// after them, per piece p: the corrections and the act scales of blocks 2p and 2p+1, each 4 times
// ([block 2p x4 | block 2p+1 x4]: int32 x 8, then float x 8), for the one-row GEMV's 4-row vectors
constexpr int kPairs = 4 * kPiece + 64;
constexpr int kLane4[8] = {0, 2, 4, 6, 1, 3, 5, 7};

inline int chunks4(int K) { return (K + 255) / 256; }
inline size_t fp4PrepBytesPerRowImpl(int K) { return size_t(chunks4(K)) * kChunk; }

struct Cvt4 {
  __m256i lut, low = _mm256_set1_epi8(15);
  __m256i d1 = _mm256_set1_epi16(1), d128 = _mm256_set1_epi16(128), d16k = _mm256_set1_epi16(16384);
  __m128i scalePerm = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, -1, -1, -1, -1, -1, -1, -1, -1);
  Cvt4() {
    // e2m1 code -> 2*value + 12 (u8)
    const int8_t t[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};
    lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
  }
};

/** The u8 weights (k + 12) of one 64-element piece: low-nibble and high-nibble elements. */
inline void fp4Weights(const Cvt4& k, const uint8_t* wp, __m256i& wl, __m256i& wh) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
  wl = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(b, k.low));
  wh = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(_mm256_srli_epi16(b, 4), k.low));
}

/** int32 sums of (k+12)*X over one 64-element piece: lanes 0-3 block 2p, 4-7 block 2p+1.
 *  maddubs gives (k+12)*D per int16 lane (one element each, <= 360), madd times f = 2^S and
 *  the pair sum (<= 2 * 24 * 229376), all exact. */
inline __m256i fp4Piece(const Cvt4&, __m256i wl, __m256i wh, const uint8_t* xp) {
  const __m256i* x = reinterpret_cast<const __m256i*>(xp);
  const __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(wl, _mm256_load_si256(x + 0)), _mm256_load_si256(x + 4));
  const __m256i b = _mm256_madd_epi16(_mm256_maddubs_epi16(wl, _mm256_load_si256(x + 1)), _mm256_load_si256(x + 5));
  const __m256i c = _mm256_madd_epi16(_mm256_maddubs_epi16(wh, _mm256_load_si256(x + 2)), _mm256_load_si256(x + 6));
  const __m256i d = _mm256_madd_epi16(_mm256_maddubs_epi16(wh, _mm256_load_si256(x + 3)), _mm256_load_si256(x + 7));
  return _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
}

/** The weight scales of the 8 blocks of chunk c (lane order kLane4), ue8m0 -> fp32. */
inline __m256 fp4Scales(const Cvt4& k, const uint8_t* sr, int c, int pieces) {
  __m128i sb8;
  uint64_t raw;
  if (pieces == 4) {
    std::memcpy(&raw, sr + c * 8, 8);
  } else {
    uint32_t r4;
    std::memcpy(&r4, sr + c * 8, 4);
    raw = r4 | 0x7f7f7f7f00000000ull;
  }
  sb8 = _mm_cvtsi64_si128(int64_t(raw));
  const __m256i sb = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(sb8, k.scalePerm));
  __m256i sbits = _mm256_slli_epi32(sb, 23);
  // bytes 0 (2^-127, subnormal) and 255 (NaN) are rare: fix them only when present
  constexpr uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;
  if (((raw - lo) & ~raw & hi) | ((~raw - lo) & raw & hi)) {
    const __m256i zero = _mm256_setzero_si256(), ff = _mm256_set1_epi32(255);
    sbits = _mm256_blendv_epi8(sbits, _mm256_set1_epi32(0x00400000), _mm256_cmpeq_epi32(sb, zero));
    sbits = _mm256_blendv_epi8(sbits, _mm256_set1_epi32(0x7fc00000), _mm256_cmpeq_epi32(sb, ff));
  }
  return _mm256_castsi256_ps(sbits);
}

/** fp4Scales for a full chunk whose scale bytes are neither 0 nor 255 (fp4ScalesPlain checked them). */
inline __m256 fp4ScalesFull(const Cvt4& k, const uint8_t* s8) {
  const __m128i b = _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s8)), k.scalePerm);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(b), 23));
}

/** No scale byte in p[0, n) is 0 (2^-127, subnormal) or 255 (NaN): each decodes by a shift alone. */
inline bool fp4ScalesPlain(const uint8_t* p, size_t n) {
  const __m256i zero = _mm256_setzero_si256(), ff = _mm256_set1_epi8(char(0xff));
  __m256i any = zero;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    any = _mm256_or_si256(any, _mm256_or_si256(_mm256_cmpeq_epi8(b, zero), _mm256_cmpeq_epi8(b, ff)));
  }
  if (!_mm256_testz_si256(any, any)) return false;
  for (; i < n; i++)
    if (p[i] == 0 || p[i] == 255) return false;
  return true;
}

/** The scale bytes of weight rows [n, min(n + 4, n1)) (one 4-row group, contiguous) are plain. */
inline bool fp4GroupPlain(const GemmArgs& a, int n, int n1) {
  const size_t nsb = size_t(a.K / 32);
  return fp4ScalesPlain(a.ws + size_t(n) * nsb, size_t(n + 4 < n1 ? 4 : n1 - n) * nsb);
}

/** The 8 scaled block values of one chunk (lane order kLane4) from its 4 piece sums:
 *  fl32(exact sum) * (act scale * 2^-10) * weight scale, the reference's roundings. */
inline __m256 fp4Values(__m256i s0, __m256i s1, __m256i s2, __m256i s3, const uint8_t* xc, __m256 ws) {
  // the hadd tree of (s0, s1, s2, s3) with unpacks (cheaper than vphaddd here)
  const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
  const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
  __m256i r = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
  r = _mm256_sub_epi32(r, _mm256_load_si256(reinterpret_cast<const __m256i*>(xc + 4 * kPiece)));
  // the prepared act scale holds sa * 2^-10 (exact, checked by fp4Prepare): fl32(sum) * (sa * 2^-10)
  // rounds the same real as (fl32(sum) * 2^-10) * sa, whose first product is exact
  const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(r), _mm256_load_ps(reinterpret_cast<const float*>(xc + 4 * kPiece + 32)));
  return _mm256_mul_ps(v, ws);
}

/** acc[j] + the blocks of v[j] in increasing K order (lanes 0,4,1,5,2,6,3,7) for 4
 *  outputs at once: a 4x8 transpose, then one fp32 add per block, as the scalar chain. */
inline __m128 fp4Accumulate4(__m128 acc, __m256 v0, __m256 v1, __m256 v2, __m256 v3, int pieces) {
  const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
  const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  acc = _mm_add_ps(acc, _mm256_castps256_ps128(u0));
  acc = _mm_add_ps(acc, _mm256_extractf128_ps(u0, 1));
  acc = _mm_add_ps(acc, _mm256_castps256_ps128(u1));
  acc = _mm_add_ps(acc, _mm256_extractf128_ps(u1, 1));
  if (pieces == 4) {
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    acc = _mm_add_ps(acc, _mm256_castps256_ps128(u2));
    acc = _mm_add_ps(acc, _mm256_extractf128_ps(u2, 1));
    acc = _mm_add_ps(acc, _mm256_castps256_ps128(u3));
    acc = _mm_add_ps(acc, _mm256_extractf128_ps(u3, 1));
  }
  return acc;
}

/** Scaled block values of chunk c of weight row wr (scales ws) against one prepared activation chunk
 *  (each piece converted right before its use: the 1-row GEMV). */
inline __m256 fp4ChunkRow(const Cvt4& k, const uint8_t* wr, int c, int pieces, const uint8_t* xc, __m256 ws) {
  __m256i s[4];
  for (int p = 0; p < 4; p++) {
    if (p < pieces) {
      __m256i wl, wh;
      fp4Weights(k, wr + c * 128 + p * 32, wl, wh);
      s[p] = fp4Piece(k, wl, wh, xc + p * kPiece);
    } else {
      s[p] = _mm256_setzero_si256();
    }
  }
  return fp4Values(s[0], s[1], s[2], s[3], xc, ws);
}

/** Same from weights already converted (8 vectors: wl, wh of each piece). */
inline __m256 fp4ChunkConverted(const Cvt4& k, const __m256i* w, int pieces, const uint8_t* xc, __m256 ws) {
  __m256i s[4];
  for (int p = 0; p < 4; p++)
    s[p] = p < pieces ? fp4Piece(k, w[2 * p], w[2 * p + 1], xc + p * kPiece) : _mm256_setzero_si256();
  return fp4Values(s[0], s[1], s[2], s[3], xc, ws);
}

/** R = 1..4 activation rows (prepared at xp[r]) into y[r][n0, n1): 4 weight rows at a time
 *  (the last ones repeated at the tail), each weight chunk converted once for the R rows, fp32
 *  accumulation of the 4 outputs in one vector, so no per-row scalar add chain limits the stream. */
template <int R, bool Full>
void fp4Gemv(const Cvt4& k, const GemmArgs& a, const uint8_t* const* xp, float* const* y, int n0, int n1) {
  const int K = a.K, nsb = K / 32, nch = chunks4(K);
  for (int n = n0; n < n1; n += 4) {
    if (Full && !fp4GroupPlain(a, n, n1)) {
      fp4Gemv<R, false>(k, a, xp, y, n, n + 4 < n1 ? n + 4 : n1);
      continue;
    }
    const uint8_t* wr[4];
    const uint8_t* sr[4];
    for (int j = 0; j < 4; j++) {
      const int r = n + j < n1 ? n + j : n1 - 1;
      wr[j] = a.w + size_t(r) * (K / 2);
      sr[j] = a.ws + size_t(r) * nsb;
    }
    __m128 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm_setzero_ps();
    for (int c = 0; c < nch; c++) {
      const int pieces = Full || (K - c * 256) >= 256 ? 4 : 2;
      __m256 v[R][4];
      // software prefetch of the next 4-row group (4 streams per thread defeat the hardware
      // prefetcher: without it 2-thread GEMVs from DRAM ran 0.4-0.7x the 1-row kernel)
      for (int j = 0; j < 4; j++) {
        _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * size_t(K / 2) + c * 128), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * size_t(K / 2) + c * 128 + 64), _MM_HINT_T0);
      }
#pragma GCC unroll 4  // the 4 rows' block values then stay in registers (~1.08x)
      for (int j = 0; j < 4; j++) {
        if (R == 1) {
          // the empty asm keeps GCC from hoisting this chunk's activation loads out of the j loop
          // (it copied them to the stack: 16 extra loads and stores per chunk)
          const uint8_t* xc = xp[0] + size_t(c) * kChunk;
          __asm__("" : "+r"(xc));
          v[0][j] = fp4ChunkRow(k, wr[j], c, pieces, xc, Full ? fp4ScalesFull(k, sr[j] + c * 8) : fp4Scales(k, sr[j], c, pieces));
          continue;
        }
        __m256i w[8];
        for (int p = 0; p < pieces; p++) fp4Weights(k, wr[j] + c * 128 + p * 32, w[2 * p], w[2 * p + 1]);
        const __m256 ws = Full ? fp4ScalesFull(k, sr[j] + c * 8) : fp4Scales(k, sr[j], c, pieces);
        for (int r = 0; r < R; r++) {
          const uint8_t* xc = xp[r] + size_t(c) * kChunk;
          __asm__("" : "+r"(xc));  // as above: load the activations where they are used
          v[r][j] = fp4ChunkConverted(k, w, pieces, xc, ws);
        }
      }
      for (int r = 0; r < R; r++) acc[r] = fp4Accumulate4(acc[r], v[r][0], v[r][1], v[r][2], v[r][3], pieces);
    }
    for (int r = 0; r < R; r++) {
      alignas(16) float t[4];
      _mm_store_ps(t, acc[r]);
      for (int j = 0; j < 4 && n + j < n1; j++) y[r][n + j] = t[j];
    }
  }
}

/** Chunk c's scale bytes of 4 weight rows, [row][block] -> [block][row]: lo = blocks 0-3, hi = blocks 4-7. */
inline void fp4ScalesT(const uint8_t* const* sr, int c, __m128i& lo, __m128i& hi) {
  const __m128i q01 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr[0] + c * 8)),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr[1] + c * 8)));
  const __m128i q23 = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr[2] + c * 8)),
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr[3] + c * 8)));
  lo = _mm_unpacklo_epi16(q01, q23);
  hi = _mm_unpackhi_epi16(q01, q23);
}

/** acc (4 outputs) + blocks 2p and 2p+1 of a chunk (prepared at xc), in K order, from the 4 weight rows'
 *  piece-p sums s0..s3: one unpack tree leaves [block 2p, rows 0-3 | block 2p+1, rows 0-3]. */
inline __m128 fp4Pair4(__m128 acc, __m256i s0, __m256i s1, __m256i s2, __m256i s3, __m128i slo, __m128i shi, int p, const uint8_t* xc) {
  const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
  const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
  __m256i r = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
  const uint8_t* pp = xc + kPairs + 64 * p;
  r = _mm256_sub_epi32(r, _mm256_load_si256(reinterpret_cast<const __m256i*>(pp)));
  const __m128i sb = (p & 2) ? shi : slo;
  const __m256i ws = _mm256_slli_epi32(_mm256_cvtepu8_epi32((p & 1) ? _mm_unpackhi_epi64(sb, sb) : sb), 23);
  __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(r), _mm256_load_ps(reinterpret_cast<const float*>(pp + 32)));
  v = _mm256_mul_ps(v, _mm256_castsi256_ps(ws));
  acc = _mm_add_ps(acc, _mm256_castps256_ps128(v));
  return _mm_add_ps(acc, _mm256_extractf128_ps(v, 1));
}

/** One activation row, whole chunks, plain scale bytes: 4 weight rows at a time, and per 64-element
 *  piece the 4 rows' int32 partial sums reduced together (fp4Pair4), so the fp32 adds take blocks in K
 *  order with no transpose. Rows of up to kSeg chunks (K <= 4096) are read as one sequential stream,
 *  row by row, the piece sums waiting in an L1 buffer (1 thread from memory, K = 1024: 1.16-1.18x the
 *  4 interleaved row streams, K = 2048 the same); longer rows keep the interleaved streams (K = 8192
 *  row by row in 2 KiB segments: 0.57x). */
void fp4Gemv1(const Cvt4& k, const GemmArgs& a, const uint8_t* xp, float* y, int n0, int n1) {
  constexpr int kSeg = 16;
  const int K = a.K, nsb = K / 32, nch = K / 256;
  const size_t rb = size_t(K / 2);
  alignas(64) __m256i buf[kSeg * 4 * 4];  // [chunk][piece][row]
  for (int n = n0; n < n1; n += 4) {
    if (!fp4GroupPlain(a, n, n1)) {
      fp4Gemv<1, false>(k, a, &xp, &y, n, n + 4 < n1 ? n + 4 : n1);
      continue;
    }
    const uint8_t* wr[4];
    const uint8_t* sr[4];
    for (int j = 0; j < 4; j++) {
      const int r = n + j < n1 ? n + j : n1 - 1;
      wr[j] = a.w + size_t(r) * rb;
      sr[j] = a.ws + size_t(r) * nsb;
    }
    __m128 acc = _mm_setzero_ps();
    if (nch <= kSeg) {
      for (int j = 0; j < 4; j++) {
        for (int c = 0; c < nch; c++) {
          // 2 KiB ahead in the stream (best of 1-4 KiB from memory, 1 thread)
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + c * 128 + 2048), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + c * 128 + 2048 + 64), _MM_HINT_T0);
          const uint8_t* xc = xp + size_t(c) * kChunk;
          __asm__("" : "+r"(xc));  // load the activations where they are used
#pragma GCC unroll 4
          for (int p = 0; p < 4; p++) {
            __m256i wl, wh;
            fp4Weights(k, wr[j] + c * 128 + p * 32, wl, wh);
            _mm256_store_si256(buf + (c * 4 + p) * 4 + j, fp4Piece(k, wl, wh, xc + p * kPiece));
          }
        }
      }
      for (int c = 0; c < nch; c++) {
        __m128i slo, shi;
        fp4ScalesT(sr, c, slo, shi);
        const __m256i* b = buf + c * 16;
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) acc = fp4Pair4(acc, b[4 * p], b[4 * p + 1], b[4 * p + 2], b[4 * p + 3], slo, shi, p, xp + size_t(c) * kChunk);
      }
    } else {
      for (int c = 0; c < nch; c++) {
        for (int j = 0; j < 4; j++) {  // the next 4-row group
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * rb + c * 128), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * rb + c * 128 + 64), _MM_HINT_T0);
        }
        __m128i slo, shi;
        fp4ScalesT(sr, c, slo, shi);
        const uint8_t* xc = xp + size_t(c) * kChunk;
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
          __asm__("" : "+r"(xc));
          __m256i s[4];
          for (int j = 0; j < 4; j++) {
            __m256i wl, wh;
            fp4Weights(k, wr[j] + c * 128 + p * 32, wl, wh);
            s[j] = fp4Piece(k, wl, wh, xc + p * kPiece);
          }
          acc = fp4Pair4(acc, s[0], s[1], s[2], s[3], slo, shi, p, xc);
        }
      }
    }
    alignas(16) float t[4];
    _mm_store_ps(t, acc);
    for (int j = 0; j < 4 && n + j < n1; j++) y[n + j] = t[j];
  }
}

/** Activation rows [0, rows), rows a multiple of 4: NG weight rows' chunk is converted once
 *  into wb and used by every activation row of a kMC-row group (whose prepared chunk stays
 *  in L1), 4 activation rows at a time. */
void fp4Gemm(const Cvt4& k, const GemmArgs& a, const uint8_t* prep, int rows, int n0, int n1) {
  constexpr int NG = 8, kMC = 16;
  const int K = a.K, nsb = K / 32, nch = chunks4(K);
  const size_t rowBytes = fp4PrepBytesPerRowImpl(K);
  alignas(32) __m256i wb[NG * 8];
  __m256 ws[NG];
  alignas(16) float acc[NG][kMC];
  for (int mc = 0; mc < rows; mc += kMC) {
    const int nm = rows - mc < kMC ? rows - mc : kMC;
    for (int ng0 = n0; ng0 < n1; ng0 += NG) {
      const int ng = n1 - ng0 < NG ? n1 - ng0 : NG;
      for (int w = 0; w < ng; w++)
        for (int m = 0; m < kMC; m++) acc[w][m] = 0.0f;
      for (int c = 0; c < nch; c++) {
        const int pieces = (K - c * 256) >= 256 ? 4 : 2;
        for (int w = 0; w < ng; w++) {
          const uint8_t* wr = a.w + size_t(ng0 + w) * (K / 2) + c * 128;
          for (int p = 0; p < pieces; p++) {
            __m256i wl, wh;
            fp4Weights(k, wr + p * 32, wl, wh);
            _mm256_store_si256(wb + w * 8 + 2 * p, wl);
            _mm256_store_si256(wb + w * 8 + 2 * p + 1, wh);
          }
          ws[w] = fp4Scales(k, a.ws + size_t(ng0 + w) * nsb, c, pieces);
        }
        for (int m = 0; m < nm; m += 4) {
          const uint8_t* xc[4];
          for (int j = 0; j < 4; j++) xc[j] = prep + size_t(mc + m + j) * rowBytes + size_t(c) * kChunk;
          for (int w = 0; w < ng; w++) {
            __m256 v[4];
            for (int j = 0; j < 4; j++) v[j] = fp4ChunkConverted(k, wb + w * 8, pieces, xc[j], ws[w]);
            _mm_store_ps(&acc[w][m], fp4Accumulate4(_mm_load_ps(&acc[w][m]), v[0], v[1], v[2], v[3], pieces));
          }
        }
      }
      for (int w = 0; w < ng; w++)
        for (int m = 0; m < nm; m++) a.y[size_t(mc + m) * a.out + ng0 + w] = acc[w][m];
    }
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
  // K blocks outermost within a chunk of kRowChunk activation rows: the chunk's block (48 KiB)
  // stays in L2 while each NG-row weight group of this thread is converted into wb and used by
  // all its rows (12x4 register tiles, smaller at the edges); each output's blocks are still
  // added in increasing K order.
  constexpr int NG = 24;
  alignas(32) __m256d wb[NG / 4 * 128];  // NG / 4 groups of 4 rows x 128 k
  alignas(16) float wsr[NG];
  for (int mc = 0; mc < a.rows; mc += kRowChunk) {
    const int nr = a.rows - mc < kRowChunk ? a.rows - mc : kRowChunk;
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
          cvt4x128(cv, r, wb + g * 128);
        }
        for (int m = 0; m < nr; m += 4) {
          const int nx = nr - m < 4 ? nr - m : 4;
          const double* xm = xb + size_t(m) * 128;
          for (int g = 0; g < groups; g += 3) {
            const int gg = groups - g < 3 ? groups - g : 3;
            if (gg == 3 && nx == 4 && 4 * g + 12 <= ng) fp8Tile<3, 4>(a, wb + g * 128, xm, wsr + 4 * g, n + 4 * g, mc + m, kb, 12);
            else fp8TileAny(a, wb + g * 128, xm, wsr + 4 * g, n + 4 * g, mc + m, kb, gg, nx, ng - 4 * g);
          }
        }
      }
    }
  }
}

// ---------- FP4 entry points ----------

size_t fp4PrepBytesPerRow(int K) { return fp4PrepBytesPerRowImpl(K); }

bool fp4Prepare(const GemmArgs& a, uint8_t* prep, int m0, int m1) {
  const Tables& T = tables();
  const int K = a.K, nkb = K / 128, nch = chunks4(K);
  bool ok = true;
  for (int m = m0; m < m1; m++) {
    const uint8_t* q = a.xq + size_t(m) * K;
    uint8_t* row = prep + size_t(m) * nch * kChunk;
    for (int c = 0; c < nch; c++) {
      uint8_t* xc = row + size_t(c) * kChunk;
      const int pieces = K - c * 256 < 256 ? 2 : 4;
      if (pieces < 4) std::memset(xc + pieces * kPiece, 0, size_t(4 - pieces) * kPiece);
      int32_t corr[8] = {};
      uint8_t nan = 0;
      for (int p = 0; p < pieces; p++) {
        // element t = 4j + r of the piece (weight byte 2j + (r >> 1), nibble r & 1) goes to digit
        // vector v = 2 (r & 1) + (r >> 1), byte 2j + (r >> 1) (the pair's other byte 0), its factor
        // to int16 lane j of vector 4 + v
        const uint8_t* qp = q + c * 256 + p * 64;
        uint16_t* d = reinterpret_cast<uint16_t*>(xc + p * kPiece);
        int16_t* f = reinterpret_cast<int16_t*>(xc + p * kPiece + 4 * 32);
        for (int j = 0; j < 16; j++) {
          const uint8_t c0 = qp[4 * j], c1 = qp[4 * j + 1], c2 = qp[4 * j + 2], c3 = qp[4 * j + 3];
          nan |= uint8_t(((c0 & 0x7f) + 1) | ((c1 & 0x7f) + 1) | ((c2 & 0x7f) + 1) | ((c3 & 0x7f) + 1));
          d[j] = T.digitLo[c0];
          d[16 + j] = uint16_t(T.digitLo[c2] << 8);
          d[32 + j] = T.digitLo[c1];
          d[48 + j] = uint16_t(T.digitLo[c3] << 8);
          f[j] = T.factor[c0];
          f[16 + j] = T.factor[c2];
          f[32 + j] = T.factor[c1];
          f[48 + j] = T.factor[c3];
          corr[2 * p + (j >> 3)] += T.e4m3Int[c0] + T.e4m3Int[c1] + T.e4m3Int[c2] + T.e4m3Int[c3];
        }
      }
      if (nan & 0x80) ok = false;  // (code & 0x7f) + 1 == 0x80: a NaN code
      int32_t* cv = reinterpret_cast<int32_t*>(xc + 4 * kPiece);
      float* sv = reinterpret_cast<float*>(xc + 4 * kPiece + 32);
      for (int l = 0; l < 8; l++) {
        const int blk = kLane4[l];
        cv[l] = 12 * corr[blk];
        const int kb = (c * 256 + blk * 32) / 128;
        const float sa = kb < nkb ? a.xs[size_t(m) * nkb + kb] : 0.0f, sa10 = sa * (1.0f / 1024);
        if (!(sa10 * 1024.0f == sa)) ok = false;  // not exact (tiny scale) or NaN: the reference path
        sv[l] = sa10;
        int32_t* cp = reinterpret_cast<int32_t*>(xc + kPairs + 64 * (blk >> 1)) + 4 * (blk & 1);
        float* sp = reinterpret_cast<float*>(xc + kPairs + 64 * (blk >> 1) + 32) + 4 * (blk & 1);
        for (int r = 0; r < 4; r++) {
          cp[r] = cv[l];
          sp[r] = sa10;
        }
      }
    }
  }
  return ok;
}

void fp4Rows(const GemmArgs& a, const uint8_t* prep, int n0, int n1) {
  static const Cvt4 cv;
  // up to kGemvRows activation rows (e.g. the few tokens routed to an expert) through the GEMV,
  // 4 at a time, each weight chunk converted once for them; more through the GEMM tiles in
  // groups of 4, the remaining 1-3 rows through the GEMV
  constexpr int kGemvRows = 7;
  const int full = a.rows <= kGemvRows ? 0 : a.rows & ~3;
  if (full) fp4Gemm(cv, a, prep, full, n0, n1);
  const size_t rowBytes = fp4PrepBytesPerRowImpl(a.K);
  // whole 256-element chunks; 4-row groups with plain scale bytes (the checkpoints' case) then take the
  // paths without per-chunk checks
  const bool full4 = a.K % 256 == 0;
  for (int m = full; m < a.rows; m += 4) {
    const int rem = a.rows - m < 4 ? a.rows - m : 4;
    const uint8_t* xp[4];
    float* y[4];
    for (int r = 0; r < rem; r++) {
      xp[r] = prep + size_t(m + r) * rowBytes;
      y[r] = a.y + size_t(m + r) * a.out;
    }
    if (full4) {
      if (rem == 1) fp4Gemv1(cv, a, xp[0], y[0], n0, n1);
      else if (rem == 2) fp4Gemv<2, true>(cv, a, xp, y, n0, n1);
      else if (rem == 3) fp4Gemv<3, true>(cv, a, xp, y, n0, n1);
      else fp4Gemv<4, true>(cv, a, xp, y, n0, n1);
    } else {
      if (rem == 1) fp4Gemv<1, false>(cv, a, xp, y, n0, n1);
      else if (rem == 2) fp4Gemv<2, false>(cv, a, xp, y, n0, n1);
      else if (rem == 3) fp4Gemv<3, false>(cv, a, xp, y, n0, n1);
      else fp4Gemv<4, false>(cv, a, xp, y, n0, n1);
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
