// formats.ts roundBf16 on 8 fp32 lanes (AVX2), shared by the AVX2 translation units that round
// vectors to BF16; include it after `#pragma GCC target("avx2,...")`.
#pragma once
#include <immintrin.h>

namespace dsv4 {

/** RNE to the top 16 bits of each lane; inf/NaN kept as they are. */
inline __m256 bf16Round8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v), expMask = _mm256_set1_epi32(0x7f800000);
  const __m256i r = _mm256_and_si256(
      _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))),
      _mm256_set1_epi32(int(0xffff0000u)));
  const __m256i special = _mm256_cmpeq_epi32(_mm256_and_si256(u, expMask), expMask);
  return _mm256_castsi256_ps(_mm256_blendv_epi8(r, u, special));
}

}  // namespace dsv4
