// The e4m3 -> float64 placement the FP8 GEMVs share (kernels_avx2.cc's fp8_gemm, bf16_avx2.cc's
// wo_a): one add and one and give each code's top 16 bits (sign<<15 | (code & 0x7f)<<1), two byte
// unpacks give them as two vectors of 16-bit words (codes 0-7 and 16-23, then 8-15 and 24-31, per
// 128-bit lane), and each of the 8 float64 vectors takes word g and g + 4 of a lane to the top of its
// two quadwords: word 0 by a 48-bit shift, word 3 by a mask, words 1 and 2 by vpshufb. Its value is
// then exactly the code's value * 2^-1016 (native/README.md). Zen 4 runs vpshufb on two pipes, one of
// them an FMA pipe; shifts and masks go elsewhere, so this mix (4 of 8 vectors by vpshufb) measured
// ~1.1x the all-vpshufb one in L1. Position 4i + e of a 32-code step holds element
// (i < 4 ? 0 : 8) + (i & 3) + 4 (e & 1) + 16 (e >> 1) (the "spread order").
// ctl: the all-vpshufb controls (words 2g, 2g + 1 of each lane), kept for the GEMM's 4-row conversion
// (kernels_avx2.cc cvt4x128), which relies on their order.
// gemvStep / gemvStep2 and gemvBlockSums: the GEMVs' steps (2 accumulators per weight and activation
// row: 4 weight rows for one activation row, 2 for two) and the reduction of 4 pairs into one vector.
// Include after `#pragma GCC target("avx2,fma")` and <immintrin.h>.
#pragma once
#include <cstdint>

