// AVX2 + FMA kernel of the exact BF16-valued products (bf16.h), called only
// after the runtime CPU check in addon.cc.
//
// Weights become float64 by bit placement alone, four per vector: a BF16
// word v gives sign<<63 | (v & 0x7fff)<<45, i.e. value * 2^-896 (subnormals
// included), an e4m3 code c gives sign<<63 | (c & 0x7f)<<49, i.e. value *
// 2^-1016. Built from the top 16 bits of each lane (A) and the byte below
// (B): two 16-bit shifts, one mask, two unpacks and four byte shuffles per
// 16 weights, in the element order kPerm16, which the prepared activations
// (x * 2^512, times the fp8 block scale) follow. Every product is exact.
//
// Level 1: the float64 sum s (summation depth D) is within gamma_D * T of the
// exact one, with T = sum_b bound[r, b] * max_{k in b} |x_k| from the cached
// per-weight block bounds (no magnitude accumulation in the hot loop). When
// that interval holds a single fp32 rounding, it is the answer; else when all
// products are multiples of 2^L (L from the cached row lsb and the activation
// row's) and T < 2^(L+53), the float64 sum is exact (wo_a: BF16 x FP8 values).
// Level 2 (rare): the element again with the tight magnitude sum, the same two
// tests. What is still open is flagged (level 3, caller).
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "bf16.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

constexpr int kXExp = 512;  // activations are prepared as x * 2^512 (* fp8 block scale)
constexpr int kPerm16[16] = {0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15};

/** Exact result scale: (w * 2^-896)(x * 2^512) = wx * 2^-384; fp8: (c * 2^-1016)(x * s * 2^512) = (c s) x * 2^-504. */
inline double resultScale(DenseKind k) { return std::ldexp(1.0, k == DenseKind::Bf16 ? 384 : 504); }

struct Consts {
  __m256i m8fff, m80ff, c0, c1;
  __m256d absMask;
  Consts() {
    m8fff = _mm256_set1_epi16(short(0x8fff));
    m80ff = _mm256_set1_epi16(short(0x80ff));
    absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    // per 128-bit lane, qword q <- bytes 0, 2, 3 of dword d at bytes 5, 6, 7: c0 takes dwords 0, 1; c1 dwords 2, 3
    alignas(32) int8_t b[2][32];
    for (int h = 0; h < 2; h++)
      for (int i = 0; i < 32; i++) {
        const int q = (i >> 3) & 1, byte = i & 7, d = 2 * h + q;
        b[h][i] = byte == 5 ? int8_t(4 * d) : byte == 6 ? int8_t(4 * d + 2) : byte == 7 ? int8_t(4 * d + 3) : int8_t(-1);
      }
    c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b[0]));
    c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b[1]));
  }
};

/** 16 weights -> 4 x 4 float64 in kPerm16 order; A: top 16 bits of each lane, B: the next byte (low byte). */
inline void placeF64(const Consts& c, __m256i A, __m256i B, __m256d q[4]) {
  const __m256i lo = _mm256_unpacklo_epi16(B, A), hi = _mm256_unpackhi_epi16(B, A);
  q[0] = _mm256_castsi256_pd(_mm256_shuffle_epi8(lo, c.c0));
  q[1] = _mm256_castsi256_pd(_mm256_shuffle_epi8(lo, c.c1));
  q[2] = _mm256_castsi256_pd(_mm256_shuffle_epi8(hi, c.c0));
  q[3] = _mm256_castsi256_pd(_mm256_shuffle_epi8(hi, c.c1));
}

template <DenseKind KIND>
inline void load16(const Consts& c, const uint8_t* p, __m256d q[4]) {
  if (KIND == DenseKind::Bf16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // srai keeps the sign at bit 15; the mask clears its copies at 14..12
    placeF64(c, _mm256_and_si256(_mm256_srai_epi16(v, 3), c.m8fff), _mm256_slli_epi16(v, 5), q);
  } else {
    const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    placeF64(c, _mm256_and_si256(_mm256_slli_epi16(v, 1), c.m80ff), _mm256_setzero_si256(), q);
  }
}

