// Fast-numerics FP8 products for few activation rows (decode): the semantics of fast.h /
// src/tensor/fast-products.ts (operands dequantized exactly to fp32, one fp32 FMA chain per output
// in increasing k), with the weight ROWS as SIMD lanes so each lane's chain is sequential in k; from 3
// activation rows. 1-2 rows have the chain semantics (kChainRows below).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fast.h"

namespace dsv4 {
namespace fastgemv {

/** Activation rows at most (more go to the GEMM of fast_*.cc). */
constexpr int kMaxRows = 15;

enum class WeightKind { Fp8, Fp8AsBf16, Bf16, Fp4 };  // Fp4: the int8 products of fp4q8.h

/** One product y[R, n] = X . W[r0 .. r0+n)ᵀ: FP8 codes with 128x128 ue8m0 block scales, or BF16. */
struct Job {
  WeightKind kind;  // Fp8AsBf16: the weight's value is bf16(code x scale) (wo_a, dense.ts)
  const float* x;   // dequantized activations [R][K] (e4m3 code x 1x128 scale, or fp32 as given)
  int R, K;         // FP8: K % 128 == 0, BF16: K % 32 == 0
  const void* w;    // e4m3 codes [out][K] without NaN codes (0x7f/0xff), or BF16 words [out][K]
  const uint8_t* ws;  // FP8 only
  int r0, n;
  float* y;         // [R][n]
  const uint8_t* q8 = nullptr;  // Fp4: the activations prepared by fp4q8::prepare (x unused)
};

/**
 * The activations one 128-row weight block sees: x'' = x * 2^(b-7) per 128-k block (b its scale
 * byte), so that (code placed as fp32 = value * 2^-120) * x'' is exactly (value * 2^(b-127)) * x.
 * False when that does not hold for every element (scale out of range, a product not exact or not
 * finite, a BF16-valued weight that would round): the block then runs the portable path.
 */
bool blockActs(const Job& j, int block, float* out);

/** Dequantized weight row r (absolute) of j into out[0 .. K): fast.h weightRow, the portable form. */
void weightRow(const Job& j, int r, float* out);

/** Portable outputs of rows [a, b) of j: dot(dequantized weight row, activation row) per output. */
template <class Dot>
void portableRows(const Job& j, int a, int b, Dot dot) {
  thread_local std::vector<float> w;
  w.resize(size_t(j.K));
  for (int c = a; c < b; c++) {
    weightRow(j, j.r0 + c, w.data());
    for (int m = 0; m < j.R; m++) j.y[size_t(m) * j.n + c] = dot(w.data(), j.x + size_t(m) * j.K, j.K);
  }
}

/** All jobs (FP8 kinds, BF16 or FP4, at most kMaxRows activation rows) in one dispatch over the shared pool, under its call lock. */
void run(const std::vector<fast::Act>& acts, const std::vector<fast::Job>& jobs, bool avx2);

/** Outputs of rows [a, b) (relative to r0) of j (R > kChainRows), all activation rows; `scratch` holds R * K floats (FP8). */
namespace avx2 {
void rows(const Job& j, int a, int b, float* scratch);
}
namespace scalar {
void rows(const Job& j, int a, int b);
}

/**
 * Products of at most kChainRows activation rows (decode of one or two sequences) have their own
 * semantics (fast-products.ts 3): per output 32 partial fp32 FMA chains, chain c the terms with
 * k = c (mod 32), then a fixed sum tree. The AVX2 kernel's lanes run along k, so a weight vector
 * needs only its conversion (fastchain_avx2.cc); fastchain_scalar.cc is the portable form.
 */
constexpr int kChainRows = 2;
namespace chain {
/** Floats per activation row of the permuted copy: K rounded up to a 32-k step. */
inline size_t paddedK(int K) { return (size_t(K) + 31) & ~size_t(31); }
namespace avx2 {
/**
 * j's activations (row-major, R rows of K) in the kernel's lane order, rows paddedK apart: per 32-k
 * step, out[8a + i] = x[c] for chain c in accumulator a, lane i (FP8 kinds: c = 4i + a; BF16:
 * c = 16 (a / 2) + 2i + a % 2); the padding is zero.
 */
void permute(const Job& j, float* out);
/** Outputs of rows [a, b) (relative to r0) of j; xp its permuted activations, scratch R * paddedK floats. */
void rows(const Job& j, const float* xp, int a, int b, float* scratch);
}  // namespace avx2
namespace scalar {
void rows(const Job& j, int a, int b);
}
}  // namespace chain

}  // namespace fastgemv
}  // namespace dsv4
