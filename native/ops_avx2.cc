// AVX2 + FMA inner loops of the decode-path operations (ops.h); the drivers and
// the exactness decisions are the portable ones in ops_scalar.cc. Products of
// fp32/BF16 operands are exact in float64, so any summation order gives a valid
// float64 sum for the same error-bound check.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "bf16_round8.h"
#include "kernels.h"  // roundBf16
#include "ops.h"

namespace dsv4 {
namespace ops {
namespace avx2 {

namespace {

inline double hsum(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

inline __m256d absPd(__m256d v) { return _mm256_and_pd(v, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL))); }

/** 8 BF16 values -> two float64 quadruples. */
inline void bf16x8(const uint16_t* p, __m256d& lo, __m256d& hi) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256 f = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
  lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
  hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
}

// a BF16 key (d a multiple of 16) to float64, with Σk², max|k| and the lsb bound of bf16LsbBound
void cvtBf16(const uint16_t* k, int d, double* out, double* norm2, double* maxAbs, int* lsb) {
  __m256d n0 = _mm256_setzero_pd(), n1 = n0, m0 = n0, m1 = n0;
  __m256i emin = _mm256_set1_epi32(256);
  const __m256i e255 = _mm256_set1_epi32(0xff), mag = _mm256_set1_epi32(0x7fff), big = _mm256_set1_epi32(256);
  for (int i = 0; i < d; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    const __m256 f = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    _mm256_storeu_pd(out + i, lo);
    _mm256_storeu_pd(out + i + 4, hi);
    n0 = _mm256_fmadd_pd(lo, lo, n0);
    n1 = _mm256_fmadd_pd(hi, hi, n1);
    m0 = _mm256_max_pd(m0, absPd(lo));
    m1 = _mm256_max_pd(m1, absPd(hi));
    // exponent fields of the nonzero values (zeros count as 256)
    const __m256i e = _mm256_and_si256(_mm256_srli_epi32(v, 7), e255);
    const __m256i isZero = _mm256_cmpeq_epi32(_mm256_and_si256(v, mag), _mm256_setzero_si256());
    emin = _mm256_min_epi32(emin, _mm256_blendv_epi8(e, big, isZero));
  }
  *norm2 = hsum(_mm256_add_pd(n0, n1));
  alignas(32) double mx[4];
  _mm256_store_pd(mx, _mm256_max_pd(m0, m1));
  *maxAbs = std::fmax(std::fmax(mx[0], mx[1]), std::fmax(mx[2], mx[3]));
  alignas(32) int32_t em[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(em), emin);
  int e = 256;
  for (int i = 0; i < 8; i++) e = em[i] < e ? em[i] : e;
  *lsb = e == 256 ? INT_MAX : (e == 0 ? 1 : e) - 134;
}

// D[h*ldD + r] += q_h·k_r for RH heads (rows of q, stride ld) x RK keys (d a multiple of 4): 12 accumulators
// at most, each key and q vector loaded once per tile
template <int RH, int RK>
inline void dotsTile(const double* q, int ld, const double* const* k, int d, double* D, int ldD) {
  __m256d s[RH][RK];
  for (int h = 0; h < RH; h++)
    for (int r = 0; r < RK; r++) s[h][r] = _mm256_setzero_pd();
  for (int i = 0; i < d; i += 4) {
    __m256d kv[RK];
    for (int r = 0; r < RK; r++) kv[r] = _mm256_loadu_pd(k[r] + i);
    for (int h = 0; h < RH; h++) {
      const __m256d qv = _mm256_loadu_pd(q + size_t(h) * ld + i);
      for (int r = 0; r < RK; r++) s[h][r] = _mm256_fmadd_pd(qv, kv[r], s[h][r]);
    }
  }
  for (int h = 0; h < RH; h++)
    for (int r = 0; r < RK; r++) D[size_t(h) * ldD + r] += hsum(s[h][r]);
}

template <int RH>
inline void dotsHeads(const double* q, int ld, const double* const* k, int nk, int d, double* D, int ldD) {
  int j = 0;
  for (; j + 3 <= nk; j += 3) dotsTile<RH, 3>(q, ld, k + j, d, D + j, ldD);
  if (nk - j == 2) dotsTile<RH, 2>(q, ld, k + j, d, D + j, ldD);
  else if (nk - j == 1) dotsTile<RH, 1>(q, ld, k + j, d, D + j, ldD);
}

/** D[h*ldD + j] += q_h·k_j for h < H (q rows of stride ld), j < nk: 4-row tiles of q stay in L1 while
 *  the k rows stream from L2. */
void dotsAdd(const double* q, int ld, int H, const double* const* k, int nk, int d, double* D, int ldD) {
  int h = 0;
  for (; h + 4 <= H; h += 4) dotsHeads<4>(q + size_t(h) * ld, ld, k, nk, d, D + size_t(h) * ldD, ldD);
  if (H - h == 3) dotsHeads<3>(q + size_t(h) * ld, ld, k, nk, d, D + size_t(h) * ldD, ldD);
  else if (H - h == 2) dotsHeads<2>(q + size_t(h) * ld, ld, k, nk, d, D + size_t(h) * ldD, ldD);
  else if (H - h == 1) dotsHeads<1>(q + size_t(h) * ld, ld, k, nk, d, D + size_t(h) * ldD, ldD);
}

void dotsF64(const double* q, int H, const double* const* k, int nk, int d, double* D, int ldD) {
  for (int h = 0; h < H; h++) std::fill(D + size_t(h) * ldD, D + size_t(h) * ldD + nk, 0.0);
  dotsAdd(q, d, H, k, nk, d, D, ldD);
}

// 4*NV dims of RH heads: sum = acc*c + Σ_j p_j k_j, keys in order (RH*NV <= 12 accumulators)
template <int RH, int NV>
inline void pvTile(const double* p, int ldP, const double* const* k, int nk, int d, const double* c, const double* acc, double* sum,
                   int e) {
  __m256d s[RH][NV];
#pragma GCC unroll 4
  for (int h = 0; h < RH; h++) {
    const __m256d C = _mm256_set1_pd(c[h]);
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) s[h][v] = _mm256_mul_pd(_mm256_loadu_pd(acc + size_t(h) * d + e + 4 * v), C);
  }
  // fully unrolled so that the accumulators stay in registers (GCC otherwise kept them on the stack,
  // a store and reload in every FMA chain step)
  for (int j = 0; j < nk; j++) {
    __m256d kv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) kv[v] = _mm256_loadu_pd(k[j] + e + 4 * v);
#pragma GCC unroll 4
    for (int h = 0; h < RH; h++) {
      const __m256d P = _mm256_broadcast_sd(p + size_t(h) * ldP + j);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) s[h][v] = _mm256_fmadd_pd(P, kv[v], s[h][v]);
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < RH; h++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) _mm256_storeu_pd(sum + size_t(h) * d + e + 4 * v, s[h][v]);
}