namespace dsv4 {
namespace avx2 {

struct Fp8Spread {
  __m256i sign = _mm256_set1_epi8(char(0x80));
  __m256i hi16 = _mm256_set1_epi64x(int64_t(0xffff000000000000ull));
  __m256i mid[2];  // words 1, 5 and 2, 6 of each lane
  __m256i ctl[4];
  Fp8Spread() {
    for (int g = 1; g <= 2; g++) mid[g - 1] = tops(g, g + 4);
    for (int g = 0; g < 4; g++) ctl[g] = tops(2 * g, 2 * g + 1);
  }
  /** vpshufb control: per 128-bit lane, word a to the top of quadword 0 and word b to the top of quadword 1, zeros elsewhere. */
  static __m256i tops(int a, int b) {
    alignas(32) int8_t c[32];
    for (int l = 0; l < 2; l++) {
      for (int i = 0; i < 16; i++) c[l * 16 + i] = -128;
      c[l * 16 + 6] = int8_t(2 * a);
      c[l * 16 + 7] = int8_t(2 * a + 1);
      c[l * 16 + 14] = int8_t(2 * b);
      c[l * 16 + 15] = int8_t(2 * b + 1);
    }
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
  }
};

/** Vector g (0-3) of the spread placement of one word vector w (above). */
template <int G>
inline __m256i spreadWords(const Fp8Spread& s, __m256i w) {
  if constexpr (G == 0) return _mm256_slli_epi64(w, 48);
  else if constexpr (G == 3) return _mm256_and_si256(w, s.hi16);
  else return _mm256_shuffle_epi8(w, s.mid[G - 1]);
}

/** s0, s1 += 32 weights at wp times 32 prepared activations at xc (the spread order): two FMA chains.
 *  The placement above as one asm block with 3 scratch registers: 8 accumulators and the 4 constants
 *  then fit in the 16 ymm registers (GCC's own schedule of the intrinsics spilled an accumulator). */
inline void gemvStep(const __m256i sign, const __m256i m1, const __m256i m2, const __m256i hi16,
                     const uint8_t* wp, const double* xc, __m256d& s0, __m256d& s1) {
  __m256i b, lo, t;
  asm("vmovdqu (%[w]), %[b]\n\t"
      "vpaddb %[b], %[b], %[lo]\n\t"          // magnitude << 1
      "vpand %[sign], %[b], %[b]\n\t"         // sign
      "vpunpckhbw %[b], %[lo], %[t]\n\t"      // t = codes 8-15, 24-31 as 16-bit tops
      "vpunpcklbw %[b], %[lo], %[lo]\n\t"     // lo = codes 0-7, 16-23
      "vpsllq $48, %[lo], %[b]\n\t"
      "vfmadd231pd (%[x]), %[b], %[s0]\n\t"
      "vpshufb %[m1], %[lo], %[b]\n\t"
      "vfmadd231pd 32(%[x]), %[b], %[s1]\n\t"
      "vpshufb %[m2], %[lo], %[b]\n\t"
      "vfmadd231pd 64(%[x]), %[b], %[s0]\n\t"
      "vpand %[hi16], %[lo], %[lo]\n\t"
      "vfmadd231pd 96(%[x]), %[lo], %[s1]\n\t"
      "vpsllq $48, %[t], %[b]\n\t"
      "vfmadd231pd 128(%[x]), %[b], %[s0]\n\t"
      "vpshufb %[m1], %[t], %[b]\n\t"
      "vfmadd231pd 160(%[x]), %[b], %[s1]\n\t"
      "vpshufb %[m2], %[t], %[b]\n\t"
      "vfmadd231pd 192(%[x]), %[b], %[s0]\n\t"
      "vpand %[hi16], %[t], %[t]\n\t"
      "vfmadd231pd 224(%[x]), %[t], %[s1]"
      : [s0] "+x"(s0), [s1] "+x"(s1), [b] "=&x"(b), [lo] "=&x"(lo), [t] "=&x"(t)
      : [w] "r"(wp), [x] "r"(xc), [sign] "x"(sign), [m1] "x"(m1), [m2] "x"(m2), [hi16] "x"(hi16),
        "m"(*reinterpret_cast<const uint8_t(*)[32]>(wp)), "m"(*reinterpret_cast<const double(*)[32]>(xc)));
}

/** a0, a1 += 32 weights at wp times 32 prepared activations at x0, b0, b1 the same times x1: two
 *  activation rows share each converted step, two FMA chains each. */
inline void gemvStep2(const __m256i sign, const __m256i m1, const __m256i m2, const __m256i hi16, const uint8_t* wp, const double* x0, const double* x1, __m256d& a0, __m256d& a1, __m256d& b0,
                      __m256d& b1) {
  __m256i q, lo, t;
  asm("vmovdqu (%[w]), %[q]\n\t"
      "vpaddb %[q], %[q], %[lo]\n\t"
      "vpand %[sign], %[q], %[q]\n\t"
      "vpunpckhbw %[q], %[lo], %[t]\n\t"
      "vpunpcklbw %[q], %[lo], %[lo]\n\t"
      "vpsllq $48, %[lo], %[q]\n\t"
      "vfmadd231pd (%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd (%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[m1], %[lo], %[q]\n\t"
      "vfmadd231pd 32(%[x0]), %[q], %[a1]\n\t"
      "vfmadd231pd 32(%[x1]), %[q], %[b1]\n\t"
      "vpshufb %[m2], %[lo], %[q]\n\t"
      "vfmadd231pd 64(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 64(%[x1]), %[q], %[b0]\n\t"
      "vpand %[hi16], %[lo], %[lo]\n\t"
      "vfmadd231pd 96(%[x0]), %[lo], %[a1]\n\t"
      "vfmadd231pd 96(%[x1]), %[lo], %[b1]\n\t"
      "vpsllq $48, %[t], %[q]\n\t"
      "vfmadd231pd 128(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 128(%[x1]), %[q], %[b0]\n\t"
      "vpshufb %[m1], %[t], %[q]\n\t"
      "vfmadd231pd 160(%[x0]), %[q], %[a1]\n\t"
      "vfmadd231pd 160(%[x1]), %[q], %[b1]\n\t"
      "vpshufb %[m2], %[t], %[q]\n\t"
      "vfmadd231pd 192(%[x0]), %[q], %[a0]\n\t"
      "vfmadd231pd 192(%[x1]), %[q], %[b0]\n\t"
      "vpand %[hi16], %[t], %[t]\n\t"
      "vfmadd231pd 224(%[x0]), %[t], %[a1]\n\t"
      "vfmadd231pd 224(%[x1]), %[t], %[b1]"
      : [a0] "+x"(a0), [a1] "+x"(a1), [b0] "+x"(b0), [b1] "+x"(b1), [q] "=&x"(q), [lo] "=&x"(lo), [t] "=&x"(t)
      : [w] "r"(wp), [x0] "r"(x0), [x1] "r"(x1), [sign] "x"(sign), [m1] "x"(m1), [m2] "x"(m2), [hi16] "x"(hi16),
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
