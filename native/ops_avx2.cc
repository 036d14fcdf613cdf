// AVX2 + FMA inner loops of the decode-path operations (ops.h); the drivers and
// the exactness decisions are the portable ones in ops_scalar.cc. Products of
// fp32/BF16 operands are exact in float64, so any summation order gives a valid
// float64 sum for the same error-bound check.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <cmath>
#include <cstring>

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

// q·k over d (a multiple of 16) with the magnitude sum; 8 independent chains each
void dotBf16(const double* q, const double* qa, const uint16_t* k, int d, double* s, double* t) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
  for (int i = 0; i < d; i += 16) {
    __m256d k0, k1, k2, k3;
    bf16x8(k + i, k0, k1);
    bf16x8(k + i + 8, k2, k3);
    s0 = _mm256_fmadd_pd(_mm256_loadu_pd(q + i), k0, s0);
    s1 = _mm256_fmadd_pd(_mm256_loadu_pd(q + i + 4), k1, s1);
    s2 = _mm256_fmadd_pd(_mm256_loadu_pd(q + i + 8), k2, s2);
    s3 = _mm256_fmadd_pd(_mm256_loadu_pd(q + i + 12), k3, s3);
    t0 = _mm256_fmadd_pd(_mm256_loadu_pd(qa + i), absPd(k0), t0);
    t1 = _mm256_fmadd_pd(_mm256_loadu_pd(qa + i + 4), absPd(k1), t1);
    t2 = _mm256_fmadd_pd(_mm256_loadu_pd(qa + i + 8), absPd(k2), t2);
    t3 = _mm256_fmadd_pd(_mm256_loadu_pd(qa + i + 12), absPd(k3), t3);
  }
  *s = hsum(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  *t = hsum(_mm256_add_pd(_mm256_add_pd(t0, t1), _mm256_add_pd(t2, t3)));
}

template <int R>
inline void pvGroup(const double* p, const uint16_t* const* k, int d, double* sum, double* abs) {
  __m256d P[R];
  for (int r = 0; r < R; r++) P[r] = _mm256_set1_pd(p[r]);
  for (int e = 0; e < d; e += 8) {
    __m256d s0 = _mm256_loadu_pd(sum + e), s1 = _mm256_loadu_pd(sum + e + 4);
    __m256d a0 = _mm256_loadu_pd(abs + e), a1 = _mm256_loadu_pd(abs + e + 4);
    for (int r = 0; r < R; r++) {
      __m256d v0, v1;
      bf16x8(k[r] + e, v0, v1);
      s0 = _mm256_fmadd_pd(P[r], v0, s0);
      s1 = _mm256_fmadd_pd(P[r], v1, s1);
      a0 = _mm256_fmadd_pd(P[r], absPd(v0), a0);
      a1 = _mm256_fmadd_pd(P[r], absPd(v1), a1);
    }
    _mm256_storeu_pd(sum + e, s0);
    _mm256_storeu_pd(sum + e + 4, s1);
    _mm256_storeu_pd(abs + e, a0);
    _mm256_storeu_pd(abs + e + 4, a1);
  }
}

// sum[e] += p_j k_j[e], abs[e] += p_j |k_j[e]| (p_j >= 0), four keys per pass over sum/abs
void pvBf16(const double* p, const uint16_t* const* k, int nk, int d, double* sum, double* abs) {
  int j = 0;
  for (; j + 4 <= nk; j += 4) pvGroup<4>(p + j, k + j, d, sum, abs);
  if (nk - j == 3) pvGroup<3>(p + j, k + j, d, sum, abs);
  else if (nk - j == 2) pvGroup<2>(p + j, k + j, d, sum, abs);
  else if (nk - j == 1) pvGroup<1>(p + j, k + j, d, sum, abs);
}

}  // namespace

const AttnLoops& attnLoops() {
  static const AttnLoops L{dotBf16, pvBf16};
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

bool streamSums(const double* coef, int cs, const float* x, int dim, int hc, float* out) {
  // 4 positions per step: the products rounded to fp32, summed in stream order (as sumF32),
  // settled by the same error bound; positions it leaves open take the scalar path
  const __m256d k = _mm256_set1_pd((hc + 2) * 0x1p-53 * 1.01), u4 = _mm256_set1_pd(4 * 0x1p-53);
  const __m256d zero = _mm256_setzero_pd(), inf = _mm256_set1_pd(INFINITY);
  int d = 0;
  for (; d + 4 <= dim; d += 4) {
    __m256d s = zero, t = zero;
    for (int j = 0; j < hc; j++) {
      const __m256d p = _mm256_mul_pd(_mm256_set1_pd(coef[j * cs]), _mm256_cvtps_pd(_mm_loadu_ps(x + size_t(j) * dim + d)));
      const __m256d tj = _mm256_cvtps_pd(_mm256_cvtpd_ps(p));
      s = _mm256_add_pd(s, tj);
      t = _mm256_add_pd(t, absPd(tj));
    }
    const __m256d as = absPd(s);
    const __m256d e = _mm256_add_pd(_mm256_mul_pd(t, k), _mm256_mul_pd(as, u4));
    const __m128 r = _mm256_cvtpd_ps(s);
    const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(s, e)), hi = _mm256_cvtpd_ps(_mm256_add_pd(s, e));
    // settled: t == 0 (exact zero sum), or r != 0, s finite and s ± e round to r
    const __m128 okBound = _mm_and_ps(_mm_and_ps(_mm_cmpeq_ps(lo, r), _mm_cmpeq_ps(hi, r)), _mm_cmpneq_ps(r, _mm_setzero_ps()));
    const __m256d fin = _mm256_cmp_pd(as, inf, _CMP_LT_OQ);
    const __m128 finF = _mm256_cvtpd_ps(_mm256_and_pd(fin, _mm256_set1_pd(1.0)));
    const __m128 tZero = _mm256_cvtpd_ps(_mm256_and_pd(_mm256_cmp_pd(t, zero, _CMP_EQ_OQ), _mm256_set1_pd(1.0)));
    const __m128 ok = _mm_or_ps(_mm_and_ps(okBound, _mm_cmpneq_ps(finF, _mm_setzero_ps())), _mm_cmpneq_ps(tZero, _mm_setzero_ps()));
    _mm_storeu_ps(out + d, r);
    if (_mm_movemask_ps(ok) != 15) {
      for (int i = 0; i < 4; i++)
        if (!ops::streamSum(coef, cs, x + d + i, dim, hc, &out[d + i])) return false;
    }
  }
  for (; d < dim; d++)
    if (!ops::streamSum(coef, cs, x + d, dim, hc, &out[d])) return false;
  return true;
}

}  // namespace avx2
}  // namespace ops
}  // namespace dsv4
#endif