template <int NV>
inline void pvChunk(const double* p, int ldP, int H, const double* const* k, int nk, int d, const double* c, const double* acc,
                    double* sum, int e) {
  int h = 0;
  for (; h + 4 <= H; h += 4) pvTile<4, NV>(p + size_t(h) * ldP, ldP, k, nk, d, c + h, acc + size_t(h) * d, sum + size_t(h) * d, e);
  if (H - h == 3) pvTile<3, NV>(p + size_t(h) * ldP, ldP, k, nk, d, c + h, acc + size_t(h) * d, sum + size_t(h) * d, e);
  else if (H - h == 2) pvTile<2, NV>(p + size_t(h) * ldP, ldP, k, nk, d, c + h, acc + size_t(h) * d, sum + size_t(h) * d, e);
  else if (H - h == 1) pvTile<1, NV>(p + size_t(h) * ldP, ldP, k, nk, d, c + h, acc + size_t(h) * d, sum + size_t(h) * d, e);
}

// d a multiple of 4; per 8 dims (one cache line of each key row) the keys stay in L1 for all head tiles
// (measured: 4 heads x 8 dims ahead of 2 x 16 and 4 x 12)
void pvF64(const double* p, int ldP, int H, const double* const* k, int nk, int d, const double* c, const double* acc, double* sum) {
  int e = 0;
  for (; e + 8 <= d; e += 8) pvChunk<2>(p, ldP, H, k, nk, d, c, acc, sum, e);
  if (e < d) pvChunk<1>(p, ldP, H, k, nk, d, c, acc, sum, e);
}

