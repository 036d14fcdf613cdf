// Portable exact kernels: float64 block sums (FP8xFP8 and FP4xFP8 block dot
// products fit in 53 bits, so the float64 sum is exact in any order), one
// rounding to fp32 per block, fixed-order fp32 accumulation across blocks.
#include <climits>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace dsv4 {

static double e4m3Value(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return (c & 0x80) ? -v : v;
}

float e8m0ToFloat(uint8_t b) {
  if (b == 255) return NAN;
  return std::ldexp(1.0f, int(b) - 127);
}

bool settleF32(double s, double t, int n, float* out) {
  if (t == 0) {
    *out = float(s);
    return true;
  }
  const float r = float(s);
  if (r == 0 || !std::isfinite(s)) return false;
  const double u = std::ldexp(1.0, -53);
  const double e = t * (n + 2) * u * 1.01 + std::fabs(s) * 4 * u;
  if (float(s - e) != r || float(s + e) != r) return false;
  *out = r;
  return true;
}

float roundBf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return v;
  u = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

int lsbExponent(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t e = (u >> 23) & 255, m = u & 0x7fffff;
  if (e == 255) return INT_MIN;
  if (e == 0) return m == 0 ? INT_MAX : -149 + __builtin_ctz(m);
  return int(e) - 150 + __builtin_ctz(m | 0x800000);
}

int minLsbExponent(const float* v, int n) {
  int r = INT_MAX;
  for (int i = 0; i < n; i++) {
    const int e = lsbExponent(v[i]);
    if (e == INT_MIN) return INT_MIN;
    if (e < r) r = e;
  }
  return r;
}

bool settleExactF32(double s, double t, int n, int lsb, float* out) {
  // t may be below the true magnitude sum by a relative (n+1)u; 2^-40 covers it
  if (lsb != INT_MIN && (lsb == INT_MAX || (lsb > -1000 && lsb < 900 && t * (1 + std::ldexp(1.0, -40)) < std::ldexp(1.0, lsb + 53)))) {
    *out = float(s);
    return true;
  }
  return settleF32(s, t, n, out);
}


static const double kE2M1[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6};

namespace scalar {

static bool prepare(const GemmArgs& a, double* xd, int m0, int m1) {
  bool ok = true;
  for (size_t i = size_t(m0) * a.K; i < size_t(m1) * a.K; i++) {
    const uint8_t c = a.xq[i];
    if ((c & 0x7f) == 0x7f) ok = false;
    xd[i] = e4m3Value(c);
  }
  return ok;
}

bool fp8Prepare(const GemmArgs& a, double* xd, int m0, int m1) { return prepare(a, xd, m0, m1); }
bool fp4Prepare(const GemmArgs& a, double* xd, int m0, int m1) { return prepare(a, xd, m0, m1); }

void fp8Rows(const GemmArgs& a, const double* xd, int n0, int n1) {
  const int K = a.K, nkb = K / 128;
  double wv[128];
  for (int n = n0; n < n1; n++) {
    const uint8_t* wr = a.w + size_t(n) * K;
    const uint8_t* sr = a.ws + size_t(n >> 7) * nkb;
    for (int m = 0; m < a.rows; m++) {
      const double* xr = xd + size_t(m) * K;
      float acc = 0;
      for (int kb = 0; kb < nkb; kb++) {
        for (int j = 0; j < 128; j++) wv[j] = e4m3Value(wr[kb * 128 + j]);
        double dot = 0;
        for (int j = 0; j < 128; j++) dot += xr[kb * 128 + j] * wv[j];
        const float sc = a.xs[size_t(m) * nkb + kb] * e8m0ToFloat(sr[kb]);
        acc = acc + float(dot) * sc;
      }
      a.y[size_t(m) * a.out + n] = acc;
    }
  }
}

void fp4Rows(const GemmArgs& a, const double* xd, int n0, int n1) {
  const int K = a.K, nsb = K / 32, nkb = K / 128;
  for (int n = n0; n < n1; n++) {
    const uint8_t* wr = a.w + size_t(n) * (K / 2);
    const uint8_t* sr = a.ws + size_t(n) * nsb;
    for (int m = 0; m < a.rows; m++) {
      const double* xr = xd + size_t(m) * K;
      float acc = 0;
      for (int kb = 0; kb < nsb; kb++) {
        double dot = 0;
        for (int j = 0; j < 16; j++) {
          const uint8_t b = wr[kb * 16 + j];
          dot += xr[kb * 32 + 2 * j] * kE2M1[b & 15] + xr[kb * 32 + 2 * j + 1] * kE2M1[b >> 4];
        }
        const float sa = a.xs[size_t(m) * nkb + (kb >> 2)];
        acc = acc + (float(dot) * sa) * e8m0ToFloat(sr[kb]);
      }
      a.y[size_t(m) * a.out + n] = acc;
    }
  }
}


}  // namespace scalar
}  // namespace dsv4
