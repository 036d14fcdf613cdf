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

void prepare(const uint8_t* q, const float* xs, int K, uint8_t* out) {
  const int npc = K / 64;
  const __m256i c7f = _mm256_set1_epi8(0x7f);
  __m256i nanv = _mm256_setzero_si256();
  for (int k = 0; k < K; k += 32) {
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k));
    nanv = _mm256_or_si256(nanv, _mm256_cmpeq_epi8(_mm256_and_si256(c, c7f), c7f));
  }
  const bool nan = !_mm256_testz_si256(nanv, nanv);
  std::memset(out + size_t(npc) * 128, 0, 64);
  out[size_t(npc) * 128] = nan;
  const __m256i m7f = _mm256_set1_epi32(0x7f), m80 = _mm256_set1_epi32(0x80), seven = _mm256_set1_epi32(7), eight = _mm256_set1_epi32(8);
  const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
  // bytes of 16 elements (one 128-bit lane) -> the 8 even ones, then the 8 odd ones
  const __m256i evenOdd = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int b = 0; b < K / 32; b++) {
    const int p = b >> 1, h = b & 1;
    __m256i mag[4], neg[4], mx = zero;
    for (int g = 0; g < 4; g++) {  // value * 2^9 = (8 + m) << (e - 1), or m for e = 0
      const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + b * 32 + 8 * g)));
      const __m256i c7 = _mm256_and_si256(c, m7f), e = _mm256_srli_epi32(c7, 3);
      const __m256i mant = _mm256_or_si256(_mm256_and_si256(c7, seven), _mm256_andnot_si256(_mm256_cmpeq_epi32(e, zero), eight));
      mag[g] = _mm256_sllv_epi32(mant, _mm256_max_epi32(_mm256_sub_epi32(e, one), zero));
      neg[g] = _mm256_cmpeq_epi32(_mm256_and_si256(c, m80), m80);
      mx = _mm256_max_epi32(mx, mag[g]);
    }
    __m128i m4 = _mm_max_epi32(_mm256_castsi256_si128(mx), _mm256_extracti128_si256(mx, 1));
    m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0x4e));
    m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0xb1));
    const int32_t M = _mm_cvtsi128_si32(m4);
    // as the portable prepare: floor((254 |X| + M) / (2 M)) = int(N * fl64(1 / 2M) + 2^-30)
    const __m256d inv = _mm256_set1_pd(M == 0 || nan ? 0.0 : 1.0 / (2.0 * M)), eps = _mm256_set1_pd(0x1p-30);
    const __m256i Mv = _mm256_set1_epi32(M);
    __m256i qv[4], sum = zero;
    for (int g = 0; g < 4; g++) {
      const __m256i N = _mm256_add_epi32(_mm256_sub_epi32(_mm256_slli_epi32(mag[g], 8), _mm256_slli_epi32(mag[g], 1)), Mv);
      const __m128i lo = _mm256_cvttpd_epi32(_mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(N)), inv), eps));
      const __m128i hi = _mm256_cvttpd_epi32(_mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(N, 1)), inv), eps));
      const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
      qv[g] = _mm256_blendv_epi8(a, _mm256_sub_epi32(zero, a), neg[g]);
      sum = _mm256_add_epi32(sum, qv[g]);
    }
    // int32 x 32 -> int8 in element order (packs interleave the 128-bit lanes: permute back), then even/odd
    const __m256i w0 = _mm256_permute4x64_epi64(_mm256_packs_epi32(qv[0], qv[1]), 0xd8);
    const __m256i w1 = _mm256_permute4x64_epi64(_mm256_packs_epi32(qv[2], qv[3]), 0xd8);
    const __m256i by = _mm256_permute4x64_epi64(_mm256_packs_epi16(w0, w1), 0xd8);
    const __m256i eo = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(by, evenOdd), 0xd8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + size_t(p) * 64 + 16 * h), _mm256_castsi256_si128(eo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + size_t(p) * 64 + 32 + 16 * h), _mm256_extracti128_si256(eo, 1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    const int32_t corr = 12 * _mm_cvtsi128_si32(s4);
    const float A = float(double(M) * double(xs[b >> 2]) * 0x1p-10 / 127.0);  // as the portable prepare
    uint8_t* pp = out + size_t(npc) * 64 + size_t(p) * 64;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(pp + 16 * h), _mm_set1_epi32(corr));
    _mm_storeu_ps(reinterpret_cast<float*>(pp + 32 + 16 * h), _mm_set1_ps(A));
  }
}

}  // namespace avx2
}  // namespace fp4q8
}  // namespace dsv4
#endif
