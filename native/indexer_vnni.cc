// AVX-512 VNNI form of the compact-FP4 indexer's block dots (indexer_dots.h): vpdpbusd adds each chunk's
// 4 products per entry straight into int32, one instruction where AVX2 needs vpmaddubsw and an add (and a
// vpmaddwd per block). indexer_avx2.cc calls it when cpuVnni(); the same integers, so the same scores.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")
#include <immintrin.h>

#include "indexer_dots.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

struct VnniStep {
  static inline __m256i add(__m256i acc, __m256i kc, __m256i q) { return _mm256_dpbusd_epi32(acc, kc, q); }
  static inline __m256i dots(__m256i acc) { return acc; }
};

}  // namespace

void indexerHeadDotsVnni(int P, const IndexerFp4Args& a, const uint8_t* K, int h, int nb, const double* kud, double (*out)[8]) {
  switch (P) {
    case 1: return indexerHeadDots<1, VnniStep>(a, K, h, nb, kud, out);
    case 2: return indexerHeadDots<2, VnniStep>(a, K, h, nb, kud, out);
    case 3: return indexerHeadDots<3, VnniStep>(a, K, h, nb, kud, out);
    default: return indexerHeadDots<4, VnniStep>(a, K, h, nb, kud, out);
  }
}

}  // namespace avx2
}  // namespace dsv4
#endif
