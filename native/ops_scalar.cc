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
void cvtScalar(const uint16_t* k, int d, double* out, double* norm2, double* maxAbs, int* lsb) {
  double n2 = 0, mx = 0;
  for (int i = 0; i < d; i++) {
    out[i] = bf16Value(k[i]);
    n2 += out[i] * out[i];
    mx = std::fabs(out[i]) > mx ? std::fabs(out[i]) : mx;
  }
  *norm2 = n2;
  *maxAbs = mx;
  *lsb = bf16LsbBound(k, d);
}

void dotsScalar(const double* q, int H, const double* k, int d, double* out) {
  for (int h = 0; h < H; h++) {
    double s = 0;
    for (int i = 0; i < d; i++) s += q[size_t(h) * d + i] * k[i];
    out[h] = s;
  }
}

void pvScalar(const double* p, const double* const* k, int nk, int d, double* sum) {
  for (int j = 0; j < nk; j++)
    for (int e = 0; e < d; e++) sum[e] += p[j] * k[j][e];
}

bool settleRowsScalar(const double* sum, double* acc, double c, double pMax, double bk, int d, uint8_t* ok) {
  bool all = true;
  for (int e = 0; e < d; e++) {
    const double s1 = sum[e], err = (std::fabs(acc[e] * c) + pMax) * bk + std::fabs(s1) * (4 * 0x1p-53);
    const float r = float(s1);
    const bool good = r != 0 && float(s1 - err) == r && float(s1 + err) == r;
    ok[e] = good;
    all = all && good;
    acc[e] = good ? r : acc[e];
  }
  return all;
}

void finishScalar(const double* acc, double l, int d, float* out) {
  for (int e = 0; e < d; e++) out[e] = roundBf16(float(acc[e] / l));
}

constexpr int kBlock = 64;
// float64 sums of n <= 2^13 terms are within a relative n*u of the exact ones: 2^-40 covers it
constexpr double kUp = 1 + 0x1p-40;

/** lsb exponent of products of values with these lsb exponents (INT_MAX: a zero factor). */
inline int sumLsb(int a, int b) {
  if (a == INT_MIN || b == INT_MIN) return INT_MIN;
  if (a == INT_MAX || b == INT_MAX) return INT_MAX;
  return a + b;
}

/** min lsbExponent over v[0..n) (INT_MIN if any is non-finite). */
int minLsb(const double* v, int n) {
  int m = INT_MAX;
  for (int i = 0; i < n; i++) {
    const int e = lsbExponent(float(v[i]));
    if (e == INT_MIN) return INT_MIN;
    m = e < m ? e : m;
  }
  return m;
}

/** This thread's working set: the block's keys as float64 (shared by its heads) and per-head rows. */
struct AttnScratch {
  double *kb, *qd, *acc, *sum, *terms, *ds;
  uint8_t* ok;
  AttnScratch(int Hs, int d) {
    thread_local std::vector<double> buf;
    const size_t need = size_t(kBlock) * d + 3 * size_t(Hs) * d + d + kBlock + 1 + d / 8 + 2 + size_t(kBlock) * Hs + 8;
    if (buf.size() < need) buf.resize(need);
    double* p = buf.data();
    p += (32 - reinterpret_cast<uintptr_t>(p) % 32) % 32 / sizeof(double);
    kb = p;
    qd = kb + size_t(kBlock) * d;
    acc = qd + size_t(Hs) * d;
    sum = acc + size_t(Hs) * d;
    terms = sum + size_t(Hs) * d;
    ds = terms + d + kBlock + 1;
    ok = reinterpret_cast<uint8_t*>(ds + size_t(kBlock) * Hs);
  }
};

struct HeadState {
  float m = -INFINITY, l = 0;
  int qLsb = INT_MAX;
  bool qLsbKnown = false;
  double qNorm = 0;
  bool live = true;
};

