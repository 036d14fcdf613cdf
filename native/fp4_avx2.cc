// AVX2 exact FP4 x FP8 kernels (fp4_gemm: the routed experts), compiled for
// avx2/fma here and called only after a runtime CPU check in addon.cc.
//
// Integers. An e4m3 activation is X * 2^-9 with X = D * 2^S (|D| <= 15,
// S <= 14): one signed digit byte D per element and an int16 factor 2^S per
// madd lane; an e2m1 weight is k/2 with k in [-12, 12], stored offset as u8
// (k + 12) by a nibble table. vpmaddubsw/vpmaddwd give sum((k+12) X) exactly in
// int32; the prepared per-block correction 12 * sum(X) removes the offset.
// cvtdq2ps rounds the exact block sum once (RNE), as the reference does.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cstring>

#include "fp4_avx2.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

using Tables = fp4avx2::ActTables;
inline const Tables& tables() { return fp4avx2::actTables(); }

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

/** fp4Scales for a full chunk whose scale bytes are neither 0 nor 255 (fp4avx2::scalesPlain checked them). */
inline __m256 fp4ScalesFull(const Cvt4& k, const uint8_t* s8) {
  const __m128i b = _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s8)), k.scalePerm);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(b), 23));
}

/** The scale bytes of weight rows [n, min(n + 4, n1)) (one 4-row group, contiguous) are plain. */
inline bool fp4GroupPlain(const GemmArgs& a, int n, int n1) {
  const size_t nsb = size_t(a.K / 32);
  return fp4avx2::scalesPlain(a.ws + size_t(n) * nsb, size_t(n + 4 < n1 ? 4 : n1 - n) * nsb);
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

/** One activation row, whole chunks, plain scale bytes: 4 weight rows at a time, and per 64-element
 *  piece the 4 rows' int32 partial sums reduced together (fp4avx2::pair4), so the fp32 adds take blocks in K
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
          // into L2 8 KiB ahead in the stream (2 KiB into L1 held the L1 miss buffers: bench-2g exact decode
          // step with the FP8 and BF16 GEMVs' T1 prefetch 47.8 -> 43.5 ms mean of 3, alternating)
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + c * 128 + 8192), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + c * 128 + 8192 + 64), _MM_HINT_T1);
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
        fp4avx2::scalesT(sr, c, false, slo, shi);
        const __m256i* b = buf + c * 16;
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) acc = fp4avx2::pair4(acc, b[4 * p], b[4 * p + 1], b[4 * p + 2], b[4 * p + 3], slo, shi, p, xp + size_t(c) * kChunk + kPairs + 64 * p);
      }
    } else {
      for (int c = 0; c < nch; c++) {
        for (int j = 0; j < 4; j++) {  // the next 4-row group
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * rb + c * 128), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(wr[j] + 4 * rb + c * 128 + 64), _MM_HINT_T0);
        }
        __m128i slo, shi;
        fp4avx2::scalesT(sr, c, false, slo, shi);
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
          acc = fp4avx2::pair4(acc, s[0], s[1], s[2], s[3], slo, shi, p, xc + kPairs + 64 * p);
        }
      }
    }
    alignas(16) float t[4];
    _mm_store_ps(t, acc);
    for (int j = 0; j < 4 && n + j < n1; j++) y[n + j] = t[j];
  }
}

// The GEMM (more than kGemvRows activation rows) has its own prepared layout (fp4PrepareT): per
// 256-element chunk and step q (0..3), 4 digit vectors then 4 factor vectors whose 32-bit lane l
// holds elements 8q..8q+7 of block kLane4[l] (the maddubs byte matching the weight nibble, as
// above), then the 8 corrections and act scales (lane order kLane4). Weight chunks are converted
// to match (fp4WeightsT: a 4x4 dword transpose per 128-bit lane before the nibble lookup), so
// every madd lane adds to one block: the 16 madds of a chunk sum into one vector of the 8 block
// sums with plain adds (no reduction tree per piece).
constexpr int kGemvRows = 7;
// with AVX-512 VNNI the GEMM (fp4_gemm_vnni.cc) from 4 rows: against the GEMV, 2 threads, best of 2-3
// alternating runs at 4 / 5 / 6 / 7 rows: 2048 . 1024 x 2048 (bench-2g's experts) 1.4x / 1.3x / 1.3x / 1.5x;
// 4096 . 2048 x 4096 (V4-Flash's) 1.6x at 4 rows, 1.1-1.2x at 7; only 8192 . 16384 x 8192, larger than any
// expert, favours the GEMV (0.84x at 4 rows, 0.92x at 5); at 2-3 rows the GEMV stays (1.0-1.2x ahead)
constexpr int kGemvRowsVnni = 3;
/** Activation rows that take the GEMM path (and its prepared layout). */
inline bool gemmRows(int rows) { return rows > (cpuVnni() ? kGemvRowsVnni : kGemvRows); }
constexpr int kChunkT = 4 * 256 + 64;
static_assert(kChunkT <= kChunk, "the GEMM layout fits the prepared row size");

/** One weight row's chunk (128 bytes at wr, the first 64 only when pieces == 2) -> 8 vectors:
 *  [q][low nibbles (k + 12), high nibbles], lane l of step q = bytes 4q..4q+3 of block kLane4[l]. */
inline void fp4WeightsT(const Cvt4& k, const uint8_t* wr, int pieces, __m256i* out) {
  __m256i v[4];
  for (int p = 0; p < 4; p++)
    v[p] = p < pieces ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + 32 * p)) : _mm256_setzero_si256();
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  const __m256i q[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                        _mm256_unpackhi_epi64(t1, t3)};
  for (int i = 0; i < 4; i++) {
    out[2 * i] = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(q[i], k.low));
    out[2 * i + 1] = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(_mm256_srli_epi16(q[i], 4), k.low));
  }
}