// settleRowsScalar 4 dims at a time (d a multiple of 4)
int settleRowsAvx2(const double* sum, double* acc, double c, double pMax, double bk, int d, int* bad) {
  const __m256d C = _mm256_set1_pd(c), P = _mm256_set1_pd(pMax), B = _mm256_set1_pd(bk), u4 = _mm256_set1_pd(4 * 0x1p-53);
  int nBad = 0;
  for (int e = 0; e < d; e += 4) {
    const __m256d s = _mm256_loadu_pd(sum + e), a = _mm256_loadu_pd(acc + e);
    const __m256d err = _mm256_add_pd(_mm256_mul_pd(_mm256_add_pd(absPd(_mm256_mul_pd(a, C)), P), B), _mm256_mul_pd(absPd(s), u4));
    const __m128 r = _mm256_cvtpd_ps(s);
    const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(s, err)), hi = _mm256_cvtpd_ps(_mm256_add_pd(s, err));
    const __m128 good = _mm_and_ps(_mm_and_ps(_mm_cmpeq_ps(lo, r), _mm_cmpeq_ps(hi, r)), _mm_cmpneq_ps(r, _mm_setzero_ps()));
    const __m256d g = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(good)));
    _mm256_storeu_pd(acc + e, _mm256_blendv_pd(a, _mm256_cvtps_pd(r), g));
    for (int m = _mm_movemask_ps(good) ^ 15; m; m &= m - 1) bad[nBad++] = e + __builtin_ctz(unsigned(m));
  }
  return nBad;
}

// a query row (d a multiple of 8) to float64, Σq² and the exact min lsb exponent: the lowest set bit
// of the significand isolated (x & -x) and read off its float conversion's exponent
void prepQAvx2(const float* q, int d, double* qd, double* norm2, int* lsb) {
  __m256d n0 = _mm256_setzero_pd(), n1 = n0;
  const __m256i ff = _mm256_set1_epi32(0xff), man = _mm256_set1_epi32(0x7fffff), hidden = _mm256_set1_epi32(0x800000);
  const __m256i zero = _mm256_setzero_si256(), big = _mm256_set1_epi32(INT_MAX), k150 = _mm256_set1_epi32(150);
  __m256i mn = big, special = zero;
  for (int i = 0; i < d; i += 8) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i));
    const __m256 f = _mm256_castsi256_ps(u);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    _mm256_storeu_pd(qd + i, lo);
    _mm256_storeu_pd(qd + i + 4, hi);
    n0 = _mm256_fmadd_pd(lo, lo, n0);
    n1 = _mm256_fmadd_pd(hi, hi, n1);
    const __m256i e = _mm256_and_si256(_mm256_srli_epi32(u, 23), ff), m = _mm256_and_si256(u, man);
    special = _mm256_or_si256(special, _mm256_cmpeq_epi32(e, ff));
    const __m256i sub = _mm256_cmpeq_epi32(e, zero);
    // normal: lsb = e - 150 + ctz(m | 2^23); subnormal: -149 + ctz(m), i.e. the same with e = 1
    const __m256i x = _mm256_or_si256(m, _mm256_andnot_si256(sub, hidden));
    const __m256i low = _mm256_and_si256(x, _mm256_sub_epi32(zero, x));
    const __m256i ctz = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(low)), 23), _mm256_set1_epi32(127));
    const __m256i eff = _mm256_max_epi32(e, _mm256_set1_epi32(1));
    const __m256i l = _mm256_add_epi32(_mm256_sub_epi32(eff, k150), ctz);
    // zeros (x == 0) do not count
    mn = _mm256_min_epi32(mn, _mm256_blendv_epi8(l, big, _mm256_cmpeq_epi32(x, zero)));
  }
  *norm2 = hsum(_mm256_add_pd(n0, n1));
  if (!_mm256_testz_si256(special, special)) {
    *lsb = INT_MIN;
    return;
  }
  alignas(32) int32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), mn);
  int r = INT_MAX;
  for (int i = 0; i < 8; i++) r = v[i] < r ? v[i] : r;
  *lsb = r;
}