/** The same placement for one weight (tails). */
template <DenseKind KIND>
inline double placed1(const uint8_t* row, int k) {
  uint64_t bits;
  if (KIND == DenseKind::Bf16) {
    uint16_t v;
    std::memcpy(&v, row + 2 * size_t(k), 2);
    bits = (uint64_t(v & 0x8000) << 48) | (uint64_t(v & 0x7fff) << 45);
  } else {
    const uint8_t v = row[k];
    bits = (uint64_t(v & 0x80) << 56) | (uint64_t(v & 0x7f) << 49);
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

inline double hsum(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/** Vector part of a row: elements [h, k16(K, h)) in chunks of 16 (h: scalar head that aligns the loads). */
inline int k16(int K, int h) { return h + ((K - h) & ~15); }

/** Summation depth of dotTile: lane chains, the accumulator tree, hsum, the sequential head and tail. */
inline int depth(int K, int h, int nacc) { return (k16(K, h) - h) / 16 * (4 / nacc) + 4 + h + (K - k16(K, h)); }

/** RT prepared activation rows against one weight row: s[r] (and t[r] = magnitude sum if TIGHT), scaled units. */
template <DenseKind KIND, int RT, int NACC, bool TIGHT>
inline void dotTile(const Consts& c, const uint8_t* wr, int K, int h, const double* const* xr, double* s, double* t) {
  constexpr int EB = KIND == DenseKind::Bf16 ? 2 : 1;
  const int K16 = k16(K, h);
  __m256d acc[RT][NACC], tac[RT][NACC];
  for (int r = 0; r < RT; r++)
    for (int i = 0; i < NACC; i++) acc[r][i] = tac[r][i] = _mm256_setzero_pd();
  for (int k = h; k < K16; k += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + size_t(k + 512) * EB), _MM_HINT_T0);
    __m256d q[4];
    load16<KIND>(c, wr + size_t(k) * EB, q);
    for (int r = 0; r < RT; r++) {
      for (int i = 0; i < 4; i++) {
        const __m256d xv = _mm256_loadu_pd(xr[r] + k + 4 * i);
        acc[r][i % NACC] = _mm256_fmadd_pd(q[i], xv, acc[r][i % NACC]);
        if (TIGHT) tac[r][i % NACC] = _mm256_fmadd_pd(_mm256_and_pd(q[i], c.absMask), _mm256_and_pd(xv, c.absMask), tac[r][i % NACC]);
      }
    }
  }
  for (int r = 0; r < RT; r++) {
    __m256d a = acc[r][0], ta = tac[r][0];
    if (NACC == 4) {
      a = _mm256_add_pd(_mm256_add_pd(acc[r][0], acc[r][1]), _mm256_add_pd(acc[r][2 % NACC], acc[r][3 % NACC]));
      ta = _mm256_add_pd(_mm256_add_pd(tac[r][0], tac[r][1]), _mm256_add_pd(tac[r][2 % NACC], tac[r][3 % NACC]));
    } else if (NACC == 2) {
      a = _mm256_add_pd(acc[r][0], acc[r][1 % NACC]);
      ta = _mm256_add_pd(tac[r][0], tac[r][1 % NACC]);
    }
    double sd = hsum(a), td = TIGHT ? hsum(ta) : 0;
    for (int part = 0; part < 2; part++) {
      for (int k = part ? K16 : 0; k < (part ? K : h); k++) {
        const double p = placed1<KIND>(wr, k) * xr[r][k];
        sd += p;
        if (TIGHT) td += std::fabs(p);
      }
    }
    s[r] = sd;
    if (TIGHT) t[r] = td;
  }
}

/** Per-thread prepared activations for a chunk of rows, and what settling needs. */
struct Prep {
  std::vector<double> xp;   // [rows of the chunk, K]: x * 2^512 (* fp8 block scale), chunks of [h, K16) in kPerm16 order
  std::vector<double> mx;   // [rows, nb]: max |x| per 128-block (Inf when not finite)
  std::vector<int> xlsb;    // [rows]: min lsb exponent of x
  std::vector<double> factor;  // [nb]: the activation factor of each 128-block
  int group = -1;           // fp8: the 128-row weight group xp is scaled for
};

void prepRows(const DenseArgs& a, Prep& p, int m0, int m1, int group, int h) {
  const int K = a.K, K16 = k16(K, h), nb = (K + 127) / 128;
  p.factor.resize(nb);
  for (int b = 0; b < nb; b++) {
    int e = kXExp;
    if (a.kind == DenseKind::Fp8) {
      const uint8_t sb = a.ws[size_t(group) * nb + b];
      if (fp8ScaleExact(sb)) e += int(sb) - 127;  // else the bounds are NaN: flagged anyway
    }
    p.factor[b] = std::ldexp(1.0, e);
  }
  for (int m = m0; m < m1; m++) {
    const float* x = a.x + size_t(m) * K;
    double* xp = p.xp.data() + size_t(m - m0) * K;
    for (int k = 0; k < K; k++) {
      const int src = k >= h && k < K16 ? k - ((k - h) & 15) + kPerm16[(k - h) & 15] : k;
      xp[k] = double(x[src]) * p.factor[src >> 7];
    }
  }
  p.group = group;
}

void prepMax(const DenseArgs& a, Prep& p) {
  const int K = a.K, nb = (K + 127) / 128;
  p.mx.assign(size_t(a.rows) * nb, 0.0);
  p.xlsb.resize(a.rows);
  for (int m = 0; m < a.rows; m++) {
    const float* x = a.x + size_t(m) * K;
    p.xlsb[m] = minLsbExponent(x, K);
    for (int k = 0; k < K; k++) {
      double& mb = p.mx[size_t(m) * nb + (k >> 7)];
      const double v = std::fabs(double(x[k]));
      if (!(v <= 3.5e38)) mb = INFINITY;  // Inf/NaN: the row's bound is not finite
      else if (v > mb) mb = v;
    }
  }
}

template <DenseKind KIND>
void rowsKind(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Consts c;
  const int K = a.K, nb = (K + 127) / 128;
  constexpr int EB = KIND == DenseKind::Bf16 ? 2 : 1;
  const double R = resultScale(KIND);
  const uint8_t* W = static_cast<const uint8_t*>(a.w);
  // a scalar head of h elements aligns the vector loads (32 bytes bf16, 16 bytes fp8) when every row
  // starts at the same alignment; a load split over two cache lines costs about double
  constexpr size_t AL = KIND == DenseKind::Bf16 ? 32 : 16;
  const size_t mis = reinterpret_cast<uintptr_t>(W + size_t(a.r0) * K * EB) % AL;
  int h = (size_t(K) * EB) % AL == 0 && mis % EB == 0 ? int((AL - mis) % AL / EB) : 0;
  if (h > K) h = 0;
  Prep p;
  prepMax(a, p);
  const int mc = K >= 262144 ? 1 : 262144 / K;  // rows per prepared chunk (<= 2 MiB)
  p.xp.resize(size_t(mc < a.rows ? mc : a.rows) * K);
  for (int m0 = 0; m0 < a.rows; m0 += mc) {
    const int m1 = m0 + mc < a.rows ? m0 + mc : a.rows;
    p.group = -1;
    for (int j = j0; j < j1; j++) {
      const int r = a.r0 + j;
      const int group = KIND == DenseKind::Fp8 ? r >> 7 : 0;
      if (p.group != group) prepRows(a, p, m0, m1, group, h);
      const uint8_t* wr = W + size_t(r) * K * EB;
      const float* br = a.bounds + size_t(r) * denseBoundsStride(K);
      const int wlsb = denseBoundsLsb(br[nb]);
      for (int m = m0; m < m1;) {
        const int rt = m1 - m >= 3 ? 3 : m1 - m;
        const double* xr[3];
        for (int i = 0; i < rt; i++) xr[i] = p.xp.data() + size_t(m + i - m0) * K;
        double s[3], t[3];
        if (rt == 3) dotTile<KIND, 3, 2, false>(c, wr, K, h, xr, s, t);
        else if (rt == 2) dotTile<KIND, 2, 2, false>(c, wr, K, h, xr, s, t);
        else dotTile<KIND, 1, 4, false>(c, wr, K, h, xr, s, t);
        const int D = depth(K, h, rt == 1 ? 4 : 2);
        for (int i = 0; i < rt; i++, m++) {
          const size_t o = size_t(m) * a.n + j;
          float* y = a.y + o;
          double T = 0;
          const double* mx = p.mx.data() + size_t(m) * nb;
          for (int b = 0; b < nb; b++) T += double(br[b]) * mx[b];
          bool ok = false;
          if (std::isfinite(T)) {  // else NaN/Inf weights or activations: the caller's exact path
            // the error bound, else the exactness certificate (all products multiples of 2^lsb, T < 2^(lsb+53))
            ok = settleExactF32(s[i] * R, T, D, productLsb(p.xlsb[m], wlsb), y);
            if (!ok) {
              st.tight++;
              double s1, t1;
              const double* x1[1] = {xr[i]};
              dotTile<KIND, 1, 4, true>(c, wr, K, h, x1, &s1, &t1);
              ok = settleExactF32(s1 * R, t1 * R, depth(K, h, 4), productLsb(p.xlsb[m], wlsb), y);
            }
          }
          a.amb[o] = ok ? 0 : 1;
          st.flagged += ok ? 0 : 1;
        }
      }
    }
  }
}

}  // namespace