/** s += the int32 sums of one converted weight row's step (wl at w, wh at w + 32 bytes) against the
 *  activation step in d0..d3 (digits) and f0..f3 (factors): 4 maddubs, 4 madd, 4 adds. One asm block,
 *  so the 8 activation vectors, the 4 rows' sums and 3 scratch registers stay in the 16 ymm registers
 *  (GCC's own schedule of the intrinsics reordered the adds and spilled ~20 vectors per step). With
 *  AVX-512 VNNI the GEMM runs fp4_gemm_vnni.cc instead. */
inline void fp4Step(const __m256i* w, __m256i d0, __m256i d1, __m256i d2, __m256i d3, __m256i f0, __m256i f1, __m256i f2, __m256i f3,
                    __m256i& s) {
  __m256i t0, t1, t2;
  asm("vmovdqa (%[w]), %[t0]\n\t"
      "vpmaddubsw %[d0], %[t0], %[t1]\n\t"
      "vpmaddwd %[f0], %[t1], %[t1]\n\t"
      "vpmaddubsw %[d1], %[t0], %[t2]\n\t"
      "vpmaddwd %[f1], %[t2], %[t2]\n\t"
      "vpaddd %[t2], %[t1], %[t1]\n\t"
      "vmovdqa 32(%[w]), %[t0]\n\t"
      "vpmaddubsw %[d2], %[t0], %[t2]\n\t"
      "vpmaddwd %[f2], %[t2], %[t2]\n\t"
      "vpaddd %[t2], %[t1], %[t1]\n\t"
      "vpmaddubsw %[d3], %[t0], %[t2]\n\t"
      "vpmaddwd %[f3], %[t2], %[t2]\n\t"
      "vpaddd %[t2], %[t1], %[t1]\n\t"
      "vpaddd %[t1], %[s], %[s]"
      : [s] "+x"(s), [t0] "=&x"(t0), [t1] "=&x"(t1), [t2] "=&x"(t2)
      : [w] "r"(w), [d0] "x"(d0), [d1] "x"(d1), [d2] "x"(d2), [d3] "x"(d3), [f0] "x"(f0), [f1] "x"(f1), [f2] "x"(f2), [f3] "x"(f3)
      : "memory");
}