// finishScalar 4 dims at a time: the division in float64, one rounding to fp32, then RNE to BF16
// (inf/NaN kept as they are, as roundBf16)
void finishAvx2(const double* acc, double l, int d, float* out) {
  const __m256d L = _mm256_set1_pd(l);
  const __m128i expMask = _mm_set1_epi32(0x7f800000), rnd = _mm_set1_epi32(0x7fff), one = _mm_set1_epi32(1);
  const __m128i keep = _mm_set1_epi32(int(0xffff0000u));
  for (int e = 0; e < d; e += 4) {
    const __m128i u = _mm_castps_si128(_mm256_cvtpd_ps(_mm256_div_pd(_mm256_loadu_pd(acc + e), L)));
    const __m128i r = _mm_and_si128(_mm_add_epi32(_mm_add_epi32(u, rnd), _mm_and_si128(_mm_srli_epi32(u, 16), one)), keep);
    const __m128i special = _mm_cmpeq_epi32(_mm_and_si128(u, expMask), expMask);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + e), _mm_blendv_epi8(r, u, special));
  }
}

}  // namespace

const AttnLoops& attnLoops() {
  static const AttnLoops L{cvtBf16, dotsF64, pvF64, settleRowsAvx2, prepQAvx2, finishAvx2};
  return L;
}

void dotF64(const float* a, const float* b, int n, double* s, double* t) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, t0 = s0, t1 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(a + i), y = _mm256_loadu_ps(b + i);
    const __m256d p0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
    const __m256d p1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
    s0 = _mm256_add_pd(s0, p0);
    s1 = _mm256_add_pd(s1, p1);
    t0 = _mm256_add_pd(t0, absPd(p0));
    t1 = _mm256_add_pd(t1, absPd(p1));
  }
  double ss = hsum(_mm256_add_pd(s0, s1)), tt = hsum(_mm256_add_pd(t0, t1));
  for (; i < n; i++) {
    const double p = double(a[i]) * b[i];
    ss += p;
    tt += std::fabs(p);
  }
  *s = ss;
  *t = tt;
}

bool actQuantRow(const float* x, int cols, uint8_t* q, float* scale) {
  const float inv = float(1.0 / 448), amin = float(1e-4);
  const __m256i expMask = _mm256_set1_epi32(0x7f800000), magMask = _mm256_set1_epi32(0x7fffffff);
  const __m256i rnd = _mm256_set1_epi32(0x7ffff), one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(960);
  const __m256i subLim = _mm256_set1_epi32(0x3c800000);  // 2^-6: below it, e4m3 subnormal codes
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256 lim = _mm256_set1_ps(448), nlim = _mm256_set1_ps(-448), k512 = _mm256_set1_ps(512);
  for (int b = 0; b < cols / 128; b++) {
    const float* xb = x + b * 128;
    __m256i inf = _mm256_setzero_si256();
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 128; i += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + i));
      inf = _mm256_or_si256(inf, _mm256_cmpeq_epi32(_mm256_and_si256(v, expMask), expMask));
      amax = _mm256_max_ps(amax, _mm256_castsi256_ps(_mm256_and_si256(v, magMask)));
    }
    if (!_mm256_testz_si256(inf, inf)) return false;
    alignas(32) float am[8];
    _mm256_store_ps(am, amax);
    float a = 0;
    for (int i = 0; i < 8; i++) a = am[i] > a ? am[i] : a;
    const float v = float(double(a > amin ? a : amin) * double(inv));
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    const int e = int((bits >> 23) & 0xff) - 127 + ((bits & 0x7fffff) != 0 ? 1 : 0);
    scale[b] = std::ldexp(1.0f, e);
    // x / 2^e == x * 2^-e exactly rounded (2^-e is an fp32 normal for e in [-22, 120])
    const __m256 rs = _mm256_set1_ps(std::ldexp(1.0f, -e));
    for (int i = 0; i < 128; i += 32) {
      __m256i c[4];
      for (int g = 0; g < 4; g++) {
        __m256 y = _mm256_mul_ps(_mm256_loadu_ps(xb + i + 8 * g), rs);
        y = _mm256_min_ps(_mm256_max_ps(y, nlim), lim);
        const __m256i yb = _mm256_castps_si256(y);
        const __m256i mag = _mm256_and_si256(yb, magMask);
        const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(yb, 24), _mm256_set1_epi32(0x80));
        // normal codes: RNE of the mantissa to 3 bits, carry into the exponent
        const __m256i r = _mm256_add_epi32(_mm256_add_epi32(mag, rnd), _mm256_and_si256(_mm256_srli_epi32(mag, 20), one));
        const __m256i nrm = _mm256_sub_epi32(_mm256_srli_epi32(r, 20), bias);
        // subnormal codes: RNE(|y| * 512), exact scaling
        const __m256 ys = _mm256_mul_ps(_mm256_castsi256_ps(mag), k512);
        const __m256i sub = _mm256_cvtps_epi32(_mm256_round_ps(ys, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m256i isSub = _mm256_cmpgt_epi32(subLim, mag);
        c[g] = _mm256_or_si256(_mm256_blendv_epi8(nrm, sub, isSub), sign);
      }
      const __m256i b8 = _mm256_packus_epi16(_mm256_packus_epi32(c[0], c[1]), _mm256_packus_epi32(c[2], c[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 128 + i), _mm256_permutevar8x32_epi32(b8, order));
    }
  }
  return true;
}

