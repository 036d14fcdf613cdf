// The e4m3 -> float64 placement the FP8 GEMVs share (kernels_avx2.cc's fp8_gemm, bf16_avx2.cc's
// wo_a): one add and one and give each code's top 16 bits (sign<<15 | (code & 0x7f)<<1), two byte
// unpacks and eight vpshufb with these controls spread 32 codes over 8 x 4 float64 lanes, whose
// value is then exactly the code's value * 2^-1016 (native/README.md). Position 4i + e of a
// 32-code step holds element (i < 4 ? 0 : 8) + 2 (i & 3) + (e & 1) + 16 (e >> 1).
// Include after `#pragma GCC target("avx2,fma")` and <immintrin.h>.
#pragma once
#include <cstdint>

namespace dsv4 {
namespace avx2 {

struct Fp8Spread {
  __m256i sign = _mm256_set1_epi8(char(0x80));
  __m256i ctl[4];
  Fp8Spread() {
    for (int g = 0; g < 4; g++) {
      alignas(32) int8_t c[32];
      for (int l = 0; l < 2; l++) {
        for (int i = 0; i < 16; i++) c[l * 16 + i] = -128;
        c[l * 16 + 6] = int8_t(4 * g);
        c[l * 16 + 7] = int8_t(4 * g + 1);
        c[l * 16 + 14] = int8_t(4 * g + 2);
        c[l * 16 + 15] = int8_t(4 * g + 3);
      }
      ctl[g] = _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
    }
  }
};

}  // namespace avx2
}  // namespace dsv4