/** The exact int32 block sums (lane order kLane4, before the correction) of 4 converted weight rows
 *  (w, 8 vectors each) against one activation row's chunk (xc, the GEMM layout): each activation step
 *  is loaded once for the 4 rows. */
inline void fp4Sums4(const __m256i* w, const uint8_t* xc, __m256i s[4]) {
  for (int j = 0; j < 4; j++) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {
    const __m256i* x = reinterpret_cast<const __m256i*>(xc + 256 * q);
    const __m256i d0 = _mm256_load_si256(x), d1 = _mm256_load_si256(x + 1), d2 = _mm256_load_si256(x + 2), d3 = _mm256_load_si256(x + 3);
    const __m256i f0 = _mm256_load_si256(x + 4), f1 = _mm256_load_si256(x + 5), f2 = _mm256_load_si256(x + 6), f3 = _mm256_load_si256(x + 7);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) fp4Step(w + 8 * j + 2 * q, d0, d1, d2, d3, f0, f1, f2, f3, s[j]);
  }
}

/** Activation rows [0, a.rows): NG weight rows' chunk is converted once into wb and used by every
 *  activation row of a kMC-row group (whose prepared chunks stay in L1/L2), 4 weight rows per
 *  activation load; the fp32 accumulators of 4 outputs (one activation row, 4 weight rows) share a
 *  vector, so their blocks are added in K order after one 4x8 transpose (fp4Accumulate4). */
void fp4Gemm(const Cvt4& k, const GemmArgs& a, const uint8_t* prep, int n0, int n1) {
  constexpr int NG = 8, kMC = 16;
  const int K = a.K, nsb = K / 32, nch = chunks4(K), rows = a.rows;
  const size_t rowBytes = fp4PrepBytesPerRowImpl(K);
  alignas(32) __m256i wb[NG * 8];
  __m256 ws[NG];
  alignas(16) float acc[kMC][NG];
  for (int mc = 0; mc < rows; mc += kMC) {
    const int nm = rows - mc < kMC ? rows - mc : kMC;
    for (int ng0 = n0; ng0 < n1; ng0 += NG) {
      const int ng = n1 - ng0 < NG ? n1 - ng0 : NG;
      std::memset(acc, 0, sizeof acc);
      for (int c = 0; c < nch; c++) {
        const int pieces = (K - c * 256) >= 256 ? 4 : 2;
        for (int w = 0; w < NG; w++) {  // rows past n1 repeat the first (results dropped)
          const int r = ng0 + (w < ng ? w : 0);
          fp4WeightsT(k, a.w + size_t(r) * (K / 2) + c * 128, pieces, wb + 8 * w);
          ws[w] = fp4Scales(k, a.ws + size_t(r) * nsb, c, pieces);
        }
        for (int m = 0; m < nm; m++) {
          const uint8_t* xc = prep + size_t(mc + m) * rowBytes + size_t(c) * kChunkT;
          const __m256i corr = _mm256_load_si256(reinterpret_cast<const __m256i*>(xc + 1024));
          const __m256 sa = _mm256_load_ps(reinterpret_cast<const float*>(xc + 1024 + 32));
          for (int w = 0; w < ng; w += 4) {
            __m256i s[4];
            fp4Sums4(wb + 8 * w, xc, s);
            __m256 v[4];
            // fl32(exact sum) * (act scale * 2^-10) * weight scale, as fp4Values
            for (int j = 0; j < 4; j++) v[j] = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s[j], corr)), sa), ws[w + j]);
            _mm_store_ps(&acc[m][w], fp4Accumulate4(_mm_load_ps(&acc[m][w]), v[0], v[1], v[2], v[3], pieces));
          }
        }
      }
      for (int m = 0; m < nm; m++) std::memcpy(a.y + size_t(mc + m) * a.out + ng0, acc[m], size_t(ng) * sizeof(float));
    }
  }
}

}  // namespace

