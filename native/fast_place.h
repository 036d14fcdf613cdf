// e4m3 codes as fp32 by bit placement (AVX2), shared by the few-row fast kernels (fastgemv_avx2.cc,
// fastchain_avx2.cc): each code of a dword becomes the fp32 of exactly value * 2^-120 (subnormal codes
// become fp32 subnormals, which FMA takes at full speed here). Include only from files compiled for AVX2.
#pragma once
#include <immintrin.h>

namespace dsv4 {
namespace fastgemv {

/** Dword i of t holds codes 4i..4i+3; v[a] lane i = code 4i + a as fp32 value * 2^-120 (9 ops). */
inline void placeFp8(__m256i t, __m256 v[4]) {
  const __m256i mask = _mm256_set1_epi32(int(0x87f00000u));
  // the top byte of each 16-bit half (vpsllw 8 for the even bytes), vpsraw 4 smears the sign over bits
  // 15-11 and puts eeee.mmm at bits 10-4; the low half moved up by vpslld 16; the and keeps sign|eeeemmm
  const __m256i hi = _mm256_srai_epi16(t, 4), lo = _mm256_srai_epi16(_mm256_slli_epi16(t, 8), 4);
  v[0] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(lo, 16), mask));
  v[1] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(hi, 16), mask));
  v[2] = _mm256_castsi256_ps(_mm256_and_si256(lo, mask));
  v[3] = _mm256_castsi256_ps(_mm256_and_si256(hi, mask));
}

}  // namespace fastgemv
}  // namespace dsv4
