// The e4m3 -> float64 placement the FP8 GEMVs share (kernels_avx2.cc's fp8_gemm, bf16_avx2.cc's
// wo_a): one add and one and give each code's top 16 bits (sign<<15 | (code & 0x7f)<<1), two byte
// unpacks and eight vpshufb with these controls spread 32 codes over 8 x 4 float64 lanes, whose
// value is then exactly the code's value * 2^-1016 (native/README.md). Position 4i + e of a
// 32-code step holds element (i < 4 ? 0 : 8) + 2 (i & 3) + (e & 1) + 16 (e >> 1).
// gemvStep / gemvStep2 and gemvBlockSums: the GEMVs' steps (2 accumulators per weight and activation
// row: 4 weight rows for one activation row, 2 for two) and the reduction of 4 pairs into one vector.
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

/** s0, s1 += 32 weights at wp times 32 prepared activations at xc (the spread order): two FMA chains.
 *  The placement above as one asm block with 3 scratch registers: 8 accumulators and the 5 constants
 *  then fit in the 16 ymm registers (GCC's own schedule of the intrinsics spilled an accumulator). */
inline void gemvStep(const __m256i sign, const __m256i c0, const __m256i c1, const __m256i c2, const __m256i c3,
                     const uint8_t* wp, const double* xc, __m256d& s0, __m256d& s1) {
  __m256i b, lo, t;
  asm("vmovdqu (%[w]), %[b]\n\t"
      "vpaddb %[b], %[b], %[lo]\n\t"          // magnitude << 1
      "vpand %[sign], %[b], %[b]\n\t"         // sign
      "vpunpckhbw %[b], %[lo], %[t]\n\t"      // t = codes 8-15, 24-31 as 16-bit tops
      "vpunpcklbw %[b], %[lo], %[lo]\n\t"     // lo = codes 0-7, 16-23
      "vpshufb %[c0], %[lo], %[b]\n\t"
      "vfmadd231pd (%[x]), %[b], %[s0]\n\t"
      "vpshufb %[c1], %[lo], %[b]\n\t"
      "vfmadd231pd 32(%[x]), %[b], %[s1]\n\t"
      "vpshufb %[c2], %[lo], %[b]\n\t"
      "vfmadd231pd 64(%[x]), %[b], %[s0]\n\t"
      "vpshufb %[c3], %[lo], %[lo]\n\t"
      "vfmadd231pd 96(%[x]), %[lo], %[s1]\n\t"
      "vpshufb %[c0], %[t], %[b]\n\t"
      "vfmadd231pd 128(%[x]), %[b], %[s0]\n\t"
      "vpshufb %[c1], %[t], %[b]\n\t"
      "vfmadd231pd 160(%[x]), %[b], %[s1]\n\t"
      "vpshufb %[c2], %[t], %[b]\n\t"
      "vfmadd231pd 192(%[x]), %[b], %[s0]\n\t"
      "vpshufb %[c3], %[t], %[t]\n\t"
      "vfmadd231pd 224(%[x]), %[t], %[s1]"
      : [s0] "+x"(s0), [s1] "+x"(s1), [b] "=&x"(b), [lo] "=&x"(lo), [t] "=&x"(t)
      : [w] "r"(wp), [x] "r"(xc), [sign] "x"(sign), [c0] "x"(c0), [c1] "x"(c1), [c2] "x"(c2), [c3] "x"(c3),
        "m"(*reinterpret_cast<const uint8_t(*)[32]>(wp)), "m"(*reinterpret_cast<const double(*)[32]>(xc)));
}

/** a0, a1 += 32 weights at wp times 32 prepared activations at x0, b0, b1 the same times x1: two
 *  activation rows share each converted step, two FMA chains each. */
inline void gemvStep2(const __m256i sign, const __m256i c0, const __m256i c1, const __m256i c2, const __m256i c3,
                      const uint8_t* wp, const double* x0, const double* x1, __m256d& a0, __m256d& a1, __m256d& b0,
                      __m256d& b1) {
  __m256i q, lo, t;
  asm("vmovdqu (%[w]), %[q]\n\t"
      "vpaddb %[q], %[q], %[lo]\n\t"
      "vpand %[sign], %[q], %[q]\n\t"
      "vpunpckhbw %[q], %[lo], %[t]\n\t"
      "vpunpcklbw %[q], %[lo], %[lo]\n\t"
      "vpshufb %[c0], %[lo], %[q]\n\t"
      "vfmadd231pd (%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd (%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[c1], %[lo], %[q]\n\t"
      "vfmadd231pd 32(%[x0]), %[q], %[a1]\n\t"
      "vfmadd231pd 32(%[x1]), %[q], %[b1]\n\t"
      "vpshufb %[c2], %[lo], %[q]\n\t"
      "vfmadd231pd 64(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 64(%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[c3], %[lo], %[lo]\n\t"
      "vfmadd231pd 96(%[x0]), %[lo], %[a1]\n\t"
      "vfmadd231pd 96(%[x1]), %[lo], %[b1]\n\t"
      "vpshufb %[c0], %[t], %[q]\n\t"
      "vfmadd231pd 128(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 128(%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[c1], %[t], %[q]\n\t"
      "vfmadd231pd 160(%[x0]), %[q], %[a1]\n\t"
      "vfmadd231pd 160(%[x1]), %[q], %[b1]\n\t"
      "vpshufb %[c2], %[t], %[q]\n\t"
      "vfmadd231pd 192(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 192(%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[c3], %[t], %[t]\n\t"
      "vfmadd231pd 224(%[x0]), %[t], %[a1]\n\t"
      "vfmadd231pd 224(%[x1]), %[t], %[b1]"
      : [a0] "+x"(a0), [a1] "+x"(a1), [b0] "+x"(b0), [b1] "+x"(b1), [q] "=&x"(q), [lo] "=&x"(lo), [t] "=&x"(t)
      : [w] "r"(wp), [x0] "r"(x0), [x1] "r"(x1), [sign] "x"(sign), [c0] "x"(c0), [c1] "x"(c1), [c2] "x"(c2), [c3] "x"(c3),
        "m"(*reinterpret_cast<const uint8_t(*)[32]>(wp)), "m"(*reinterpret_cast<const double(*)[32]>(x0)),
        "m"(*reinterpret_cast<const double(*)[32]>(x1)));
}

/** [sum of a's lanes, b's, c's, d's]. */
inline __m256d laneSums4(__m256d a, __m256d b, __m256d c, __m256d d) {
  const __m256d hab = _mm256_hadd_pd(a, b), hcd = _mm256_hadd_pd(c, d);  // a01 b01 a23 b23, c.. d..
  return _mm256_add_pd(_mm256_permute2f128_pd(hab, hcd, 0x21), _mm256_blend_pd(hab, hcd, 0xc));
}

/** The block sums of 4 accumulator pairs as one vector (lane i: s[2i] + s[2i + 1] summed over lanes). */
inline __m256d gemvBlockSums(const __m256d s[8]) {
  return laneSums4(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3]), _mm256_add_pd(s[4], s[5]), _mm256_add_pd(s[6], s[7]));
}

}  // namespace avx2
}  // namespace dsv4
