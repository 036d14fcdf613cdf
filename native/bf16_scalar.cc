// Portable parts of the exact BF16-valued products (bf16.h): weight values,
// the per-block magnitude bounds cached per weight, and the scalar kernel
// (exact float64 products with their magnitude sum, then the tight error
// bound or the exactness certificate of kernels_scalar.cc).
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "bf16.h"
#include "kernels.h"

namespace dsv4 {

uint64_t nextDenseCall() {
  static std::atomic<uint64_t> n{0};
  return n.fetch_add(1, std::memory_order_relaxed) + 1;
}

static double e4m3Double(uint8_t c) {
  if ((c & 0x7f) == 0x7f) return NAN;
  const int e = (c >> 3) & 15, m = c & 7;
  const double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return (c & 0x80) ? -v : v;
}

void denseRowValues(DenseKind kind, const void* w, const uint8_t* ws, int K, int r, double* out) {
  const size_t o = size_t(r) * K;
  if (kind == DenseKind::Bf16) {
    const uint16_t* p = static_cast<const uint16_t*>(w) + o;
    for (int k = 0; k < K; k++) {
      const uint32_t bits = uint32_t(p[k]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      out[k] = f;
    }
    return;
  }
  const uint8_t* p = static_cast<const uint8_t*>(w) + o;
  const int nb = (K + 127) / 128;
  for (int b = 0; b < nb; b++) {
    const uint8_t sb = ws[size_t(r >> 7) * nb + b];
    // outside [3, 245] bf16(fp8 * scale) may round: leave it to the reference (NaN flags it)
    const double scale = fp8ScaleExact(sb) ? std::ldexp(1.0, int(sb) - 127) : NAN;
    for (int k = b * 128; k < K && k < b * 128 + 128; k++) out[k] = e4m3Double(p[k]) * scale;
  }
}

/** min lsbExponent over values that are all fp32 values (INT_MIN when any is not finite). */
static int valuesLsb(const double* v, int K) {
  int lsb = INT_MAX;
  for (int k = 0; k < K; k++) {
    if (!std::isfinite(v[k])) return INT_MIN;
    const int e = lsbExponent(float(v[k]));
    if (e < lsb) lsb = e;
  }
  return lsb;
}

/** The smallest float >= v (NaN stays NaN). */
static float roundUpF32(double v) {
  const float f = float(v);
  return double(f) >= v ? f : std::nextafter(f, INFINITY);
}

/** |weight| of a BF16 word, NaN/Inf kept. */
static inline double bf16Abs(uint16_t v) {
  const uint32_t bits = uint32_t(v & 0x7fff) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct AbsE4m3 {
  double v[256];
  AbsE4m3() {
    for (int c = 0; c < 256; c++) v[c] = std::fabs(e4m3Double(uint8_t(c)));
  }
};

void denseBounds(DenseKind kind, const void* w, const uint8_t* ws, int K, int r0, int r1, float* bounds) {
  static const AbsE4m3 absE4m3;
  const int nb = (K + 127) / 128, stride = denseBoundsStride(K);
  std::vector<double> v(K);
  for (int r = r0; r < r1; r++) {
    float* br = bounds + size_t(r) * stride;
    for (int b = 0; b < nb; b++) {
      const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
      double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const size_t o = size_t(r) * K;
      int k = k0;
      if (kind == DenseKind::Bf16) {
        const uint16_t* p = static_cast<const uint16_t*>(w) + o;
        for (; k + 8 <= k1; k += 8)
          for (int i = 0; i < 8; i++) l[i] += bf16Abs(p[k + i]);
        for (; k < k1; k++) l[0] += bf16Abs(p[k]);
      } else {
        const uint8_t* p = static_cast<const uint8_t*>(w) + o;
        for (; k + 8 <= k1; k += 8)
          for (int i = 0; i < 8; i++) l[i] += absE4m3.v[p[k + i]];
        for (; k < k1; k++) l[0] += absE4m3.v[p[k]];
      }
      double sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      if (kind == DenseKind::Fp8) {
        const uint8_t sb = ws[size_t(r >> 7) * nb + b];
        sum = fp8ScaleExact(sb) ? std::ldexp(sum, int(sb) - 127) : NAN;
      }
      // <= 128 terms summed 19 deep in float64: relative error < 2^-48
      br[b] = roundUpF32(sum * (1 + std::ldexp(1.0, -40)));
    }
    denseRowValues(kind, w, ws, K, r, v.data());
    const int lsb = valuesLsb(v.data(), K);
    br[nb] = lsb == INT_MIN ? NAN : lsb == INT_MAX ? INFINITY : float(lsb);
  }
}

namespace scalar {

void denseRows(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  const int K = a.K;
  std::vector<double> wv(K);
  for (int j = j0; j < j1; j++) {
    denseRowValues(a.kind, a.w, a.ws, K, a.r0 + j, wv.data());
    int wlsb = INT_MIN + 1;  // computed on first use
    for (int m = 0; m < a.rows; m++) {
      const float* xr = a.x + size_t(m) * K;
      double s = 0, t = 0;
      for (int k = 0; k < K; k++) {
        const double p = wv[k] * double(xr[k]);
        s += p;
        t += std::fabs(p);
      }
      const size_t i = size_t(m) * a.n + j;
      bool ok = settleF32(s, t, K, &a.y[i]);
      if (!ok) {
        if (wlsb == INT_MIN + 1) wlsb = valuesLsb(wv.data(), K);
        ok = settleExactF32(s, t, K, productLsb(minLsbExponent(xr, K), wlsb), &a.y[i]);
      }
      a.amb[i] = ok ? 0 : 1;
      st.flagged += ok ? 0 : 1;
    }
  }
}

}  // namespace scalar
}  // namespace dsv4
