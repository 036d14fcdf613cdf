// Portable chain-semantics fast products (fastgemv.h kChainRows; fast-products.ts 3): the dequantized
// weight row (fastgemv weightRow), per output 32 std::fmaf chains over k = c (mod 32), then the fixed tree.
#include <cmath>

#include "fast.h"
#include "fastgemv.h"

namespace dsv4 {
namespace fastgemv {
namespace chain {
namespace scalar {

namespace {

/** slot[c] = 8 a + i: chain c's accumulator a and lane i in the AVX2 kernel (fast-products.ts chainSlots). */
struct Slots {
  int fp8[32], bf16[32];
  Slots() {
    for (int c = 0; c < 32; c++) {
      fp8[c] = 8 * (c & 3) + (c >> 2);
      bf16[c] = 8 * (2 * (c >> 4) + (c & 1)) + ((c >> 1) & 7);
    }
  }
};

/** The fixed tree over P[8 a + i] (fast-products.ts chainTree). */
inline float tree(const float* P) {
  float v[8];
  for (int i = 0; i < 8; i++) v[i] = (P[i] + P[8 + i]) + (P[16 + i] + P[24 + i]);
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

}  // namespace

void rows(const Job& j, int a, int b) {
  static const Slots slots;
  const int* slot = j.kind == WeightKind::Bf16 ? slots.bf16 : slots.fp8;
  portableRows(j, a, b, [slot](const float* w, const float* x, int K) {
    float P[32] = {};
    for (int k = 0; k < K; k++) {
      float& p = P[slot[k & 31]];
      p = std::fmaf(w[k], x[k], p);
    }
    return tree(P);
  });
}

}  // namespace scalar
}  // namespace chain
}  // namespace fastgemv
}  // namespace dsv4
