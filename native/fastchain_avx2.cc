// AVX2 + FMA chain-semantics fast products (fastgemv.h kChainRows; fast-products.ts 3): 1-2
// activation rows, the SIMD lanes along k. A 32-k step of one weight row becomes 4 fp32 vectors
// with no shuffles: e4m3 codes (one 32-byte load) by the placement of fast_place.h
// (vector a lane i = code 4i + a, as fp32 value * 2^-120; 9 ops per 32 codes), BF16 words (two
// 32-byte loads) by a shift (even words) or an and (odd words). Each vector is FMA'd into its own
// accumulator per activation row (4 per row: 32 chains), the activations permuted once per call
// into the same lane order (permute) and, for FP8 kinds, scaled per 128-row weight block by
// 2^(b-7) as the row-lane kernel does (exact, checked; else that block runs the portable path).
// K % 32 (BF16 only) ends with a masked step. Outputs: the fixed tree of the semantics.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "fast.h"
#include "fast_place.h"
#include "fastgemv.h"

namespace dsv4 {
namespace fastgemv {
namespace chain {
namespace avx2 {

namespace {

/** e4m3 codes: 32 per step; accumulator a, lane i holds chain 4i + a. */
struct Fp8 {
  static constexpr size_t kStepBytes = 32;
  static constexpr size_t kAhead = 8192;  // software prefetch distance (into L2), below
  static constexpr int chain(int a, int i) { return 4 * i + a; }
  static inline void convert(const uint8_t* p, __m256 v[4]) { placeFp8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), v); }
};

/** BF16 words: 32 per step (two loads); accumulator a, lane i holds chain 16 (a / 2) + 2i + a % 2. */
struct Bf16 {
  static constexpr size_t kStepBytes = 64;
  static constexpr size_t kAhead = 0;  // no software prefetch, below
  static constexpr int chain(int a, int i) { return 16 * (a >> 1) + 2 * i + (a & 1); }
  static inline void convert(const uint8_t* p, __m256 v[4]) {
    const __m256i mask = _mm256_set1_epi32(int(0xffff0000u));
    const __m256i t0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i t1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    v[0] = _mm256_castsi256_ps(_mm256_slli_epi32(t0, 16));
    v[1] = _mm256_castsi256_ps(_mm256_and_si256(t0, mask));
    v[2] = _mm256_castsi256_ps(_mm256_slli_epi32(t1, 16));
    v[3] = _mm256_castsi256_ps(_mm256_and_si256(t1, mask));
  }
};

// Software prefetch distance. FP8, from memory, 2 threads, bench-2g shapes: 16 KiB ran 1.1-1.3x 2 KiB
// (4-8 KiB in between); 24-32 KiB no better. Into L2 (T1) 8 KiB ahead, 2048x8192 on 64-byte aligned
// weights (the arena's), alternating: 21.1-21.5 -> 23.2-23.5 GB/s (T1 16 KiB 21.0-22.8; none 15.7). BF16
// (the head, 4 KiB rows): no software prefetch ran 1.09-1.17x 16 KiB (same process, alternating); a
// whole fast bench-2g decode token 1.06x (median of 200).

/** The fixed tree: v = (a0 + a1) + (a2 + a3), then ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)). */
inline float tree(const __m256 acc[4]) {
  const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // v_j + v_(j+4)
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));                                // (0+4)+(2+6), (1+5)+(3+7)
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/**
 * One weight row w times MT activation rows (xs floats apart, permuted) of K elements: y[m * n].
 * (2 weight rows per pass, sharing the activation loads, were no faster from memory.)
 */
template <class C, int MT>
void pass(const uint8_t* w, int K, const float* x, size_t xs, float* y, size_t n) {
  __m256 acc[MT][4];
  for (int m = 0; m < MT; m++)
    for (int a = 0; a < 4; a++) acc[m][a] = _mm256_setzero_ps();
  constexpr int kPerLine = int(64 / C::kStepBytes);  // FP8 K % 128 == 0 and BF16 steps are lines: whole lines
  const int steps = K / 32, lines = steps / kPerLine;
  int s = 0;
  for (int l = 0; l < lines; l++) {
    if constexpr (C::kAhead != 0) _mm_prefetch(reinterpret_cast<const char*>(w + size_t(l) * 64 + C::kAhead), _MM_HINT_T1);
#pragma GCC unroll 2
    for (int q = 0; q < kPerLine; q++, s++) {
      __m256 v[4];
      C::convert(w + size_t(s) * C::kStepBytes, v);
#pragma GCC unroll 2
      for (int m = 0; m < MT; m++) {
        const float* xm = x + size_t(m) * xs + size_t(s) * 32;
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) acc[m][a] = _mm256_fmadd_ps(v[a], _mm256_loadu_ps(xm + 8 * a), acc[m][a]);
      }
    }
  }
  if (const int rem = K - 32 * steps) {  // a last partial step (zero-padded copy): its lanes beyond K keep their sums
    alignas(32) uint8_t buf[64] = {};
    std::memcpy(buf, w + size_t(steps) * C::kStepBytes, size_t(rem) * (C::kStepBytes / 32));
    __m256 v[4];
    C::convert(buf, v);
    for (int a = 0; a < 4; a++) {
      alignas(32) int32_t lane[8];
      for (int i = 0; i < 8; i++) lane[i] = C::chain(a, i) < rem ? -1 : 0;
      const __m256 keep = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(lane)));
      for (int m = 0; m < MT; m++) {
        const __m256 t = _mm256_fmadd_ps(v[a], _mm256_loadu_ps(x + size_t(m) * xs + size_t(steps) * 32 + 8 * a), acc[m][a]);
        acc[m][a] = _mm256_blendv_ps(acc[m][a], t, keep);  // (a +0 product would turn a -0 sum into +0)
      }
    }
  }
  for (int m = 0; m < MT; m++) y[size_t(m) * n] = tree(acc[m]);
}