// ---------- FP4 entry points ----------

size_t fp4PrepBytesPerRow(int K) { return fp4PrepBytesPerRowImpl(K); }

/** fp4Prepare for the GEMM's layout (kChunkT per chunk, rows kChunk apart; fp4Gemm above). */
bool fp4PrepareT(const GemmArgs& a, uint8_t* prep, int m0, int m1) {
  const Tables& T = tables();
  const int K = a.K, nkb = K / 128, nch = chunks4(K);
  bool ok = true;
  for (int m = m0; m < m1; m++) {
    const uint8_t* q = a.xq + size_t(m) * K;
    for (int c = 0; c < nch; c++) {
      uint8_t* xc = prep + size_t(m) * nch * kChunk + size_t(c) * kChunkT;
      const int nblk = K - c * 256 < 256 ? 4 : 8;
      if (nblk < 8) std::memset(xc, 0, kChunkT);  // the missing blocks: digits 0, correction 0, scale 0
      uint16_t* u = reinterpret_cast<uint16_t*>(xc);
      int32_t* cv = reinterpret_cast<int32_t*>(xc + 1024);
      float* sv = reinterpret_cast<float*>(xc + 1024 + 32);
      uint8_t nan = 0;
      for (int l = 0; l < 8; l++) {
        const int blk = kLane4[l];
        if (blk >= nblk) continue;
        const uint8_t* qb = q + c * 256 + blk * 32;
        int32_t corr = 0;
        // element e = 8 qs + 2 b + nib: weight byte 4 qs + b of the block (lane l, byte b), nibble nib;
        // digit vector v = 2 nib + (b & 1) of step qs, byte 4 l + b (the int16 pair's other byte 0), its
        // factor in int16 lane 2 l + (b >> 1) of factor vector v: every int16 of a whole chunk written once
#pragma GCC unroll 32
        for (int e = 0; e < 32; e++) {
          const int qs = e >> 3, b = (e >> 1) & 3, v = 2 * (e & 1) + (b & 1), at = 128 * qs + 16 * v + 2 * l + (b >> 1);
          const uint8_t code = qb[e];
          u[at] = (b & 1) ? uint16_t(T.digitLo[code] << 8) : T.digitLo[code];
          u[at + 64] = uint16_t(T.factor[code]);
          nan |= uint8_t((code & 0x7f) + 1);
          corr += T.e4m3Int[code];
        }
        cv[l] = 12 * corr;
        const int kb = (c * 256 + blk * 32) / 128;
        const float sa = a.xs[size_t(m) * nkb + kb], sa10 = sa * (1.0f / 1024);
        if (!(sa10 * 1024.0f == sa)) ok = false;  // not exact (tiny scale) or NaN: the reference path
        sv[l] = sa10;
      }
      if (nan & 0x80) ok = false;  // (code & 0x7f) + 1 == 0x80: a NaN code
    }
  }
  return ok;
}

bool fp4Prepare(const GemmArgs& a, uint8_t* prep, int m0, int m1) {
  if (gemmRows(a.rows)) return cpuVnni() ? fp4PrepareVnni(a, prep, m0, m1) : fp4PrepareT(a, prep, m0, m1);
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
  // more than kGemvRows (kGemvRowsVnni) activation rows through the GEMM tiles (their own prepared
  // layout); fewer (e.g. the few tokens routed to an expert) through the GEMV, 4 at a time, each weight
  // chunk converted once for them
  if (gemmRows(a.rows)) return cpuVnni() ? fp4GemmVnni(a, prep, n0, n1) : fp4Gemm(cv, a, prep, n0, n1);
  const size_t rowBytes = fp4PrepBytesPerRowImpl(a.K);
  // whole 256-element chunks; 4-row groups with plain scale bytes (the checkpoints' case) then take the
  // paths without per-chunk checks
  const bool full4 = a.K % 256 == 0;
  for (int m = 0; m < a.rows; m += 4) {
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
}  // namespace avx2
}  // namespace dsv4
#endif
