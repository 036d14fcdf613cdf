// AVX2 kernel of the int8 FP4 products (fp4q8.h, fast-products.ts 4). Per 64 weights (one piece, two
// 32-element blocks): the u8 (k + 12) of the low and the high nibbles by a table (as fp4_avx2.cc), one
// vpmaddubsw each against the q bytes of the even and the odd elements (full byte lanes: q is a signed
// byte, |pair| <= 2 * 24 * 127), the two int16 vectors added, one vpmaddwd by ones: int32 lanes 0-3
// hold block 2p, 4-7 block 2p+1. The prepared 12 * sum(q) removes the offset; 4 weight rows' piece sums
// are reduced together (one unpack tree) so the fp32 block updates run 4 outputs per vector in k order.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fp4_avx2.h"
#include "fp4q8.h"

namespace dsv4 {
namespace fp4q8 {
namespace avx2 {

namespace {

constexpr int kPfDist = 2048;  // bytes ahead in the weight stream (as the exact FP4 GEMV)

struct Cvt {
  __m256i lut, low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  Cvt() {
    const int8_t t[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};  // e2m1 -> 2 * value + 12
    lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
  }
};

/** int32 sums of (k + 12) q over one piece (lanes 0-3 block 2p, 4-7 block 2p+1). */
inline __m256i piece(const Cvt& k, __m256i wl, __m256i wh, const uint8_t* xp) {
  const __m256i e = _mm256_maddubs_epi16(wl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp)));
  const __m256i o = _mm256_maddubs_epi16(wh, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32)));
  return _mm256_madd_epi16(_mm256_add_epi16(e, o), k.ones);
}

/**
 * Pieces [s0, s1) (chunk-aligned) of one 4-row weight group (rows wr, scales sr) against R activation
 * rows x[r]: the piece sums wait in buf (<= 16 KiB), then the block updates of each output in k order.
 */
template <int R>
void segment(const Cvt& k, const uint8_t* const* wr, const uint8_t* const* sr, const uint8_t* const* x, int npc, int s0, int s1, __m128* accs, __m256i* buf) {
  const int S = s1 - s0;
  for (int q = 0; q < 4; q++) {
    for (int p = s0; p < s1; p += 2) {
      _mm_prefetch(reinterpret_cast<const char*>(wr[q] + p * 32 + kPfDist), _MM_HINT_T0);
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++) {
        const __m256i bw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[q] + (p + h) * 32));
        const __m256i wl = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(bw, k.low));
        const __m256i wh = _mm256_shuffle_epi8(k.lut, _mm256_and_si256(_mm256_srli_epi16(bw, 4), k.low));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
          const uint8_t* xp = x[r] + size_t(p + h) * 64;
          __asm__("" : "+r"(xp));  // load the activations where they are used (no hoisting and spilling)
          _mm256_store_si256(buf + (r * S + p + h - s0) * 4 + q, piece(k, wl, wh, xp));
        }
      }
    }
  }
  __m128 acc[R];
  for (int r = 0; r < R; r++) acc[r] = accs[r];
  for (int p = s0; p < s1; p += 4) {
    const int pcs = std::min(4, s1 - p);
    __m128i slo, shi;
    fp4avx2::scalesT(sr, p >> 2, pcs < 4, slo, shi);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* pairs = x[r] + size_t(npc) * 64 + size_t(p) * 64;
      const __m256i* bp = buf + (r * S + p - s0) * 4;
      if (pcs == 4) {
#pragma GCC unroll 4
        for (int pc = 0; pc < 4; pc++) acc[r] = fp4avx2::pair4(acc[r], bp[4 * pc], bp[4 * pc + 1], bp[4 * pc + 2], bp[4 * pc + 3], slo, shi, pc, pairs + pc * 64);
      } else {
        for (int pc = 0; pc < pcs; pc++) acc[r] = fp4avx2::pair4(acc[r], bp[4 * pc], bp[4 * pc + 1], bp[4 * pc + 2], bp[4 * pc + 3], slo, shi, pc, pairs + pc * 64);
      }
    }
  }
  for (int r = 0; r < R; r++) accs[r] = acc[r];
}

}  // namespace

void rows(const Job& j, int a, int b) {
  static const Cvt k;
  const int K = j.K, R = j.R, npc = K / 64, nsb = K / 32;
  const size_t rb = size_t(K / 2), xrb = rowBytes(K);
  // activation rows in groups of up to 4 (their piece sums in registers' reach); pieces per segment (a
  // multiple of a chunk's 4): one group's sums for 4 weight rows wait in buf (<= 16 KiB, L1), so one
  // activation row reads a 4-row group of up to K = 8192 as one stream; later groups re-read the
  // segment's weights from L1/L2
  const int G = std::min(R, 4), S = std::max(4, (128 / G) & ~3);
  alignas(64) __m256i buf[512];
  const uint8_t* x[kMaxRows];
  for (int r = 0; r < R; r++) x[r] = j.x + size_t(r) * xrb;
  for (int n = a; n < b; n += 4) {
    const int cnt = std::min(4, b - n);
    if (!fp4avx2::scalesPlain(j.ws + size_t(j.r0 + n) * nsb, size_t(cnt) * nsb)) {
      scalar::rows(j, n, n + cnt);
      continue;
    }
    const uint8_t* wr[4];
    const uint8_t* sr[4];
    for (int q = 0; q < 4; q++) {
      const size_t r = size_t(j.r0 + n + std::min(q, cnt - 1));
      wr[q] = j.w + r * rb;
      sr[q] = j.ws + r * nsb;
    }
    __m128 acc[kMaxRows];
    for (int r = 0; r < R; r++) acc[r] = _mm_setzero_ps();
    for (int s0 = 0; s0 < npc; s0 += S) {
      const int s1 = std::min(npc, s0 + S);
      for (int g = 0; g < R; g += 4) {
        switch (std::min(4, R - g)) {
          case 1: segment<1>(k, wr, sr, x + g, npc, s0, s1, acc + g, buf); break;
          case 2: segment<2>(k, wr, sr, x + g, npc, s0, s1, acc + g, buf); break;
          case 3: segment<3>(k, wr, sr, x + g, npc, s0, s1, acc + g, buf); break;
          default: segment<4>(k, wr, sr, x + g, npc, s0, s1, acc + g, buf); break;
        }
      }
    }
    for (int r = 0; r < R; r++) {
      alignas(16) float t[4];
      _mm_store_ps(t, acc[r]);
      const bool nan = x[r][size_t(npc) * 128] != 0;
      for (int q = 0; q < cnt; q++) j.y[size_t(r) * j.n + n + q] = nan ? NAN : t[q];
    }
  }
}

}  // namespace avx2
}  // namespace fp4q8
}  // namespace dsv4
#endif