bool hcCombine(const double* coef, int cs, const float* x, int dim, int hc, const float* addend, float pk, float* y) {
  // fl32(coef * x) is one fp32 multiply when coef is an fp32 value (hc.ts computes them so)
  float cf[16];
  for (int j = 0; j < hc; j++) {
    cf[j] = float(coef[j * cs]);
    if (double(cf[j]) != coef[j * cs]) return false;
  }
  // the streams' products summed in float64 (4 lanes x 2, stream order). Exact where every nonzero product's
  // exponent field lies within 29 - ceil(log2 hc) of the largest (24 significant bits plus that span plus the
  // carries fit in 53; (m - 1) >> 23 keys a term's lsb conservatively: subnormals as field 0, zeros out); then
  // r = RN32(s) is the answer, ties included. Else the error is at most (hc-1)u Σ|p| <= hc² u max|p|: where s ±
  // that rounds to one fp32 value r != 0 it is the answer; other lanes go one by one
  int logHc = 0;
  while ((1 << logHc) < hc) logHc++;
  const __m256i spanLimit = _mm256_set1_epi32(30 - logHc), absBits = _mm256_set1_epi32(0x7fffffff), one = _mm256_set1_epi32(1);
  const __m256d bound = _mm256_set1_pd(double(hc) * hc * 0x1p-53 * 1.01), u4 = _mm256_set1_pd(4 * 0x1p-53);
  const __m256d inf = _mm256_set1_pd(INFINITY);
  const __m256 PK = _mm256_set1_ps(pk);
  int d = 0;
  for (; d + 8 <= dim; d += 8) {
    __m256i eMax = _mm256_setzero_si256(), eMin = _mm256_set1_epi32(511);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    for (int j = 0; j < hc; j++) {
      const __m256 p = _mm256_mul_ps(_mm256_set1_ps(cf[j]), _mm256_loadu_ps(x + size_t(j) * dim + d));
      const __m256i m = _mm256_and_si256(_mm256_castps_si256(p), absBits);
      eMax = _mm256_max_epu32(eMax, _mm256_srli_epi32(m, 23));
      eMin = _mm256_min_epu32(eMin, _mm256_srli_epi32(_mm256_sub_epi32(m, one), 23));
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    int good = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(spanLimit, _mm256_sub_epi32(eMax, eMin))));
    const __m256 mx = _mm256_castsi256_ps(_mm256_slli_epi32(eMax, 23));  // 2^(field-127) >= max|p| / 2
    __m128 r[2];
    const __m256d sh[2] = {s0, s1};
    for (int h = 0; h < 2; h++) {
      const __m256d sv = sh[h];
      r[h] = _mm256_cvtpd_ps(sv);
      const int finite = _mm256_movemask_pd(_mm256_cmp_pd(absPd(sv), inf, _CMP_LT_OQ));
      const int lanes = (good >> (4 * h)) & 15;
      if (lanes != 15) {
        const __m256d half = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(mx, 1) : _mm256_castps256_ps128(mx));
        const __m256d m = _mm256_add_pd(half, half);  // >= max|p|
        const __m256d e = _mm256_add_pd(_mm256_mul_pd(m, bound), _mm256_mul_pd(absPd(sv), u4));
        const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(sv, e)), hi = _mm256_cvtpd_ps(_mm256_add_pd(sv, e));
        const __m128 ok = _mm_and_ps(_mm_and_ps(_mm_cmpeq_ps(lo, r[h]), _mm_cmpeq_ps(hi, r[h])), _mm_cmpneq_ps(r[h], _mm_setzero_ps()));
        good |= _mm_movemask_ps(ok) << (4 * h);
      }
      good &= ~((finite ^ 15) << (4 * h));
    }
    __m256 v = _mm256_set_m128(r[1], r[0]);
    if (addend) v = _mm256_add_ps(_mm256_mul_ps(PK, _mm256_loadu_ps(addend + d)), v);
    _mm256_storeu_ps(y + d, bf16Round8(v));
    for (int m = good ^ 0xff; m; m &= m - 1) {
      const int i = d + __builtin_ctz(unsigned(m));
      float t;
      if (!ops::streamSum(coef, cs, x + i, dim, hc, &t)) return false;
      y[i] = roundBf16(addend ? float(double(float(double(pk) * addend[i])) + double(t)) : t);
    }
  }
  for (; d < dim; d++) {
    float t;
    if (!ops::streamSum(coef, cs, x + d, dim, hc, &t)) return false;
    y[d] = roundBf16(addend ? float(double(float(double(pk) * addend[d])) + double(t)) : t);
  }
  return true;
}

