// Pieces the exact FP4 kernel (fp4_avx2.cc) and the int8 one of fast numerics (fp4q8_avx2.cc) share:
// the scale-byte check, the transposed scale bytes of 4 weight rows, and the reduction of 4 weight
// rows' piece sums into their fp32 accumulators in k order; the activation tables the exact GEMMs'
// preparations share (fp4_avx2.cc, fp4_gemm_vnni.cc). Include after `#pragma GCC target("avx2,fma")`.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dsv4 {
namespace fp4avx2 {

/** e4m3 codes as FP4 activations: the value * 2^9, and its signed digit D and factor 2^S. */
struct ActTables {
  int32_t e4m3Int[256];   // e4m3 value * 2^9
  uint16_t digitLo[256];  // the signed digit D as the low byte of an int16 (high byte 0)
  int16_t factor[256];    // 2^S (value * 2^9 = D * 2^S)
  ActTables() {
    for (int c = 0; c < 256; c++) {
      const int e = (c >> 3) & 15, m = c & 7;
      const int mag = e == 0 ? m : (8 + m) << (e - 1);  // value * 2^9
      e4m3Int[c] = (c & 0x80) ? -mag : mag;
      const int sh = e == 0 ? 0 : e - 1, d = e == 0 ? m : 8 + m;
      digitLo[c] = uint8_t(int8_t((c & 0x80) ? -d : d));
      factor[c] = int16_t(1 << sh);
    }
  }
};
inline const ActTables& actTables() {
  static const ActTables t;
  return t;
}

/** No scale byte in p[0, n) is 0 (2^-127, subnormal) or 255 (NaN): each decodes by a shift alone. */
inline bool scalesPlain(const uint8_t* p, size_t n) {
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

/** Chunk c's scale bytes of 4 weight rows (8 blocks, or the first 4 when `half`), [row][block] ->
 *  [block][row]: lo = blocks 0-3, hi = blocks 4-7. */
inline void scalesT(const uint8_t* const* sr, int c, bool half, __m128i& lo, __m128i& hi) {
  __m128i r[4];
  for (int j = 0; j < 4; j++) {
    if (half) {
      uint32_t v;
      std::memcpy(&v, sr[j] + c * 8, 4);
      r[j] = _mm_cvtsi32_si128(int(v));
    } else {
      r[j] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sr[j] + c * 8));
    }
  }
  const __m128i q01 = _mm_unpacklo_epi8(r[0], r[1]), q23 = _mm_unpacklo_epi8(r[2], r[3]);
  lo = _mm_unpacklo_epi16(q01, q23);
  hi = _mm_unpackhi_epi16(q01, q23);
}

/** acc (4 outputs) + blocks 2p and 2p+1 of a chunk, in k order, from the 4 weight rows' piece-p int32 sums
 *  s0..s3 (lanes 0-3 block 2p, 4-7 block 2p+1): one unpack tree leaves [block 2p, rows 0-3 | block 2p+1,
 *  rows 0-3]; pp holds the activation's int32 offsets to subtract and its fp32 factors, both in that order. */
inline __m128 pair4(__m128 acc, __m256i s0, __m256i s1, __m256i s2, __m256i s3, __m128i slo, __m128i shi, int p, const uint8_t* pp) {
  const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
  const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
  __m256i r = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
  r = _mm256_sub_epi32(r, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pp)));
  const __m128i sb = (p & 2) ? shi : slo;
  const __m256i ws = _mm256_slli_epi32(_mm256_cvtepu8_epi32((p & 1) ? _mm_unpackhi_epi64(sb, sb) : sb), 23);
  __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(r), _mm256_loadu_ps(reinterpret_cast<const float*>(pp + 32)));
  v = _mm256_mul_ps(v, _mm256_castsi256_ps(ws));
  acc = _mm_add_ps(acc, _mm256_castps256_ps128(v));
  return _mm_add_ps(acc, _mm256_extractf128_ps(v, 1));
}

}  // namespace fp4avx2
}  // namespace dsv4
