// Fast-numerics FP4 products of few activation rows (decode's routed experts): the int8 semantics of
// src/tensor/fast-products.ts 4. Per 32-element block the e4m3 activations X (value * 2^9) become
// q = sign(X) floor((254 |X| + M) / (2 M)) in [-127, 127] (M the block's max |X|), so a block dot
// with the e2m1 weights k = 2 * value in [-12, 12] is an exact integer s; the block value is
// fl32(fl32(s * A) * ws) with A = fl32(M * sa * 2^-10 / 127), summed in fp32 in increasing k.
// fp4q8_scalar.cc: preparation (both paths) and the portable kernel; fp4q8_avx2.cc: the AVX2 kernel.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dsv4 {
namespace fp4q8 {

/**
 * Bytes of one prepared activation row (K % 64 == 0): per 64-element piece p, 64 q bytes (32 of the
 * even elements, then 32 of the odd ones: the bytes vpmaddubsw meets against the low and the high
 * weight nibbles); then per piece 64 bytes: int32 12 * sum(q) of block 2p four times, of block 2p+1
 * four times, then float A likewise; then 64 bytes whose first is 1 when the row holds a NaN code.
 */
inline size_t rowBytes(int K) { return size_t(K / 64) * 128 + 64; }

/** Prepares one activation row: e4m3 codes q[K] and its 1x128 scales xs[K / 128] (portable). */
void prepare(const uint8_t* q, const float* xs, int K, uint8_t* out);

/** One product y[R, n] = X . W[r0 .. r0+n)ᵀ over FP4 weights (packed nibbles, 1x32 ue8m0 scales). */
struct Job {
  const uint8_t* x;  // R prepared rows, rowBytes(K) apart
  int R, K;          // R <= kMaxRows, K % 128 == 0
  const uint8_t* w;  // [out][K / 2]
  const uint8_t* ws; // [out][K / 32]
  int r0, n;
  float* y;          // [R][n]
};

constexpr int kMaxRows = 15;

/** Outputs of weight rows [a, b) (relative to r0) of j, all activation rows. */
namespace scalar {
void rows(const Job& j, int a, int b);
}
#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
void rows(const Job& j, int a, int b);
/** prepare's bytes, 32 codes per step (~4x faster: it runs serially before the pool dispatch). */
void prepare(const uint8_t* q, const float* xs, int K, uint8_t* out);
}
#endif

}  // namespace fp4q8
}  // namespace dsv4