// ---- RMS factor, RMSNorm rows and the hc mixes product ----

bool rmsFactor(const float* x, int n, float eps, float* out) {
  // fl32(x²) is one fp32 multiply; the positive terms' float64 sum in 4 lanes x 2 chains
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i), sq = _mm256_mul_ps(v, v);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double s = hsum(_mm256_add_pd(a0, a1));
  for (; i < n; i++) s += float(double(x[i]) * x[i]);
  return ops::rmsFactorFrom(s, x, n, eps, out);
}

bool rmsNormRow(const float* x, int n, const float* w, float eps, float* y) {
  float r;
  if (!rmsFactor(x, n, eps, &r)) return false;
  // fl32(w * fl32(x * r)): two fp32 multiplies, then BF16
  const __m256 R = _mm256_set1_ps(r);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, bf16Round8(_mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), R))));
  for (; i < n; i++) y[i] = roundBf16(float(double(w[i]) * double(float(double(x[i]) * r))));
  return true;
}

namespace {
constexpr int kMixChunk = 1024;  // columns per pass: the fn chunk (24 rows: 192 KB) stays in L2 for all rows

constexpr int kMixLd = kMixChunk + 8;  // row stride of the float64 chunks: rows in different L1 sets

/** fp32 [n] (n a multiple of 4) -> float64, returning Σ fl32(v²) (a float64 sum: rmsFactorFrom's input). */
double toF64(const float* v, int n, double* out) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 f = _mm256_loadu_ps(v + i), sq = _mm256_mul_ps(f, f);
    _mm256_storeu_pd(out + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
    _mm256_storeu_pd(out + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  if (i < n) {
    const __m128 f = _mm_loadu_ps(v + i);
    _mm256_storeu_pd(out + i, _mm256_cvtps_pd(f));
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_mul_ps(f, f)));
  }
  return hsum(_mm256_add_pd(a0, a1));
}
}  // namespace