/** One block of one head (attention.ts sparseAttnHead's block step); false when left undecided. */
bool headBlock(const AttnArgs& a, const AttnLoops& L, AttnScratch& S, HeadState& st, int hi, int b0, int nb, const double* kn,
               const double* km, const int* kl, const double* dsAll, int Hs) {
  const int d = a.d;
  const double* qd = S.qd + size_t(hi) * d;
  double* acc = S.acc + size_t(hi) * d;
  double* sum = S.sum + size_t(hi) * d;
  double* terms = S.terms;
  const uint16_t* const* keys = a.keys + b0;
  float s[kBlock];
  float mNew = st.m;
  for (int j = 0; j < nb; j++) {
    if (!keys[j]) {
      s[j] = -INFINITY;
      continue;
    }
    const double* k = S.kb + size_t(j) * d;
    const double ds = dsAll[size_t(j) * Hs + hi];
    float dot;
    // the magnitude sum is at most |q|·|k| (Cauchy-Schwarz); BF16 products often sum exactly onto
    // an fp32 midpoint, which the span certificate settles; the exact magnitude sum last
    const double tBound = st.qNorm * kn[j] * kUp;
    if (!settleSum(ds, tBound, d, &dot)) {
      if (!st.qLsbKnown) {
        st.qLsb = minLsb(qd, d);
        st.qLsbKnown = true;
      }
      const int lsb = sumLsb(st.qLsb, kl[j]);
      if (!exactBySpan(ds, tBound, lsb, &dot)) {
        double dt = 0;
        for (int i = 0; i < d; i++) dt += std::fabs(qd[i] * k[i]);
        if (!exactBySpan(ds, dt, lsb, &dot) && !settleSum(ds, dt, d, &dot)) {
          for (int i = 0; i < d; i++) terms[i] = qd[i] * k[i];
          if (!sumToF32(terms, d, 1, &dot)) return false;
        }
      }
    }
    s[j] = float(double(dot) * double(a.scale));
    if (!std::isfinite(s[j])) return false;
    if (s[j] > mNew) mNew = s[j];
  }
  if (mNew == -INFINITY) return false;  // the reference's NaN path (a leading all-masked block)
  float c;
  if (!exp32(float(double(st.m) - double(mNew)), &c)) return false;
  terms[0] = double(st.l) * c;
  double pAct[kBlock], pMax = 0;
  const double* kAct[kBlock];
  int na = 0;
  // every PV term is a multiple of 2^spanLsb: lsb(acc) + lsb(c), lsb(p) + lsb(key)
  int spanLsb = INT_MAX;
  for (int j = 0; j < nb; j++) {
    float p = 0;
    if (s[j] != -INFINITY && !exp32(float(double(s[j]) - double(mNew)), &p)) return false;
    terms[1 + j] = p;
    const float pb = roundBf16(p);
    if (keys[j] && pb != 0) {
      const int lj = sumLsb(lsbExponent(pb), kl[j]);
      spanLsb = lj < spanLsb ? lj : spanLsb;
      pMax += pb * km[j];
      pAct[na] = pb;
      kAct[na++] = S.kb + size_t(j) * d;
    }
  }
  if (!sumF32(terms, nb + 1, &st.l)) return false;
  // acc = fl32(acc*c + Σ bf16(p)·v) per dim; magnitude sum at most |acc*c| + Σ bf16(p)·max|v|
  for (int e = 0; e < d; e++) sum[e] = acc[e] * c;
  L.pv(pAct, kAct, na, d, sum);
  // the error-bound settle for all dims (branch-free: vectorizable), the rest one by one
  pMax *= kUp;
  if (!L.settleRows(sum, acc, c, pMax, (nb + 3) * 0x1p-53 * 1.01 * kUp * kUp, d, S.ok)) {
    const int lc = lsbExponent(c);
    for (int e = 0; e < d; e++) {
      if (S.ok[e]) continue;
      const double ac = acc[e] * c;  // acc[e] still holds the old value here
      const int le = sumLsb(lsbExponent(float(acc[e])), lc), span = le < spanLsb ? le : spanLsb;
      float r;
      if (exactBySpan(sum[e], (std::fabs(ac) + pMax) * kUp, span, &r)) {
        acc[e] = r;
        continue;
      }
      double t = std::fabs(ac);
      for (int j = 0; j < na; j++) t += pAct[j] * std::fabs(kAct[j][e]);
      if (!exactBySpan(sum[e], t, span, &r) && !settleSum(sum[e], t, nb + 1, &r)) {
        terms[0] = ac;
        for (int j = 0; j < na; j++) terms[1 + j] = pAct[j] * kAct[j][e];
        if (!sumToF32(terms, na + 1, 1, &r)) return false;
      }
      acc[e] = r;
    }
  }
  st.m = mNew;
  return true;
}
}  // namespace

const AttnLoops& scalarAttnLoops() {
  static const AttnLoops L{cvtScalar, dotsScalar, pvScalar, settleRowsScalar, finishScalar};
  return L;
}

void attnHeads(const AttnArgs& a, const AttnLoops& L, int h0, int h1) {
  const int d = a.d, Hs = h1 - h0;
  if (Hs <= 0) return;
  AttnScratch S(Hs, d);
  std::vector<HeadState> st(static_cast<size_t>(Hs));
  for (int hi = 0; hi < Hs; hi++) {
    const float* q = a.q + size_t(h0 + hi) * d;
    double* qd = S.qd + size_t(hi) * d;
    double n2 = 0;
    for (int i = 0; i < d; i++) {
      qd[i] = q[i];
      n2 += qd[i] * qd[i];
      S.acc[size_t(hi) * d + i] = 0;
    }
    // a non-finite query is left to the reference (its lsb bound is computed when first needed)
    st[hi].live = std::isfinite(n2);
    st[hi].qNorm = std::sqrt(n2 * kUp) * kUp;
  }
  double kn[kBlock], km[kBlock];
  int kl[kBlock];
  for (int b0 = 0; b0 < a.n; b0 += kBlock) {
    const int nb = a.n - b0 < kBlock ? a.n - b0 : kBlock;
    // the block's keys once as float64 for all of this thread's heads
    for (int j = 0; j < nb; j++) {
      if (!a.keys[b0 + j]) continue;
      L.cvt(a.keys[b0 + j], d, S.kb + size_t(j) * d, &kn[j], &km[j], &kl[j]);
      kn[j] = std::sqrt(kn[j] * kUp) * kUp;
      // q·k for all of this thread's heads while the key is in L1
      L.dots(S.qd, Hs, S.kb + size_t(j) * d, d, S.ds + size_t(j) * Hs);
    }
    for (int hi = 0; hi < Hs; hi++)
      if (st[hi].live) st[hi].live = headBlock(a, L, S, st[hi], hi, b0, nb, kn, km, kl, S.ds, Hs);
  }
  for (int hi = 0; hi < Hs; hi++) {
    const int h = h0 + hi;
    HeadState& t = st[hi];
    float es;
    if (t.live && exp32(float(double(a.sink[h]) - double(t.m)), &es)) {
      const float l = float(double(t.l) + double(es));
      L.finish(S.acc + size_t(hi) * d, double(l), d, a.out + size_t(h) * d);
      a.flag[h] = 0;
    } else a.flag[h] = 1;
  }
}

}  // namespace ops
}  // namespace dsv4
