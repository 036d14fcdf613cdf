// Portable implementations of the decode-path operations (ops.h), and the
// exactness helpers they share with the AVX2 inner loops. Every fp32 rounding
// happens where the TypeScript reference applies Math.fround (double operation,
// then one rounding to fp32), so finite results are identical by construction.
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"  // roundBf16, lsbExponent
#include "ops.h"

namespace dsv4 {
namespace ops {

namespace {
constexpr double U = 0x1p-53;

inline double bf16Value(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/** E4M3FN code of an fp32 value already clamped to ±448, RNE (quant.ts e4m3Code). */
inline uint8_t e4m3Code(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  const uint32_t sign = (b >> 24) & 0x80;
  const int E = int((b >> 23) & 0xff) - 127;
  if (E < -6) {
    // subnormal range: multiples of 2^-9 (|v| * 512 is exact)
    const double y = std::fabs(double(v)) * 512;
    double n = std::floor(y);
    const double fr = y - n;
    if (fr > 0.5 || (fr == 0.5 && (int64_t(n) & 1))) n += 1;
    return uint8_t(sign | uint32_t(n));
  }
  const uint32_t m = b & 0x7fffff;
  uint32_t code = (uint32_t(E + 7) << 3) + (m >> 20);
  const uint32_t rem = m & 0xfffff;
  if (rem > 0x80000 || (rem == 0x80000 && (code & 1))) code++;
  return uint8_t(sign | code);
}

std::vector<double>& scratch(size_t n) {
  thread_local std::vector<double> v;
  if (v.size() < n) v.resize(n);
  return v;
}
}  // namespace

// ---------- exactness helpers (exact.ts) ----------

bool settle(double s, double err, float* out) {
  const float r = float(s);
  if (r == 0 || !std::isfinite(s)) return false;
  const double e = err + std::fabs(s) * 4 * U;
  if (float(s - e) != r || float(s + e) != r) return false;
  *out = r;
  return true;
}

bool settleSum(double s, double t, int n, float* out) {
  if (t == 0) {
    *out = float(s);
    return true;
  }
  return settle(s, t * (n + 2) * U * 1.01, out);
}

bool sumToF32(const double* terms, int n, double div, float* out) {
  double s = 0, e = 0, ea = 0;
  for (int i = 0; i < n; i++) {
    const double b = terms[i], t = s + b, bb = t - s;
    const double err = (s - (t - bb)) + (b - bb);
    s = t;
    e += err;
    ea += std::fabs(err);
  }
  if (!std::isfinite(s)) return false;
  if (ea == 0) {
    // no addition rounded: s is exact, one fp32 rounding (after the float64 division) is correct
    *out = float(div == 1 ? s : s / div);
    return true;
  }
  const double r = s + e, q = r / div;
  return settle(q, (std::fabs(r) * 2 * U + ea * (n + 2) * U * 1.01) / div + std::fabs(q) * 2 * U, out);
}

bool sumF32(const double* terms, int n, float* out) {
  double s = 0, t = 0;
  for (int i = 0; i < n; i++) {
    s += terms[i];
    t += std::fabs(terms[i]);
  }
  if (t == 0) {
    *out = float(s);
    return true;
  }
  return settle(s, t * (n + 2) * U * 1.01, out) || sumToF32(terms, n, 1, out);
}

bool exp32(float x, float* out) {
  const double r = std::exp(double(x));
  if (std::isinf(r)) {
    *out = float(r);
    return true;
  }
  // both libm's and V8's exp are within 1 ulp (2^-52 relative) of e^x
  const float lo = float(r - r * 0x1p-50), hi = float(r + r * 0x1p-50);
  if (lo != hi) return false;  // also NaN
  *out = lo;
  return true;
}

int bf16LsbBound(const uint16_t* w, int n) {
  // a BF16 value with exponent field e is a multiple of 2^(e-134) (subnormals: 2^-133)
  int emin = 256;
  for (int i = 0; i < n; i++) {
    const int e = (w[i] >> 7) & 0xff;
    if ((w[i] & 0x7fff) != 0 && e < emin) emin = e;
  }
  return emin == 256 ? INT_MAX : (emin == 0 ? 1 : emin) - 134;
}

/** 2^e for e in [-1022, 1023], from the bits. */
inline double pow2(int e) {
  const uint64_t b = uint64_t(e + 1023) << 52;
  double r;
  std::memcpy(&r, &b, 8);
  return r;
}

bool exactBySpan(double s, double t, int lsb, float* out) {
  if (lsb == INT_MIN) return false;
  // t may be below the true magnitude sum by a relative n*u (n <= 2^13 here); 2^-40 covers it
  if (lsb != INT_MAX && !(lsb > -1000 && lsb < 900 && t * (1 + 0x1p-40) < pow2(lsb + 53))) return false;
  *out = float(s);
  return true;
}

// ---------- act_quant ----------

bool actQuantRow(const float* x, int cols, uint8_t* q, float* scale) {
  const float inv = float(1.0 / 448), amin = float(1e-4);
  for (int b = 0; b < cols / 128; b++) {
    const float* xb = x + b * 128;
    float amax = 0;
    for (int i = 0; i < 128; i++) {
      if (!std::isfinite(xb[i])) return false;
      const float a = std::fabs(xb[i]);
      if (a > amax) amax = a;
    }
    // 2^ceil(log2(fl32(max(amax, 1e-4) / 448))) from the fp32 bits (quant.ts pow2CeilScale)
    const float v = float(double(amax > amin ? amax : amin) * double(inv));
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    const int e = int((bits >> 23) & 0xff) - 127 + ((bits & 0x7fffff) != 0 ? 1 : 0);
    const float s = std::ldexp(1.0f, e);
    scale[b] = s;
    for (int i = 0; i < 128; i++) {
      float y = float(double(xb[i]) / double(s));
      y = y > 448 ? 448 : y < -448 ? -448 : y;
      q[b * 128 + i] = e4m3Code(y);
    }
  }
  return true;
}

// ---------- RMS ----------

bool rmsFactor(const float* x, int n, float eps, float* out) {
  double s = 0;
  for (int i = 0; i < n; i++) s += float(double(x[i]) * x[i]);
  float ms = 0;
  if (s != 0) {
    const double m = s / n;
    if (!settle(m, (s * (n + 2) * U * 1.01) / n + std::fabs(m) * 2 * U, &ms)) {
      std::vector<double>& t = scratch(size_t(n));
      for (int i = 0; i < n; i++) t[i] = float(double(x[i]) * x[i]);
      if (!sumToF32(t.data(), n, n, &ms)) return false;
    }
  }
  *out = float(1 / std::sqrt(double(float(double(ms) + double(eps)))));
  return std::isfinite(*out);
}

bool rmsNormRow(const float* x, int n, const float* w, float eps, float* y) {
  float r;
  if (!rmsFactor(x, n, eps, &r)) return false;
  for (int i = 0; i < n; i++) y[i] = roundBf16(float(double(w[i]) * double(float(double(x[i]) * r))));
  return true;
}

// ---------- hyper-connections ----------

bool streamSum(const double* coef, int cs, const float* x, int dim, int hc, float* out) {
  double t[16];
  for (int j = 0; j < hc; j++) t[j] = float(coef[j * cs] * double(x[size_t(j) * dim]));
  return sumF32(t, hc, out);
}

bool streamSums(const double* coef, int cs, const float* x, int dim, int hc, float* out) {
  for (int d = 0; d < dim; d++)
    if (!streamSum(coef, cs, x + d, dim, hc, &out[d])) return false;
  return true;
}

// ---------- exact dot products ----------

void dotF64(const float* a, const float* b, int n, double* s, double* t) {
  double ss = 0, tt = 0;
  for (int i = 0; i < n; i++) {
    const double p = double(a[i]) * b[i];
    ss += p;
    tt += std::fabs(p);
  }
  *s = ss;
  *t = tt;
}

bool finishDot(const float* a, const float* b, int n, double s, double t, float* out) {
  if (t == 0 || !std::isfinite(s)) return false;  // signed zeros / non-finite: the caller's reference path
  if (settle(s, t * (n + 2) * U * 1.01, out)) return true;
  std::vector<double>& p = scratch(size_t(n));
  for (int i = 0; i < n; i++) p[i] = double(a[i]) * b[i];
  return sumToF32(p.data(), n, 1, out);
}

// ---------- sparse attention ----------

namespace {
void dotScalar(const double* q, const double* qa, const uint16_t* k, int d, double* s, double* t) {
  double ss = 0, tt = 0;
  for (int i = 0; i < d; i++) {
    const double v = bf16Value(k[i]);
    ss += q[i] * v;
    tt += qa[i] * std::fabs(v);
  }
  *s = ss;
  *t = tt;
}

void pvScalar(const double* p, const uint16_t* const* k, int nk, int d, double* sum, double* abs) {
  for (int j = 0; j < nk; j++)
    for (int e = 0; e < d; e++) {
      const double v = bf16Value(k[j][e]);
      sum[e] += p[j] * v;
      abs[e] += p[j] * std::fabs(v);
    }
}

constexpr int kBlock = 64;

/** lsb exponent of products of values with these lsb exponents (INT_MAX: a zero factor). */
inline int sumLsb(int a, int b) {
  if (a == INT_MIN || b == INT_MIN) return INT_MIN;
  if (a == INT_MAX || b == INT_MAX) return INT_MAX;
  return a + b;
}

/** One head: false when something is left to the TypeScript reference. */
bool attnHead(const AttnArgs& a, const AttnLoops& L, int h) {
  const int d = a.d;
  alignas(32) double qd[1024], qa[1024], acc[1024], sum[1024], abs[1024];
  double terms[1024 + kBlock + 1], pAct[kBlock];
  const uint16_t* kAct[kBlock];
  float s[kBlock];
  const float* q = a.q + size_t(h) * d;
  int qLsb = INT_MAX;
  for (int i = 0; i < d; i++) {
    const int e = lsbExponent(q[i]);
    if (e == INT_MIN) return false;
    qLsb = e < qLsb ? e : qLsb;
    qd[i] = q[i];
    qa[i] = std::fabs(qd[i]);
    acc[i] = 0;
  }
  int accLsb = INT_MAX, actLsb[kBlock];
  float m = -INFINITY, l = 0;
  for (int b0 = 0; b0 < a.n; b0 += kBlock) {
    const int nb = a.n - b0 < kBlock ? a.n - b0 : kBlock;
    const uint16_t* const* keys = a.keys + b0;
    float mNew = m;
    for (int j = 0; j < nb; j++) {
      if (!keys[j]) {
        s[j] = -INFINITY;
        continue;
      }
      double ds, dt;
      L.dot(qd, qa, keys[j], d, &ds, &dt);
      float dot;
      // BF16 products often sum exactly onto an fp32 midpoint: the span certificate settles those
      if (!exactBySpan(ds, dt, sumLsb(qLsb, a.keyLsb[b0 + j]), &dot) && !settleSum(ds, dt, d, &dot)) {
        for (int i = 0; i < d; i++) terms[i] = qd[i] * bf16Value(keys[j][i]);
        if (!sumToF32(terms, d, 1, &dot)) return false;
      }
      s[j] = float(double(dot) * double(a.scale));
      if (!std::isfinite(s[j])) return false;
      if (s[j] > mNew) mNew = s[j];
    }
    if (mNew == -INFINITY) return false;  // the reference's NaN path (a leading all-masked block)
    float c;
    if (!exp32(float(double(m) - double(mNew)), &c)) return false;
    terms[0] = double(l) * c;
    int na = 0;
    for (int j = 0; j < nb; j++) {
      float p = 0;
      if (s[j] != -INFINITY && !exp32(float(double(s[j]) - double(mNew)), &p)) return false;
      terms[1 + j] = p;
      const float pb = roundBf16(p);
      if (keys[j] && pb != 0) {
        actLsb[na] = sumLsb(lsbExponent(pb), a.keyLsb[b0 + j]);
        pAct[na] = pb;
        kAct[na++] = keys[j];
      }
    }
    if (!sumF32(terms, nb + 1, &l)) return false;
    // acc = fl32(acc*c + Σ bf16(p)·v) per dim
    for (int e = 0; e < d; e++) {
      sum[e] = acc[e] * c;
      abs[e] = std::fabs(sum[e]);
    }
    L.pv(pAct, kAct, na, d, sum, abs);
    // every term is a multiple of 2^spanLsb: lsb(acc) + lsb(c), lsb(p) + lsb(key)
    int spanLsb = c == 0 ? INT_MAX : sumLsb(accLsb, lsbExponent(c));
    for (int j = 0; j < na; j++) spanLsb = actLsb[j] < spanLsb ? actLsb[j] : spanLsb;
    accLsb = INT_MAX;
    for (int e = 0; e < d; e++) {
      float r;
      if (!exactBySpan(sum[e], abs[e], spanLsb, &r) && !settleSum(sum[e], abs[e], nb + 1, &r)) {
        terms[0] = acc[e] * c;
        for (int j = 0; j < na; j++) terms[1 + j] = pAct[j] * bf16Value(kAct[j][e]);
        if (!sumToF32(terms, na + 1, 1, &r)) return false;
      }
      acc[e] = r;
      const int le = lsbExponent(r);
      accLsb = le < accLsb ? le : accLsb;
    }
    m = mNew;
  }
  float es;
  if (!exp32(float(double(a.sink[h]) - double(m)), &es)) return false;
  l = float(double(l) + double(es));
  float* o = a.out + size_t(h) * d;
  for (int e = 0; e < d; e++) o[e] = roundBf16(float(acc[e] / double(l)));
  return true;
}
}  // namespace

const AttnLoops& scalarAttnLoops() {
  static const AttnLoops L{dotScalar, pvScalar};
  return L;
}

void attnHeads(const AttnArgs& a, const AttnLoops& L, int h0, int h1) {
  for (int h = h0; h < h1; h++) a.flag[h] = attnHead(a, L, h) ? 0 : 1;
}

}  // namespace ops
}  // namespace dsv4