/** Rows [c, end) of j's weight (`stride` bytes per row) with permuted activations x. */
template <class C>
void range(const Job& j, size_t stride, const float* x, int c, int end) {
  const uint8_t* w = static_cast<const uint8_t*>(j.w) + size_t(j.r0) * stride;
  const size_t xs = paddedK(j.K), n = size_t(j.n);
  for (; c < end; c++) {
    if (j.R == 1) pass<C, 1>(w + size_t(c) * stride, j.K, x, xs, j.y + c, n);
    else pass<C, 2>(w + size_t(c) * stride, j.K, x, xs, j.y + c, n);
  }
}

inline float pow2(int e) { return fast::bitsToFloat(uint32_t(e + 127) << 23); }

/**
 * The permuted activations one 128-row FP8 weight block sees: x'' = x * 2^(b-7) per 128-k block (b
 * its scale byte), so that (placed code = value * 2^-120) * x'' is exactly (value * 2^(b-127)) * x.
 * False when that does not hold for every element (fastgemv.h blockActs: the same conditions).
 */
bool scaleBlock(const Job& j, const float* xp, int block, float* out) {
  const int nkb = j.K / 128;
  const size_t xs = paddedK(j.K);
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), big = _mm256_set1_ps(0x1.fffffep127f);
  __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int kb = 0; kb < nkb; kb++) {
    const int b = j.ws[size_t(block) * nkb + kb];
    if (b > 133 || (j.kind == WeightKind::Fp8AsBf16 && b < 3)) return false;
    const __m256 f = _mm256_set1_ps(pow2(b - 7)), inv = _mm256_set1_ps(pow2(7 - b));
    for (int m = 0; m < j.R; m++) {
      const float* x = xp + size_t(m) * xs + size_t(kb) * 128;
      float* o = out + size_t(m) * xs + size_t(kb) * 128;
      for (int i = 0; i < 128; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), ov = _mm256_mul_ps(xv, f);
        _mm256_storeu_ps(o + i, ov);
        // exact and finite (NaN bits would differ)
        ok = _mm256_and_ps(ok, _mm256_and_ps(_mm256_cmp_ps(_mm256_mul_ps(ov, inv), xv, _CMP_EQ_OQ), _mm256_cmp_ps(_mm256_and_ps(ov, absMask), big, _CMP_LE_OQ)));
      }
    }
    if (_mm256_movemask_ps(ok) != 0xff) return false;
  }
  return true;
}

}  // namespace

void permute(const Job& j, float* out) {
  const size_t xs = paddedK(j.K);
  const bool bf16 = j.kind == WeightKind::Bf16;
  for (int m = 0; m < j.R; m++) {
    const float* x = j.x + size_t(m) * j.K;
    float* o = out + size_t(m) * xs;
    for (size_t k0 = 0; k0 < xs; k0 += 32)
      for (int a = 0; a < 4; a++)
        for (int i = 0; i < 8; i++) {
          const size_t k = k0 + size_t(bf16 ? Bf16::chain(a, i) : Fp8::chain(a, i));
          o[k0 + size_t(8 * a + i)] = k < size_t(j.K) ? x[k] : 0.0f;
        }
  }
}

void rows(const Job& j, const float* xp, int a, int b, float* scratch) {
  if (j.kind == WeightKind::Bf16) return range<Bf16>(j, size_t(j.K) * 2, xp, a, b);  // values as they are
  for (int c = a; c < b;) {
    const int block = (j.r0 + c) >> 7, end = std::min(b, ((block + 1) << 7) - j.r0);  // within one 128-row block
    if (scaleBlock(j, xp, block, scratch)) range<Fp8>(j, size_t(j.K), scratch, c, end);
    else scalar::rows(j, c, end);
    c = end;
  }
}

}  // namespace avx2
}  // namespace chain
}  // namespace fastgemv
}  // namespace dsv4
#endif
