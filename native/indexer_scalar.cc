// Lightning-indexer scores (spec §3.5, model/indexer.ts), portable versions and the parts the
// AVX2 versions share. Two key forms: float keys (the general path, float64 products
// settled by error bounds) and compact FP4 keys (src/tensor/fp4-rows.ts), described here.
// Compact form: keys and queries are fake-FP4 values:
// per block of 32, integer codes c in [-12, 12] times a power-of-two unit. A head's
// dot q.k is then Σ_blocks (integer code dot) * u_q * u_k: every block term is exact in
// float64, and so is their sum when the blocks' unit exponents span <= 40 - log2(blocks)
// (terms < 2^13 units each), so float(sum) is RN32 of the exact dot as the reference's.
// The rest follows model/indexer.ts: bf16, relu, * head weight, fp32, bf16, exact sum
// over heads (float64, certified by the magnitude bound below), fp32, bf16.
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace dsv4 {

static int exponentOf(double v) {  // floor(log2|v|) for finite nonzero v of fp32 range (a normal double)
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return int((b >> 52) & 0x7ff) - 1023;
}

bool indexerFp4PrepareQuery(const float* q, const float* hw, int H, int d, int8_t* qc, double* qu, int32_t* qcorr, int* qRange) {
  if (d % 32 != 0 || H <= 0) return false;
  const int nb = d / 32;
  int range = 0;
  for (int h = 0; h < H; h++) {
    if (!std::isfinite(hw[h])) return false;
    int lo = INT_MAX, hi = INT_MIN;
    for (int b = 0; b < nb; b++) {
      const float* v = q + size_t(h) * d + b * 32;
      int8_t* c = qc + size_t(h) * d + b * 32;
      float m = 0;
      for (int j = 0; j < 32; j++) {
        const float a = std::fabs(v[j]);
        if (!(a <= m)) m = a;
      }
      if (!std::isfinite(m)) return false;
      int32_t sum = 0;
      if (m == 0) {
        std::memset(c, 0, 32);
        qu[h * nb + b] = 0;
      } else {
        const int e = exponentOf(m) - 3;
        const double inv = std::ldexp(1.0, -e);
        for (int j = 0; j < 32; j++) {
          const double x = double(v[j]) * inv;
          if (x != std::trunc(x) || x > 12 || x < -12) return false;
          c[j] = int8_t(x);
          sum += c[j];
        }
        qu[h * nb + b] = std::ldexp(1.0, e);
        if (e < lo) lo = e;
        if (e > hi) hi = e;
      }
      qcorr[h * nb + b] = 12 * sum;
    }
    if (hi != INT_MIN && hi - lo > range) range = hi - lo;
  }
  *qRange = range;
  return true;
}

int indexerFp4RangeLimit(int d) {
  int lg = 0;
  while ((1 << lg) < d / 32) lg++;
  return 40 - lg;
}

bool indexerFp4KeyOk(const IndexerFp4Args& a, int t) {
  if (!a.exact[t]) return false;
  const int nb = a.d / 32;
  const float* u = a.units + size_t(t) * nb;
  int lo = INT_MAX, hi = INT_MIN;
  for (int b = 0; b < nb; b++) {
    if (u[b] == 0) continue;
    const int e = exponentOf(u[b]);
    if (e < lo) lo = e;
    if (e > hi) hi = e;
  }
  return hi == INT_MIN || a.qRange + (hi - lo) <= a.rangeLimit;
}

bool indexerFp4Finish(const float* hw, int H, const double* dots, float* score) {
  double ss = 0, sa = 0, mn = INFINITY;
  for (int h = 0; h < H; h++) {
    const float s = roundBf16(float(dots[h]));
    const float r = s > 0 ? s : 0.0f;
    const double term = roundBf16(float(double(r) * double(hw[h])));
    ss += term;
    const double at = std::fabs(term);
    sa += at;
    if (at != 0 && at < mn) mn = at;
  }
  // terms are BF16 (multiples of 2^(e_min - 7)): the float64 sum is exact below 2^(e_min + 46)
  if (!(sa < mn * 0x1p45)) return false;
  *score = roundBf16(float(ss));
  return true;
}

// ---------- float keys (queries or keys not in compact form) ----------

/** The per-entry tail shared by both implementations: heads' dots -> score. */
bool indexerFinish(const IndexerArgs& a, const double* dotS, const double* dotT, const int* lsb, float* score) {
  double ss = 0, st = 0;
  float terms[512];
  for (int h = 0; h < a.H; h++) {
    float dot;
    if (!settleExactF32(dotS[h], dotT[h], a.d, lsb[h], &dot)) return false;
    const float s = roundBf16(dot);
    const float term = roundBf16(float(double(s > 0 ? s : 0.0f) * double(a.hw[h])));
    terms[h] = term;
    ss += term;
    st += std::fabs(double(term));
  }
  float sum;
  if (!settleExactF32(ss, st, a.H, minLsbExponent(terms, a.H), &sum)) return false;
  *score = roundBf16(sum);
  return true;
}

namespace scalar {

void indexerScores(const IndexerArgs& a, int t0, int t1) {
  double ds[512], dt[512];
  int lsb[512], qlsb[512];
  for (int h = 0; h < a.H; h++) qlsb[h] = minLsbExponent(a.q + size_t(h) * a.d, a.d);
  for (int t = t0; t < t1; t++) {
    const float* k = a.keys + size_t(t) * a.d;
    const int klsb = minLsbExponent(k, a.d);
    for (int h = 0; h < a.H; h++) {
      lsb[h] = productLsb(qlsb[h], klsb);
      double s = 0, m = 0;
      for (int j = 0; j < a.d; j++) {
        const double p = double(a.q[h * a.d + j]) * double(k[j]);
        s += p;
        m += std::fabs(p);
      }
      ds[h] = s;
      dt[h] = m;
    }
    a.amb[t] = indexerFinish(a, ds, dt, lsb, &a.scores[t]) ? 0 : 1;
  }
}

void indexerScoresFp4(const IndexerFp4Args& a, int t0, int t1) {
  const int H = a.H, d = a.d, nb = d / 32;
  double dots[512];
  for (int t = t0; t < t1; t++) {
    if (!indexerFp4KeyOk(a, t)) {
      a.amb[t] = 1;
      continue;
    }
    // rows interleaved per group of 8 by 4-code chunks (src/tensor/fp4-rows.ts codeIndex)
    const uint8_t* k = a.codes + size_t(t - t % 8) * d + (t % 8) * 4;
    const float* ku = a.units + size_t(t) * nb;
    for (int h = 0; h < H; h++) {
      const int8_t* q = a.qc + size_t(h) * d;
      double s = 0;
      for (int b = 0; b < nb; b++) {
        int32_t dot = 0;
        for (int j = b * 32; j < b * 32 + 32; j++) dot += int32_t(k[(j >> 2) * 32 + (j & 3)]) * q[j];
        s += double(dot - a.qcorr[h * nb + b]) * a.qu[h * nb + b] * double(ku[b]);
      }
      dots[h] = s;
    }
    a.amb[t] = indexerFp4Finish(a.hw, H, dots, &a.scores[t]) ? 0 : 1;
  }
}

}  // namespace scalar
}  // namespace dsv4
