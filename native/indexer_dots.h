// The block dots of the compact-FP4 indexer (indexer_avx2.cc): P (1-4) heads against one group of 8
// interleaved keys, each key chunk (4 codes of 8 entries, one 32-byte load) loaded once for the P heads.
// The int32 chunk products come from a Step: AVX2 vpmaddubsw pairs summed in int16 over a block's 8
// chunks, then one vpmaddwd (indexer_avx2.cc), or AVX-512 VNNI vpdpbusd straight into int32
// (indexer_vnni.cc, one instruction per chunk instead of two). Same integers either way (no
// saturation: int16 pair sums stay <= 4608). Include after the file's target pragma and <immintrin.h>.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace dsv4 {
namespace avx2 {

/** Block dots of P (1-4) consecutive heads from h against one group of 8 compact keys K (nb blocks, key units
 *  kud [block][lane]), summed over the blocks in float64: out[p][lane]. Each key chunk is loaded once for
 *  the P heads. The block terms are exact (power-of-two units) and so is their sum (indexerFp4KeyOk), so
 *  one FMA per block, dot + block * (qu * ku), gives the value of the separate steps. */
template <int P, class Step>
inline void indexerHeadDots(const IndexerFp4Args& a, const uint8_t* K, int h, int nb, const double* kud, double (*out)[8]) {
  const int d = a.d;
  __m256d dot[P][2];
  for (int p = 0; p < P; p++) dot[p][0] = dot[p][1] = _mm256_setzero_pd();
  for (int b = 0; b < nb; b++) {
    const uint8_t* kb = K + b * 256;
    const int8_t* qb[P];
    for (int p = 0; p < P; p++) qb[p] = a.qc + size_t(h + p) * d + b * 32;
    __m256i acc[P];
    for (int p = 0; p < P; p++) acc[p] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
      const __m256i kc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb + c * 32));
      for (int p = 0; p < P; p++) {
        int32_t qv;
        std::memcpy(&qv, qb[p] + c * 4, 4);
        acc[p] = Step::add(acc[p], kc, _mm256_set1_epi32(qv));
      }
    }
    const __m256d k0 = _mm256_load_pd(kud + b * 8), k1 = _mm256_load_pd(kud + b * 8 + 4);
    for (int p = 0; p < P; p++) {
      const size_t hb = size_t(h + p) * nb + b;
      const __m256i dots = _mm256_sub_epi32(Step::dots(acc[p]), _mm256_set1_epi32(a.qcorr[hb]));
      const __m256d qu = _mm256_set1_pd(a.qu[hb]);
      dot[p][0] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(dots)), _mm256_mul_pd(qu, k0), dot[p][0]);
      dot[p][1] = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(dots, 1)), _mm256_mul_pd(qu, k1), dot[p][1]);
    }
  }
  for (int p = 0; p < P; p++) {
    _mm256_store_pd(out[p], dot[p][0]);
    _mm256_store_pd(out[p] + 4, dot[p][1]);
  }
}

}  // namespace avx2
}  // namespace dsv4
