// Portable fast-numerics FP8 products for few rows (fastgemv.h): the dequantized weight row
// (fast.h weightRow), then one std::fmaf chain per output in increasing k, as fast_scalar.cc.
#include <cmath>
#include <vector>

#include "fast.h"
#include "fastgemv.h"

namespace dsv4 {
namespace fastgemv {

namespace {
inline float pow2(int e) { return fast::bitsToFloat(uint32_t(e + 127) << 23); }
}  // namespace

bool blockActs(const Job& j, int block, float* out) {
  const int nkb = j.K / 128;
  for (int kb = 0; kb < nkb; kb++) {
    const int b = j.ws[size_t(block) * nkb + kb];
    // the factor and its inverse normal fp32; as BF16 values, b >= 3 keeps code x 2^(b-127) exact in BF16
    if (b > 133 || (j.kind == WeightKind::Fp8AsBf16 && b < 3)) return false;
    const float f = pow2(b - 7), inv = pow2(7 - b);
    for (int m = 0; m < j.R; m++) {
      const float* x = j.x + size_t(m) * j.K + kb * 128;
      float* o = out + size_t(m) * j.K + kb * 128;
      bool ok = true;
      for (int i = 0; i < 128; i++) {
        o[i] = x[i] * f;
        ok &= (o[i] * inv == x[i]) & (std::fabs(o[i]) <= 0x1.fffffep127f);  // exact and finite (NaN bits would differ)
      }
      if (!ok) return false;
    }
  }
  return true;
}

void weightRow(const Job& j, int r, float* out) {
  fast::Act act{};
  act.K = j.K;
  const fast::Kind kind = j.kind == WeightKind::Bf16 ? fast::Kind::Bf16 : j.kind == WeightKind::Fp8AsBf16 ? fast::Kind::Fp8AsBf16 : fast::Kind::Fp8;
  const fast::Job fj{kind, &act, j.w, j.ws, j.r0, j.n, j.y};
  fast::weightRow(fj, r, 0, j.K, out);
}

namespace scalar {

void rows(const Job& j, int a, int b) {
  portableRows(j, a, b, [](const float* w, const float* x, int K) {
    float acc = 0;
    for (int k = 0; k < K; k++) acc = std::fmaf(w[k], x[k], acc);
    return acc;
  });
}

}  // namespace scalar
}  // namespace fastgemv
}  // namespace dsv4