void denseBoundsBf16(const uint16_t* w, int K, int r0, int r1, float* bounds) {
  const int nb = (K + 127) / 128, stride = denseBoundsStride(K);
  const __m256i mag = _mm256_set1_epi16(0x7fff), zero = _mm256_setzero_si256();
  for (int r = r0; r < r1; r++) {
    const uint16_t* p = w + size_t(r) * K;
    float* br = bounds + size_t(r) * stride;
    __m256i emin = _mm256_set1_epi16(-1);  // min exponent field of the nonzero weights
    unsigned emin1 = 0xffff;
    for (int b = 0; b < nb; b++) {
      const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
      __m256 s0 = _mm256_setzero_ps(), s1 = s0;
      int k = k0;
      for (; k + 16 <= k1; k += 16) {
        const __m256i a = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + k)), mag);
        s0 = _mm256_add_ps(s0, _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, a)));
        s1 = _mm256_add_ps(s1, _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, a)));
        emin = _mm256_min_epu16(emin, _mm256_or_si256(_mm256_srli_epi16(a, 7), _mm256_cmpeq_epi16(a, zero)));
      }
      alignas(32) float l[8];
      _mm256_store_ps(l, _mm256_add_ps(s0, s1));
      float sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      for (; k < k1; k++) {
        const unsigned a = p[k] & 0x7fff;
        const uint32_t bits = uint32_t(a) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        sum += f;
        if (a && (a >> 7) < emin1) emin1 = a >> 7;
      }
      // fp32 sums of <= 128 terms, at most 12 deep: relative error < 2^-20 (Inf/NaN propagate)
      const double v = double(sum) * (1 + std::ldexp(1.0, -16));
      const float f = float(v);
      br[b] = double(f) >= v ? f : std::nextafter(f, INFINITY);
    }
    alignas(32) uint16_t e[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(e), emin);
    for (int i = 0; i < 16; i++) emin1 = e[i] < emin1 ? e[i] : emin1;
    // a lower bound of the row lsb: (128 + m) * 2^(e-134), subnormals m * 2^-133
    br[nb] = emin1 == 0xffff ? INFINITY : float(int(emin1 == 0 ? 1 : emin1) - 134);
  }
}

void denseRows(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  if (!a.bounds) return scalar::denseRows(a, j0, j1, st);
  if (a.kind == DenseKind::Bf16) rowsKind<DenseKind::Bf16>(a, j0, j1, st);
  else rowsKind<DenseKind::Fp8>(a, j0, j1, st);
}

}  // namespace avx2
}  // namespace dsv4
#endif
