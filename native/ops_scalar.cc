// Portable implementations of the decode-path operations (ops.h), and the
// exactness helpers they share with the AVX2 inner loops. Every fp32 rounding
// happens where the TypeScript reference applies Math.fround (double operation,
// then one rounding to fp32), so finite results are identical by construction.
#include <algorithm>
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
  return rmsFactorFrom(s, x, n, eps, out);
}

bool rmsFactorFrom(double s, const float* x, int n, float eps, float* out) {
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

// ---------- hc_pre's split Sinkhorn (hc.ts splitSinkhorn) ----------

namespace {
/** hc.ts sigmoid32: fl32(1 / (1 + exp(-x))) in float64; decided when every exp within 2^-50 of libm's
 *  (V8's Math.exp is within 1 ulp) gives the same fp32 (the float64 steps are monotone in it). */
bool sigmoid32(float x, float* out) {
  const double e = std::exp(-double(x));
  if (!std::isfinite(e)) return false;
  const float lo = float(1 / (1 + (e - e * 0x1p-50))), hi = float(1 / (1 + (e + e * 0x1p-50)));
  if (lo != hi) return false;
  *out = lo;
  return true;
}

/** RN32(a*b + c) of fp32 values held in doubles (exact.ts fma32); false when one is not an fp32 value. */
bool fma32(double a, double b, double c, float* out) {
  if (double(float(a)) != a || double(float(b)) != b || double(float(c)) != c) return false;
  *out = std::fma(float(a), float(b), float(c));
  return std::isfinite(*out);
}
}  // namespace

bool splitSinkhorn(const double* m, const float* base, const float* scale, int hc, int iters, float eps, double* pre, double* post,
                   double* comb) {
  if (hc > 16) return false;
  const double e = eps;
  for (int j = 0; j < hc; j++) {
    float a, sg;
    if (!fma32(m[j], scale[0], base[j], &a) || !sigmoid32(a, &sg)) return false;
    pre[j] = float(double(sg) + e);
    if (!fma32(m[hc + j], scale[1], base[hc + j], &a) || !sigmoid32(a, &sg)) return false;
    post[j] = float(2 * double(sg));
  }
  double c[256], t[16];
  for (int i = 0; i < hc * hc; i++) {
    float a;
    if (!fma32(m[2 * hc + i], scale[2], base[2 * hc + i], &a)) return false;
    c[i] = a;
  }
  // row softmax as the kernel's elementary ops (exp, exact row sum, divide), then + eps
  for (int j = 0; j < hc; j++) {
    double mx = -INFINITY;
    for (int k = 0; k < hc; k++) mx = std::fmax(mx, c[j * hc + k]);
    for (int k = 0; k < hc; k++) {
      float x;
      if (!exp32(float(c[j * hc + k] - mx), &x)) return false;
      t[k] = x;
    }
    float sm;
    if (!sumF32(t, hc, &sm)) return false;
    for (int k = 0; k < hc; k++) c[j * hc + k] = float(double(float(t[k] / sm)) + e);
  }
  // one column normalization, then iters - 1 row + column rounds
  for (int it = 0; it < (iters > 1 ? iters : 1); it++) {
    if (it > 0) {
      for (int j = 0; j < hc; j++) {
        float sm;
        if (!sumF32(c + j * hc, hc, &sm)) return false;
        const double dv = float(double(sm) + e);
        for (int k = 0; k < hc; k++) c[j * hc + k] = float(c[j * hc + k] / dv);
      }
    }
    for (int k = 0; k < hc; k++) {
      for (int j = 0; j < hc; j++) t[j] = c[j * hc + k];
      float sm;
      if (!sumF32(t, hc, &sm)) return false;
      const double dv = float(double(sm) + e);
      for (int j = 0; j < hc; j++) c[j * hc + k] = float(c[j * hc + k] / dv);
    }
  }
  for (int i = 0; i < hc * hc; i++) comb[i] = c[i];
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

void dotsScalar(const double* q, int H, const double* const* k, int nk, int d, double* D, int ldD) {
  for (int h = 0; h < H; h++)
    for (int j = 0; j < nk; j++) {
      double s = 0;
      for (int i = 0; i < d; i++) s += q[size_t(h) * d + i] * k[j][i];
      D[size_t(h) * ldD + j] = s;
    }
}

void pvScalar(const double* p, int ldP, int H, const double* const* k, int nk, int d, const double* c, const double* acc, double* sum) {
  for (int h = 0; h < H; h++) {
    double* s = sum + size_t(h) * d;
    for (int e = 0; e < d; e++) s[e] = acc[size_t(h) * d + e] * c[h];
    for (int j = 0; j < nk; j++) {
      const double pj = p[size_t(h) * ldP + j];
      for (int e = 0; e < d; e++) s[e] += pj * k[j][e];
    }
  }
}

int settleRowsScalar(const double* sum, double* acc, double c, double pMax, double bk, int d, int* bad) {
  int nBad = 0;
  for (int e = 0; e < d; e++) {
    const double s1 = sum[e], err = (std::fabs(acc[e] * c) + pMax) * bk + std::fabs(s1) * (4 * 0x1p-53);
    const float r = float(s1);
    if (r != 0 && float(s1 - err) == r && float(s1 + err) == r) acc[e] = r;
    else bad[nBad++] = e;
  }
  return nBad;
}

void prepQScalar(const float* q, int d, double* qd, double* norm2, int* lsb) {
  double n2 = 0;
  for (int i = 0; i < d; i++) {
    qd[i] = q[i];
    n2 += qd[i] * qd[i];
  }
  *norm2 = n2;
  *lsb = minLsbExponent(q, d);
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

struct HeadState {
  float m, l;
  int qLsb;
  bool live;
  double qNorm;
};

/** This thread's working set: one block's present keys as float64 rows (stride ld, padded so the rows
 *  do not share L1 sets), all heads' q, acc and sums, and per (head, key) dots and weights. */
struct AttnScratch {
  int ld;
  double *kb, *qd, *acc, *sum, *terms, *D, *P, *c, *pMax;
  int* bad;
  uint8_t* zeroP;
  HeadState* st;
  AttnScratch(int Hs, int d) {
    thread_local std::vector<double> buf;
    thread_local std::vector<HeadState> hs;
    ld = d % 16 == 0 ? d + 8 : d;
    const size_t need = size_t(kBlock) * ld + 3 * size_t(Hs) * d + d + kBlock + 1 + 2 * size_t(kBlock) * Hs + 2 * size_t(Hs) +
                        (4 * d + Hs) / 8 + 2 + 8;
    if (buf.size() < need) buf.resize(need);
    if (hs.size() < size_t(Hs)) hs.resize(size_t(Hs));
    double* p = buf.data();
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(double);
    kb = p;
    qd = kb + size_t(kBlock) * ld;
    acc = qd + size_t(Hs) * d;
    sum = acc + size_t(Hs) * d;
    terms = sum + size_t(Hs) * d;
    D = terms + d + kBlock + 1;
    P = D + size_t(kBlock) * Hs;
    c = P + size_t(kBlock) * Hs;
    pMax = c + Hs;
    bad = reinterpret_cast<int*>(pMax + Hs);
    zeroP = reinterpret_cast<uint8_t*>(bad + d);
    st = hs.data();
  }
};

/** The block's present keys (float64 rows, norms, maxima, lsb bounds); nk of them. */
struct BlockKeys {
  const double* k[kBlock];
  double kn[kBlock], km[kBlock];
  int kl[kBlock];
  int nk;
};

/** One head's q·k for one block: s[j] = fl32(RN32(q·k_j) * scale), false when left undecided. */
bool headScores(const AttnArgs& a, AttnScratch& S, HeadState& st, int hi, const BlockKeys& B, float* s) {
  const int d = a.d;
  const double* qd = S.qd + size_t(hi) * d;
  const double* D = S.D + size_t(hi) * kBlock;
  for (int j = 0; j < B.nk; j++) {
    const double ds = D[j];
    float dot;
    // the magnitude sum is at most |q|·|k| (Cauchy-Schwarz); BF16 products often sum exactly onto
    // an fp32 midpoint, which the span certificate settles; the exact magnitude sum last
    const double tBound = st.qNorm * B.kn[j] * kUp;
    if (!settleSum(ds, tBound, d, &dot)) {
      const int lsb = sumLsb(st.qLsb, B.kl[j]);
      const double* k = B.k[j];
      if (!exactBySpan(ds, tBound, lsb, &dot)) {
        double dt = 0;
        for (int i = 0; i < d; i++) dt += std::fabs(qd[i] * k[i]);
        if (!exactBySpan(ds, dt, lsb, &dot) && !settleSum(ds, dt, d, &dot)) {
          for (int i = 0; i < d; i++) S.terms[i] = qd[i] * k[i];
          if (!sumToF32(S.terms, d, 1, &dot)) return false;
        }
      }
    }
    s[j] = float(double(dot) * double(a.scale));
    if (!std::isfinite(s[j])) return false;
  }
  return true;
}

/** One head's softmax step for one block (attention.ts sparseAttnHead): the new max, the rescale c, the
 *  BF16 weights into S.P and the running sum l; false when left undecided. */
bool headWeights(AttnScratch& S, HeadState& st, int hi, const BlockKeys& B, const float* s) {
  float mNew = st.m;
  for (int j = 0; j < B.nk; j++) mNew = s[j] > mNew ? s[j] : mNew;
  if (mNew == -INFINITY) return false;  // the reference's NaN path (a leading all-masked block)
  float c;
  if (!exp32(float(double(st.m) - double(mNew)), &c)) return false;
  double* terms = S.terms;
  double* P = S.P + size_t(hi) * kBlock;
  terms[0] = double(st.l) * c;
  double pMax = 0;
  bool zeroP = false;
  for (int j = 0; j < B.nk; j++) {
    float p;
    if (!exp32(float(double(s[j]) - double(mNew)), &p)) return false;
    terms[1 + j] = p;
    P[j] = roundBf16(p);
    pMax += P[j] * B.km[j];
    zeroP = zeroP || P[j] == 0;
  }
  S.zeroP[hi] = zeroP;
  // masked slots add exact zeros to l (a non-negative sum): leaving them out gives the same value
  if (!sumF32(terms, B.nk + 1, &st.l)) return false;
  st.m = mNew;
  S.c[hi] = c;
  // the PV magnitude sum is at most |acc*c| + Σ bf16(p)·max|v|
  S.pMax[hi] = pMax * kUp;
  return true;
}

/** acc = fl32(acc*c + Σ bf16(p)·v) per dim of one head from its float64 sums; false when left undecided. */
bool headAccumulate(const AttnLoops& L, AttnScratch& S, int hi, const BlockKeys& B, int d, int nb) {
  double* acc = S.acc + size_t(hi) * d;
  double* sum = S.sum + size_t(hi) * d;
  const double* P = S.P + size_t(hi) * kBlock;
  const double c = S.c[hi], pMax = S.pMax[hi];
  const int nBad = L.settleRows(sum, acc, c, pMax, (nb + 3) * 0x1p-53 * 1.01 * kUp * kUp, d, S.bad);
  if (nBad == 0) return true;
  // every PV term is a multiple of 2^spanLsb: lsb(acc) + lsb(c), lsb(p) + lsb(key)
  int spanLsb = INT_MAX;
  for (int j = 0; j < B.nk; j++) {
    if (P[j] == 0) continue;
    const int lj = sumLsb(lsbExponent(float(P[j])), B.kl[j]);
    spanLsb = lj < spanLsb ? lj : spanLsb;
  }
  const int lc = lsbExponent(float(c));
  double* terms = S.terms;
  for (int b = 0; b < nBad; b++) {
    const int e = S.bad[b];
    const double ac = acc[e] * c;  // acc[e] still holds the old value here
    // the reference's sum leaves out keys of zero weight: 0·v terms change a zero's sign or, for an
    // infinite v, the value; then the sum again in its order
    double s = sum[e];
    if (S.zeroP[hi]) {
      s = ac;
      for (int j = 0; j < B.nk; j++)
        if (P[j] != 0) s += P[j] * B.k[j][e];
    }
    const int le = sumLsb(lsbExponent(float(acc[e])), lc), span = le < spanLsb ? le : spanLsb;
    float r;
    if (exactBySpan(s, (std::fabs(ac) + pMax) * kUp, span, &r)) {
      acc[e] = r;
      continue;
    }
    double t = std::fabs(ac);
    int na = 0;
    for (int j = 0; j < B.nk; j++) {
      if (P[j] == 0) continue;
      t += P[j] * std::fabs(B.k[j][e]);
      terms[1 + na++] = P[j] * B.k[j][e];
    }
    if (!exactBySpan(s, t, span, &r) && !settleSum(s, t, nb + 1, &r)) {
      terms[0] = ac;
      if (!sumToF32(terms, na + 1, 1, &r)) return false;
    }
    acc[e] = r;
  }
  return true;
}
}  // namespace

const AttnLoops& scalarAttnLoops() {
  static const AttnLoops L{cvtScalar, dotsScalar, pvScalar, settleRowsScalar, prepQScalar, finishScalar};
  return L;
}

void attnHeads(const AttnArgs& a, const AttnLoops& L, int h0, int h1) {
  const int d = a.d, Hs = h1 - h0;
  if (Hs <= 0) return;
  AttnScratch S(Hs, d);
  HeadState* st = S.st;
  for (int hi = 0; hi < Hs; hi++) {
    double n2;
    int qLsb;
    L.prepQ(a.q + size_t(h0 + hi) * d, d, S.qd + size_t(hi) * d, &n2, &qLsb);
    std::fill(S.acc + size_t(hi) * d, S.acc + size_t(hi) * d + d, 0.0);
    // a non-finite query is left to the reference
    st[hi] = HeadState{-INFINITY, 0, qLsb, std::isfinite(n2), std::sqrt(n2 * kUp) * kUp};
  }
  BlockKeys B;
  float s[kBlock];
  for (int b0 = 0; b0 < a.n; b0 += kBlock) {
    const int nb = a.n - b0 < kBlock ? a.n - b0 : kBlock;
    // the block's present keys once as float64 for all of this thread's heads
    B.nk = 0;
    for (int j = 0; j < nb; j++) {
      if (!a.keys[b0 + j]) continue;
      double* k = S.kb + size_t(B.nk) * S.ld;
      L.cvt(a.keys[b0 + j], d, k, &B.kn[B.nk], &B.km[B.nk], &B.kl[B.nk]);
      B.kn[B.nk] = std::sqrt(B.kn[B.nk] * kUp) * kUp;
      B.k[B.nk++] = k;
    }
    // q·k for all heads and keys (a register-tiled product), then each head's softmax step
    if (B.nk) L.dots(S.qd, Hs, B.k, B.nk, d, S.D, kBlock);
    bool any = false;
    for (int hi = 0; hi < Hs; hi++) {
      HeadState& h = st[hi];
      if (h.live) h.live = headScores(a, S, h, hi, B, s) && headWeights(S, h, hi, B, s);
      if (!h.live) {
        // a head left to the reference still runs through the products: zero weights
        S.c[hi] = 0;
        std::fill(S.P + size_t(hi) * kBlock, S.P + size_t(hi) * kBlock + B.nk, 0.0);
        std::fill(S.acc + size_t(hi) * d, S.acc + size_t(hi) * d + d, 0.0);
      }
      any = any || h.live;
    }
    if (!any) break;
    // sum = acc*c + Σ bf16(p)·v for all heads (keys in order), then each head's exact fp32 update
    L.pv(S.P, kBlock, Hs, B.k, B.nk, d, S.c, S.acc, S.sum);
    for (int hi = 0; hi < Hs; hi++)
      if (st[hi].live) st[hi].live = headAccumulate(L, S, hi, B, d, nb);
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