bool rmsDotsRows(const float* x, int R, int F, const float* fn, int O, float eps, double* out) {
  if (R <= 0 || O <= 0) return true;
  thread_local std::vector<double> buf;
  const size_t need = size_t(O) * kMixLd + 4 * size_t(kMixLd) + size_t(R) * O + size_t(R) + size_t(O) + 8;
  if (buf.size() < need) buf.resize(need);
  double* fd = buf.data();                    // fn's chunk as float64 [O, kMixLd]
  double* xd = fd + size_t(O) * kMixLd;       // 4 rows' chunk
  double* acc = xd + 4 * size_t(kMixLd);      // [R, O] float64 sums
  double* xn = acc + size_t(R) * O;           // Σ fl32(x²) per row
  double* fnn = xn + R;                       // Σ fl32(fn²) per output
  std::fill(acc, acc + size_t(R) * O + R + O, 0.0);
  const double* fp[64];
  if (O > 64) return false;
  for (int c0 = 0; c0 < F; c0 += kMixChunk) {
    const int n = F - c0 < kMixChunk ? F - c0 : kMixChunk;
    for (int j = 0; j < O; j++) {
      fnn[j] += toF64(fn + size_t(j) * F + c0, n, fd + size_t(j) * kMixLd);
      fp[j] = fd + size_t(j) * kMixLd;
    }
    for (int r0 = 0; r0 < R; r0 += 4) {
      const int rr = R - r0 < 4 ? R - r0 : 4;
      for (int h = 0; h < rr; h++) xn[r0 + h] += toF64(x + size_t(r0 + h) * F + c0, n, xd + size_t(h) * kMixLd);
      dotsAdd(xd, kMixLd, rr, fp, O, n, acc + size_t(r0) * O, O);
    }
  }
  // per element: the magnitude sum is at most |x_r|·|fn_j| (Cauchy-Schwarz; the squares' sums are of
  // fp32-rounded squares, within 2^-23 relative, in float64 within 2^-40); what that bound does not
  // settle gets the exact magnitude sum (finishDot)
  constexpr double up = (1 + 0x1p-22) * (1 + 0x1p-40);
  for (int r = 0; r < R; r++) {
    const float* xr = x + size_t(r) * F;
    float rs;
    if (!ops::rmsFactorFrom(xn[r], xr, F, eps, &rs)) return false;
    const double nx = std::sqrt(xn[r] * up) * up;
    for (int j = 0; j < O; j++) {
      const double s = acc[size_t(r) * O + j], t = nx * std::sqrt(fnn[j] * up) * up * up;
      float dot;
      if (t == 0 || !std::isfinite(s) || !ops::settle(s, t * (F + 2) * 0x1p-53 * 1.01, &dot)) {
        double s2, t2;
        dotF64(xr, fn + size_t(j) * F, F, &s2, &t2);
        if (!ops::finishDot(xr, fn + size_t(j) * F, F, s2, t2, &dot)) return false;
      }
      out[size_t(r) * O + j] = float(double(dot) * double(rs));
    }
  }
  return true;
}

namespace {
// |x·fn_j| <= |x|·|fn_j| (Cauchy-Schwarz): |x|² and |fn_j|² are float64 sums of exact squares, each
// within (F/4 + 2) 2^-53 of exact (4 lanes), so below 2^-37 relative for F <= 2^18 (the callers' limit; the
// margin also covers the rounding of the multiplication by it)
constexpr double kSumUp = 1 + 0x1p-36, kSqrtUp = 1 + 0x1p-52;  // sums; a square root's rounding
}  // namespace

double normBound(const float* x, int F) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  for (int i = 0; i < F; i += 8) {
    const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), v1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    a0 = _mm256_fmadd_pd(v0, v0, a0);
    a1 = _mm256_fmadd_pd(v1, v1, a1);
  }
  return std::sqrt(hsum(_mm256_add_pd(a0, a1)) * kSumUp) * kSqrtUp;
}

bool rmsDotsOne(const float* x, int F, double nx, const float* fn, int j0, int j1, float rs, double* out) {
  constexpr double up = kSumUp, sq = kSqrtUp;
  for (int j = j0; j < j1; j += 4) {
    // 4 outputs per pass over x: their dots and squared norms (exact products, float64 sums)
    const int nj = j1 - j < 4 ? j1 - j : 4;
    const float* f[4];
    for (int r = 0; r < 4; r++) f[r] = fn + size_t(j + (r < nj ? r : 0)) * F;
    __m256d s[4], q[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) s[r] = q[r] = _mm256_setzero_pd();
    for (int i = 0; i < F; i += 4) {
      const __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++) {
        const __m256d fv = _mm256_cvtps_pd(_mm_loadu_ps(f[r] + i));
        s[r] = _mm256_fmadd_pd(xv, fv, s[r]);
        q[r] = _mm256_fmadd_pd(fv, fv, q[r]);
      }
    }
    for (int r = 0; r < nj; r++) {
      const float* fr = f[r];
      const double sum = hsum(s[r]), t = nx * (std::sqrt(hsum(q[r]) * up) * sq) * sq;
      float dot;
      if (t == 0 || !std::isfinite(sum) || !ops::settle(sum, t * (F + 2) * 0x1p-53 * 1.01, &dot)) {
        double s2, t2;
        dotF64(x, fr, F, &s2, &t2);
        if (!ops::finishDot(x, fr, F, s2, t2, &dot)) return false;
      }
      out[j + r] = float(double(dot) * double(rs));
    }
  }
  return true;
}

}  // namespace avx2
}  // namespace ops
}  // namespace dsv4
#endif
