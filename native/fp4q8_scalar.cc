// The int8 FP4 products of fp4q8.h: activation preparation (shared by both kernels) and the portable
// kernel, which computes each block's integer dot directly.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "fast.h"
#include "fp4q8.h"

namespace dsv4 {
namespace fp4q8 {

namespace {
/** e4m3 code -> value * 2^9 (an integer <= 229376), -1 for the NaN codes' magnitude marker. */
struct E4m3Int {
  int32_t v[256];
  E4m3Int() {
    for (int c = 0; c < 256; c++) {
      const int e = (c >> 3) & 15, m = c & 7;
      const int mag = e == 0 ? m : (8 + m) << (e - 1);
      v[c] = (c & 0x80) ? -mag : mag;
    }
  }
};
const E4m3Int& e4m3Int() {
  static const E4m3Int t;
  return t;
}
/** 2 * e2m1 value by nibble. */
constexpr int8_t kTwiceE2m1[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
}  // namespace

void prepare(const uint8_t* q, const float* xs, int K, uint8_t* out) {
  const E4m3Int& T = e4m3Int();
  const int npc = K / 64;
  std::memset(out + size_t(npc) * 128, 0, 64);
  uint8_t nan = 0;
  for (int k = 0; k < K; k++) nan |= uint8_t((q[k] & 0x7f) == 0x7f);
  out[size_t(npc) * 128] = nan;
  for (int b = 0; b < K / 32; b++) {
    const int p = b >> 1, h = b & 1;
    int32_t X[32], M = 0;
    for (int i = 0; i < 32; i++) {
      X[i] = T.v[q[b * 32 + i]];
      M = std::max(M, X[i] < 0 ? -X[i] : X[i]);
    }
    // floor((254 |X| + M) / (2 M)) without a division: a quotient that is not an integer lies at
    // least 1 / (2 M) > 2^-19 below the next one, the float64 product within 2^-44 of the quotient
    const double inv = M == 0 || nan ? 0.0 : 1.0 / (2.0 * M);
    int32_t sum = 0;
    int8_t v[32];
    for (int i = 0; i < 32; i++) {
      const int32_t a = X[i] < 0 ? -X[i] : X[i];
      const int32_t qq = int32_t(double(254 * a + M) * inv + 0x1p-30);
      v[i] = int8_t(X[i] < 0 ? -qq : qq);
      sum += v[i];
    }
    for (int i = 0; i < 16; i++) {  // element 32h + 2i (even) and 32h + 2i + 1 (odd) of the piece
      out[size_t(p) * 64 + 16 * h + i] = uint8_t(v[2 * i]);
      out[size_t(p) * 64 + 32 + 16 * h + i] = uint8_t(v[2 * i + 1]);
    }
    // A = fl32(((M * sa) * 2^-10) / 127): float64 operations, one rounding to fp32
    const float A = float(double(M) * double(xs[b >> 2]) * 0x1p-10 / 127.0);
    uint8_t* pp = out + size_t(npc) * 64 + size_t(p) * 64;
    for (int l = 0; l < 4; l++) {
      const int32_t c = 12 * sum;
      std::memcpy(pp + 16 * h + 4 * l, &c, 4);
      std::memcpy(pp + 32 + 16 * h + 4 * l, &A, 4);
    }
  }
}

namespace scalar {

void rows(const Job& j, int a, int b) {
  const int K = j.K, npc = K / 64, nsb = K / 32;
  const size_t xrb = rowBytes(K);
  for (int c = a; c < b; c++) {
    const uint8_t* w = j.w + size_t(j.r0 + c) * (K / 2);
    const uint8_t* s = j.ws + size_t(j.r0 + c) * nsb;
    for (int m = 0; m < j.R; m++) {
      const uint8_t* x = j.x + size_t(m) * xrb;
      float* y = j.y + size_t(m) * j.n + c;
      if (x[size_t(npc) * 128]) {
        *y = NAN;
        continue;
      }
      float acc = 0.0f;
      for (int bl = 0; bl < nsb; bl++) {
        const int p = bl >> 1, h = bl & 1;
        const int8_t* qe = reinterpret_cast<const int8_t*>(x + size_t(p) * 64 + 16 * h);  // elements 32h + 2i
        int32_t dot = 0;
        for (int i = 0; i < 16; i++) {
          const uint8_t byte = w[bl * 16 + i];  // low nibble = even element
          dot += kTwiceE2m1[byte & 15] * qe[i] + kTwiceE2m1[byte >> 4] * qe[32 + i];
        }
        float A;
        std::memcpy(&A, x + size_t(npc) * 64 + size_t(p) * 64 + 32 + 16 * h, 4);
        acc = acc + (float(dot) * A) * fast::e8m0(s[bl]);
      }
      *y = acc;
    }
  }
}

}  // namespace scalar
}  // namespace fp4q8
}  // namespace dsv4
