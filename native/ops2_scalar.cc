// Portable implementations of ops2.h. Every double operation and fp32 rounding is the one
// the TypeScript reference performs (Math.fround after a float64 operation), so finite
// results are identical by construction; sums are settled with the helpers of ops.h
// (exact.ts settle / the TwoSum stage), exp through a certified margin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops.h"
#include "ops2.h"

namespace dsv4 {
namespace ops2 {

namespace {
constexpr double U = 0x1p-53;

inline uint32_t bitsOf(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
inline float fromBits(uint32_t u) {
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

/** fl32(d) for d = a / (1 + exp(-a)) computed with libm's exp, when V8's Math.exp gives the same fp32:
 *  both exps are within 1 ulp (2^-52 relative) of e^x, so V8's quotient is within 2^-51 + 4
 *  roundings (< 2^-50) of d relative; the fp32 rounding is certified over 2^-49 (false otherwise). */
inline bool silu32(double d, float* out) {
  const float f = float(d);
  const double err = std::fabs(d) * 0x1p-49;
  if (float(d - err) != f || float(d + err) != f) return false;  // also NaN
  *out = f;
  return true;
}

/** RN32(a + b) for float64 a, b (exact.ts sum2F32): s = RN64(a + b) rounds like a + b unless s is
 *  an fp32 midpoint (<= 25 significant bits and not an fp32), where the TwoSum error picks the side;
 *  false when not finite or below the fp32 normal range (the midpoint test assumes normal results). */
inline bool sum2F32(double a, double b, float* out) {
  const double s = a + b, bb = s - a, e = (a - (s - bb)) + (b - bb);
  const float f = float(s);
  if (e == 0) {
    *out = f;
    return std::isfinite(f);
  }
  if (!std::isfinite(f) || !std::isfinite(e) || std::fabs(s) < 0x1p-126) return false;
  uint64_t bits;
  std::memcpy(&bits, &s, 8);
  if ((bits & 0xfffffffu) != 0 || double(f) == s) *out = f;
  else *out = float(std::nextafter(s, e > 0 ? INFINITY : -INFINITY));
  return true;
}

/** formats.ts roundBf16 on an fp32 value (RNE; inf/NaN kept), inline for the element loops. */
inline float toBf16(float v) {
  const uint32_t b = bitsOf(v);
  return (b & 0x7f800000u) == 0x7f800000u ? v : fromBits(((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) << 16);
}

inline float clampF(float v, float lim) { return std::min(lim, std::max(-lim, v)); }

inline float blockAmax(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; i++) m = std::fabs(x[i]) > m ? std::fabs(x[i]) : m;
  return m;
}

/** The E4M3FN value nearest (RNE) to an fp32 v already clamped to ±448 (E4M3_VALUES[e4m3Code(v)]). */
inline float e4m3Round(float v) {
  const uint32_t b = bitsOf(v);
  if (int((b >> 23) & 0xff) - 127 < -6) {
    // subnormal range: multiples of 2^-9, RNE (nearbyint in the default rounding mode)
    const double r = std::nearbyint(std::fabs(double(v)) * 512) / 512;
    return float(b >> 31 ? -r : r);
  }
  // keep 3 mantissa bits, RNE (a carry steps the exponent, as code + 1 does)
  return fromBits((b + 0x7ffff + ((b >> 20) & 1)) & ~0xfffffu);
}

/** E2M1_VALUES[e2m1Code(v)] for v already clamped to ±6 (quant.ts e2m1Code thresholds, ties to the
 *  even code), counting the thresholds passed instead of branching (random signs mispredict). */
inline float e2m1Round(float v) {
  static const float kValues[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  const float a = std::fabs(v);
  const int c = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5);
  return std::copysign(kValues[c], v);
}

const float FP8_INV = float(1.0 / 448), FP8_AMAX_MIN = float(1e-4);
const float FP4_INV = float(1.0 / 6), FP4_AMAX_MIN = float(6 * 0x1p-126);

/** quant.ts actQuantInPlace on x[0 .. n), blocks of `block`. */
void fp8InPlace(float* x, int n, int block) {
  for (int b = 0; b < n; b += block) {
    const double s = pow2CeilScale(float(double(std::max(blockAmax(x + b, block), FP8_AMAX_MIN)) * FP8_INV)), inv = 1 / s;  // exact
    for (int i = b; i < b + block; i++) x[i] = toBf16(float(double(e4m3Round(clampF(float(x[i] * inv), 448))) * s));
  }
}

/** quant.ts fp4ActQuantInPlace on x[0 .. n), blocks of 32. */
void fp4InPlace(float* x, int n) {
  for (int b = 0; b < n; b += 32) {
    const double s = pow2CeilScale(float(double(std::max(blockAmax(x + b, 32), FP4_AMAX_MIN)) * FP4_INV)), inv = 1 / s;  // exact
    for (int i = b; i < b + 32; i++) x[i] = toBf16(float(double(e2m1Round(clampF(float(x[i] * inv), 6))) * s));
  }
}

/** rope.ts applyRope on pairs of x[0 .. rd) with the table row at `row`. */
bool rope(float* x, int rd, const float* cos, const float* sin, bool inverse) {
  for (int i = 0; i < rd / 2; i++) {
    const double a = x[2 * i], b = x[2 * i + 1], c = cos[i], d = inverse ? -sin[i] : sin[i];
    float r0, r1;
    if (!sum2F32(a * c, -(b * d), &r0) || !sum2F32(a * d, b * c, &r1)) return false;
    x[2 * i] = toBf16(r0);
    x[2 * i + 1] = toBf16(r1);
  }
  return true;
}

/** hadamard.ts hadamardBf16 on x[0 .. n): a float64 Walsh-Hadamard transform in the same butterfly
 *  order, each output settled by the error bound, else summed exactly from the signs. */
bool hadamard(float* x, int n, float scale) {
  thread_local std::vector<double> buf;
  if (buf.size() < size_t(2 * n)) buf.resize(2 * n);
  double* b = buf.data();
  double* terms = b + n;
  double t = 0;
  int lsb = 1 << 20;  // lowest set bit exponent of the inputs (inputs finite)
  for (int i = 0; i < n; i++) {
    b[i] = x[i];
    t += std::fabs(double(x[i]));
    const uint32_t u = bitsOf(x[i]) & 0x7fffffffu;
    if (u == 0) continue;
    const int e = int(u >> 23);
    const int l = __builtin_ctz((u & 0x7fffff) | (e ? 0x800000u : 0)) + (e ? e : 1) - 150;
    lsb = l < lsb ? l : lsb;
  }
  for (int len = 1; len < n; len <<= 1)
    for (int i = 0; i < n; i += len << 1)
      for (int k = i; k < i + len; k++) {
        const double u = b[k], v = b[k + len];
        b[k] = u + v;
        b[k + len] = u - v;
      }
  // every partial sum is a multiple of 2^lsb below t: exact in float64 when t < 2^(lsb+53)
  const bool exact = lsb < 900 && t < std::ldexp(1.0, lsb + 53);
  for (int j = 0; j < n; j++) {
    // an exact zero is +0 as the reference's exact sum gives it (the tree may have made -0)
    float r = b[j] == 0 ? 0.0f : float(b[j]);
    if (!exact && !ops::settleSum(b[j], t, n, &r)) {
      for (int i = 0; i < n; i++) terms[i] = (__builtin_popcount(unsigned(i & j)) & 1 ? -1.0 : 1.0) * x[i];
      if (!ops::sumF32(terms, n, &r)) return false;
    }
    b[j] = r;
  }
  for (int j = 0; j < n; j++) x[j] = toBf16(float(b[j] * scale));
  return true;
}

/** norm.ts headRmsScaleBf16: x *= bf16(rsqrt(bf16(bf16(mean(bf16(x²))) + eps))), all BF16 tensor ops. */
bool rmsScale(float* x, int n, float eps) {
  thread_local std::vector<double> buf;
  if (buf.size() < size_t(n)) buf.resize(n);
  double* sq = buf.data();
  double s = 0;
  for (int i = 0; i < n; i++) s += sq[i] = toBf16(float(double(x[i]) * x[i]));
  // meanF32 (exact.ts): the squares are >= 0, so their magnitude sum is s
  float mean;
  if (s == 0) mean = float(s / n);
  else if (!ops::settle(s / n, (s * (n + 2) * U * 1.01) / n + std::fabs(s / n) * 2 * U, &mean) && !ops::sumToF32(sq, n, n, &mean))
    return false;
  const float v = toBf16(float(double(toBf16(mean)) + eps));
  const double rs = toBf16(float(1 / std::sqrt(double(v))));
  for (int i = 0; i < n; i++) x[i] = toBf16(float(x[i] * rs));
  return true;
}
}  // namespace

void swiglu(const float* g, const float* u, size_t i0, size_t i1, int inter, double limit, const float* rw, float* h,
            std::vector<uint32_t>& undecided) {
  constexpr int B = 32;  // the exps of a chunk back to back, then the divisions (vectorizable)
  double gv[B], uv[B], den[B];
  for (size_t c = i0; c < i1; c += B) {
    const int m = int(std::min<size_t>(B, i1 - c));
    for (int j = 0; j < m; j++) {
      gv[j] = g[c + j];
      uv[j] = u[c + j];
      if (limit > 0) {
        uv[j] = std::min(limit, std::max(-limit, uv[j]));
        gv[j] = std::min(limit, gv[j]);
      }
    }
    for (int j = 0; j < m; j++) den[j] = 1 + std::exp(-gv[j]);
    for (int j = 0; j < m; j++) {
      const size_t i = c + j;
      float silu;
      if (!std::isfinite(g[i]) || !std::isfinite(u[i]) || !silu32(gv[j] / den[j], &silu)) {
        undecided.push_back(uint32_t(i));
        continue;
      }
      float v = float(silu * uv[j]);
      if (rw) v = float(double(rw[i / inter]) * v);
      h[i] = toBf16(v);
    }
  }
}

void roundBf16Range(float* a, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; i++) a[i] = toBf16(a[i]);
}

bool poolChannel(const float* kv, const float* score, int r, int c, bool overlap, int ch, float* out) {
  const int n = overlap ? 2 * r : r, K = overlap ? 2 * c : c;
  thread_local std::vector<double> buf;
  if (buf.size() < size_t(2 * n)) buf.resize(2 * n);
  double* e = buf.data();
  double* terms = e + n;
  double mx = -INFINITY;
  for (int q = 0; q < n; q++) {
    const size_t at = size_t(q) * K + (overlap && q >= r ? c + ch : ch);
    if (!std::isfinite(kv[at]) || std::isnan(score[at]) || score[at] == INFINITY) return false;
    mx = std::max(mx, double(score[at]));
  }
  if (!std::isfinite(mx)) return false;
  double s = 0;
  for (int q = 0; q < n; q++) s += e[q] = std::exp(score[size_t(q) * K + (overlap && q >= r ? c + ch : ch)] - mx);
  // V8's exps differ from libm's by <= 2^-51 (relative) each; its sum of the positive terms then differs
  // by <= 2^-51 + 2(n-1)u and each quotient by <= 2^-50 + (n+1)2^-52: certify over (2n+16)2^-52
  const double m = (2 * n + 16) * 0x1p-52;
  for (int q = 0; q < n; q++) {
    const double p = e[q] / s;
    const float f = float(p);
    if (float(p - p * m) != f || float(p + p * m) != f) return false;
    terms[q] = float(kv[size_t(q) * K + (overlap && q >= r ? c + ch : ch)] * double(f));
  }
  float sum;
  if (!ops::sumF32(terms, n, &sum)) return false;
  *out = toBf16(sum);
  return true;
}

void addRow(float* y, const float* src, size_t n, bool round) {
  // an fp32 sum is RN32 of the exact sum, as fl32 of the float64 one (53 >= 2*24 + 2)
  if (round)
    for (size_t d = 0; d < n; d++) y[d] = toBf16(y[d] + src[d]);
  else
    for (size_t d = 0; d < n; d++) y[d] = y[d] + src[d];
}

bool head(const HeadArgs& a, float* x, int pos) {
  const int d = a.d, rd = a.rd, half = rd / 2;
  thread_local std::vector<float> buf;
  if (buf.size() < size_t(d)) buf.resize(d);
  float* y = buf.data();
  uint32_t special = 0;  // any inf/NaN (exponent all ones), without a branch per element
  for (int i = 0; i < d; i++) special |= uint32_t((bitsOf(x[i]) & 0x7f800000u) == 0x7f800000u);
  if (special) return false;
  std::memcpy(y, x, size_t(d) * 4);
  const float* cos = a.cos + size_t(pos) * half;
  const float* sin = a.sin + size_t(pos) * half;
  switch (a.mode) {
    case RMS_ROPE:
      if (!(a.rmsScale && a.rmsScale(y, d, a.eps)) && !rmsScale(y, d, a.eps)) return false;
      [[fallthrough]];
    case ROPE:
    case ROPE_INVERSE:
    case ROPE_FP8:
    case ROPE_HADAMARD_FP4:
      if (!rope(y + d - rd, rd, cos, sin, a.mode == ROPE_INVERSE)) return false;
      break;
    default:
      return false;
  }
  if (a.mode == ROPE_FP8) fp8InPlace(y, d - rd, 64);
  if (a.mode == ROPE_HADAMARD_FP4 && !(a.hadamardFp4 && a.hadamardFp4(y, d, a.scale))) {
    if (!hadamard(y, d, a.scale)) return false;
    fp4InPlace(y, d);
  }
  std::memcpy(x, y, size_t(d) * 4);
  return true;
}

}  // namespace ops2
}  // namespace dsv4
