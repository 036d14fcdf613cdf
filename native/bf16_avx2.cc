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
//
// Loops: the BF16 GEMV (bf16Gemv, 1-2 activation rows: the head in decode), the
// FP8 GEMV (wo_a, up to 7 rows), the tiled GEMM from 3 BF16 / 8 FP8 rows, and
// rowsKind (the GEMV above: the GEMM's fallback when its buffers cannot be
// allocated); any summation order gives the same bits, as each result is a
// certified rounding of the exact sum.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bf16.h"
#include "fp8_spread.h"
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

/** max |x| per 128-block of one row (Inf when the block holds Inf/NaN), on the magnitude bits: Inf and NaN
 *  compare above every finite value. */
void blockMax(const float* x, int K, double* mr) {
  const __m256i mag = _mm256_set1_epi32(0x7fffffff);
  for (int b = 0; b < (K + 127) / 128; b++) {
    const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
    __m256i v = _mm256_setzero_si256();
    int k = k0;
    for (; k + 8 <= k1; k += 8) v = _mm256_max_epu32(v, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k)), mag));
    alignas(32) uint32_t l[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(l), v);
    uint32_t top = 0;
    for (int i = 0; i < 8; i++) top = l[i] > top ? l[i] : top;
    for (; k < k1; k++) {
      uint32_t u;
      std::memcpy(&u, x + k, 4);
      u &= 0x7fffffff;
      top = u > top ? u : top;
    }
    float t;
    std::memcpy(&t, &top, 4);
    mr[b] = top >= 0x7f800000u ? INFINITY : double(t);
  }
}

constexpr int kLsbUnknown = INT_MIN + 1;  // an activation row lsb not computed yet

/** 16 activations at x as x * f in kPerm16 order at d (the order load16 gives the weights). */
inline void prep16(const float* x, double* d, __m256d f) {
  const __m128 a0 = _mm_loadu_ps(x), a1 = _mm_loadu_ps(x + 4), b0 = _mm_loadu_ps(x + 8), b1 = _mm_loadu_ps(x + 12);
  _mm256_storeu_pd(d, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a0, b0, _MM_SHUFFLE(1, 0, 1, 0))), f));
  _mm256_storeu_pd(d + 4, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a0, b0, _MM_SHUFFLE(3, 2, 3, 2))), f));
  _mm256_storeu_pd(d + 8, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a1, b1, _MM_SHUFFLE(1, 0, 1, 0))), f));
  _mm256_storeu_pd(d + 12, _mm256_mul_pd(_mm256_cvtps_pd(_mm_shuffle_ps(a1, b1, _MM_SHUFFLE(3, 2, 3, 2))), f));
}

/** Per-thread prepared activations for a chunk of rows, and what settling needs. */
struct Prep {
  std::vector<double> xp;   // [rows of the chunk, K]: x * 2^512 (* fp8 block scale), chunks of [h, K16) in kPerm16 order
  std::vector<double> mx;   // [rows, nb]: max |x| per 128-block (Inf when not finite)
  std::vector<int> xlsb;    // [rows]: min lsb exponent of x (kLsbUnknown until needed)
  std::vector<double> factor;  // [nb]: the activation factor of each 128-block
  int group = -1;           // fp8: the 128-row weight group xp is scaled for
  // what mx / xlsb and xp were prepared for: the call (DenseArgs::call, 0 none), its x and row range
  uint64_t call = 0;
  const float* x = nullptr;
  int rows = 0, m0 = -1, h = -1;
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
    if (a.kind == DenseKind::Bf16) {  // one factor: whole chunks
      for (int k = 0; k < h; k++) xp[k] = double(x[k]) * p.factor[0];
      for (int k = K16; k < K; k++) xp[k] = double(x[k]) * p.factor[0];
      for (int k = h; k < K16; k += 16) prep16(x + k, xp + k, _mm256_set1_pd(p.factor[0]));
      continue;
    }
    for (int k = 0; k < K; k++) {
      const int src = k >= h && k < K16 ? k - ((k - h) & 15) + kPerm16[(k - h) & 15] : k;
      xp[k] = double(x[src]) * p.factor[src >> 7];
    }
  }
  p.group = group;
}

void prepMax(const DenseArgs& a, Prep& p) {
  const int K = a.K, nb = (K + 127) / 128;
  p.mx.resize(size_t(a.rows) * nb);
  p.xlsb.assign(a.rows, kLsbUnknown);  // on first need (xlsbOf)
  for (int m = 0; m < a.rows; m++) blockMax(a.x + size_t(m) * K, K, p.mx.data() + size_t(m) * nb);
}

/** Elements of the scalar head that aligns the vector loads (32 bytes bf16, 16 bytes fp8) when every row
 *  starts at the same alignment (else 0); a load split over two cache lines costs about double. */
template <DenseKind KIND>
int alignHead(const DenseArgs& a) {
  constexpr int EB = KIND == DenseKind::Bf16 ? 2 : 1;
  constexpr size_t AL = KIND == DenseKind::Bf16 ? 32 : 16;
  const size_t mis = reinterpret_cast<uintptr_t>(static_cast<const uint8_t*>(a.w) + size_t(a.r0) * a.K * EB) % AL;
  const int h = (size_t(a.K) * EB) % AL == 0 && mis % EB == 0 ? int((AL - mis) % AL / EB) : 0;
  return h > a.K ? 0 : h;
}

/** This thread's Prep with the block maxima of call a: kept per thread, so the chunks of one call
 *  (Pool::runChunks) a thread runs prepare the activations once. */
Prep& callPrep(const DenseArgs& a) {
  thread_local Prep p;
  const bool sameCall = a.call != 0 && p.call == a.call && p.x == a.x && p.rows == a.rows;
  if (!sameCall) {
    prepMax(a, p);
    p.call = a.call;
    p.x = a.x;
    p.rows = a.rows;
    p.m0 = -1;
  }
  return p;
}

template <DenseKind KIND>
void rowsKind(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Consts c;
  const int K = a.K, nb = (K + 127) / 128;
  constexpr int EB = KIND == DenseKind::Bf16 ? 2 : 1;
  const double R = resultScale(KIND);
  const uint8_t* W = static_cast<const uint8_t*>(a.w);
  const int h = alignHead<KIND>(a);
  Prep& p = callPrep(a);
  const int mc = K >= 262144 ? 1 : 262144 / K;  // rows per prepared chunk (<= 2 MiB)
  p.xp.resize(size_t(mc < a.rows ? mc : a.rows) * K);
  for (int m0 = 0; m0 < a.rows; m0 += mc) {
    const int m1 = m0 + mc < a.rows ? m0 + mc : a.rows;
    if (p.m0 != m0 || p.h != h) p.group = -1;  // xp holds another row range (or alignment)
    p.m0 = m0;
    p.h = h;
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
        else if (rt == 2) dotTile<KIND, 2, 4, false>(c, wr, K, h, xr, s, t);
        else dotTile<KIND, 1, 4, false>(c, wr, K, h, xr, s, t);
        const int D = depth(K, h, rt == 3 ? 2 : 4);
        for (int i = 0; i < rt; i++, m++) {
          const size_t o = size_t(m) * a.n + j;
          float* y = a.y + o;
          double T = 0;
          const double* mx = p.mx.data() + size_t(m) * nb;
          for (int b = 0; b < nb; b++) T += double(br[b]) * mx[b];
          bool ok = false;
          if (std::isfinite(T)) {  // else NaN/Inf weights or activations: the caller's exact path
            // the error bound, else the exactness certificate (all products multiples of 2^lsb, T < 2^(lsb+53))
            if (p.xlsb[m] == kLsbUnknown) p.xlsb[m] = minLsbExponent(a.x + size_t(m) * K, K);
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



// ---------- settling 4 outputs at a time (GEMV groups, GEMM panels) ----------

/** settleF32's test on 4 sums s (exact products, depth D: eT = (D + 2) u 1.01) with magnitude bounds T:
 *  bit i set where s[i] certainly rounds to rv[i] (rv[i] != 0). */
inline int settle4(__m256d s, __m256d T, __m256d eT, __m128& rv) {
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  const __m256d e = _mm256_add_pd(_mm256_mul_pd(T, eT), _mm256_mul_pd(_mm256_and_pd(s, absMask), _mm256_set1_pd(std::ldexp(1.0, -51))));
  rv = _mm256_cvtpd_ps(s);
  const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(s, e)), hi = _mm256_cvtpd_ps(_mm256_add_pd(s, e));
  return _mm_movemask_ps(_mm_and_ps(_mm_and_ps(_mm_cmpeq_ps(lo, rv), _mm_cmpeq_ps(hi, rv)), _mm_cmpneq_ps(rv, _mm_setzero_ps())));
}

inline __m256d settleFactor(int D) { return _mm256_set1_pd(double(D + 2) * std::ldexp(1.0, -53) * 1.01); }

/** One output that settle4 left open: the certificate (products multiples of 2^lsb), else level 2 with
 *  the tight magnitude sum from tight(s1, t1) (scaled; returns its depth). NaN/Inf bounds: flagged. */
template <class Tight>
inline bool settleOne(double s, double T, int D, int lsb, float* y, DenseStats& st, Tight tight) {
  if (!std::isfinite(T)) return false;  // NaN/Inf weights or activations: the caller's exact path
  if (settleExactF32(s, T, D, lsb, y)) return true;
  st.tight++;
  double s1, t1;
  const int D1 = tight(s1, t1);
  return settleExactF32(s1, t1, D1, lsb, y);
}

/** Writes n4 <= 4 outputs (y, amb) from their scaled sums s4 and bounds T4: settle4's vector test, then
 *  slow(i, s, T, y) for each output it leaves open (true when settled). */
template <class Slow>
inline void settleStore4(__m256d s4, __m256d T4, __m256d eT, int n4, float* y, uint8_t* amb, DenseStats& st, Slow slow) {
  __m128 rv;
  const int ok4 = settle4(s4, T4, eT, rv);
  if (ok4 == 15 && n4 == 4) {
    _mm_storeu_ps(y, rv);
    std::memset(amb, 0, 4);
    return;
  }
  alignas(16) float rf[4];
  alignas(32) double sd[4], Td[4];
  _mm_store_ps(rf, rv);
  _mm256_store_pd(sd, s4);
  _mm256_store_pd(Td, T4);
  for (int i = 0; i < n4; i++) {
    bool ok = ok4 >> i & 1;
    if (ok) y[i] = rf[i];
    else ok = slow(i, sd[i], Td[i], y + i);
    amb[i] = ok ? 0 : 1;
    st.flagged += ok ? 0 : 1;
  }
}

// ---------- BF16 GEMV (one activation row: the head in decode) ----------

constexpr int kGemvPrefetch = 1024;  // bytes ahead in the weight row (from memory, 2 threads: none ~0.9x, 1-4 KiB alike)

/** dotTile<Bf16, RT, 4, false>'s sums (each accumulator adds the same products in the same order) of one weight
 *  row against RT prepared activation rows. One row: two 16-weight chunks per step, so one software prefetch per
 *  cache line; two: one chunk per step (two chunks' weights and 8 accumulators would not fit in registers). */
template <int RT>
inline void bf16Dot(const Consts& c, const uint8_t* wr, int K, int h, const double* const* xr, double* s) {
  constexpr int NC = RT == 1 ? 2 : 1;  // 16-weight chunks per step
  const int K16 = k16(K, h);
  __m256d acc[RT][4];
  for (int m = 0; m < RT; m++)
    for (int i = 0; i < 4; i++) acc[m][i] = _mm256_setzero_pd();
  const auto chunk = [&](int k) {
    __m256d q[4];
    load16<DenseKind::Bf16>(c, wr + size_t(k) * 2, q);
#pragma GCC unroll 2
    for (int m = 0; m < RT; m++)
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) acc[m][i] = _mm256_fmadd_pd(q[i], _mm256_loadu_pd(xr[m] + k + 4 * i), acc[m][i]);
  };
  int k = h;
  for (; k + 16 * NC <= K16; k += 16 * NC) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + size_t(k) * 2 + kGemvPrefetch), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int n = 0; n < NC; n++) chunk(k + 16 * n);
  }
  if (k < K16) chunk(k);
  for (int m = 0; m < RT; m++) {
    double sd = hsum(_mm256_add_pd(_mm256_add_pd(acc[m][0], acc[m][1]), _mm256_add_pd(acc[m][2], acc[m][3])));
    for (int part = 0; part < 2; part++)
      for (int k1 = part ? K16 : 0; k1 < (part ? K : h); k1++) sd += placed1<DenseKind::Bf16>(wr, k1) * xr[m][k1];
    s[m] = sd;
  }
}

/** Weight rows [r0 + j0, r0 + j1) against RT (1-2) activation rows, 4 weight rows settled together in vector
 *  form per activation row; an activation row's lsb (the certificate) only when an output needs it. */
template <int RT>
void bf16Gemv(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Consts c;
  const int K = a.K, nb = (K + 127) / 128, h = alignHead<DenseKind::Bf16>(a), D = depth(K, h, 4);
  const uint8_t* W = static_cast<const uint8_t*>(a.w);
  const double R = resultScale(DenseKind::Bf16);
  Prep& p = callPrep(a);
  if (p.m0 != 0 || p.h != h || p.group != 0) {
    p.xp.resize(size_t(RT) * K);
    prepRows(a, p, 0, RT, 0, h);
    p.m0 = 0;
    p.h = h;
  }
  const double* xr[RT];
  for (int m = 0; m < RT; m++) xr[m] = p.xp.data() + size_t(m) * K;
  const __m256d eT = settleFactor(D), vR = _mm256_set1_pd(R);
  for (int j = j0; j < j1; j += 4) {
    const int n4 = j1 - j < 4 ? j1 - j : 4;
    alignas(32) double sd[RT][4] = {}, Td[RT][4] = {};
    for (int i = 0; i < n4; i++) {
      const size_t r = size_t(a.r0) + j + i;
      double s[RT];
      bf16Dot<RT>(c, W + r * K * 2, K, h, xr, s);
      const float* br = a.bounds + r * denseBoundsStride(K);
      for (int m = 0; m < RT; m++) {
        const double* mx = p.mx.data() + size_t(m) * nb;
        double T = 0;
        for (int b = 0; b < nb; b++) T += double(br[b]) * mx[b];
        sd[m][i] = s[m];
        Td[m][i] = T;
      }
    }
    for (int m = 0; m < RT; m++) {
      const size_t o = size_t(m) * a.n + j;
      settleStore4(_mm256_mul_pd(_mm256_load_pd(sd[m]), vR), _mm256_load_pd(Td[m]), eT, n4, a.y + o, a.amb + o, st, [&](int i, double s, double T, float* y) {
        const size_t r = size_t(a.r0) + j + i;
        if (p.xlsb[m] == kLsbUnknown) p.xlsb[m] = minLsbExponent(a.x + size_t(m) * K, K);
        const int lsb = productLsb(p.xlsb[m], denseBoundsLsb(a.bounds[r * denseBoundsStride(K) + nb]));
        return settleOne(s, T, D, lsb, y, st, [&](double& s1, double& t1) {
          const double* x1[1] = {xr[m]};
          dotTile<DenseKind::Bf16, 1, 4, true>(c, W + r * K * 2, K, h, x1, &s1, &t1);
          s1 *= R;
          t1 *= R;
          return depth(K, h, 4);
        });
      });
    }
  }
}

// ---------- FP8 GEMV (one activation row; wo_a in decode) ----------
//
// 32 codes per step as in fp8_gemm's GEMV (kernels_avx2.cc): one add and one and give each
// code's top 16 bits (sign<<15 | (c & 0x7f)<<1, the placement above), two byte unpacks and
// eight vpshufb spread them over 8 x 4 float64 lanes: position 4i + e of a step holds element
// (i < 4 ? 0 : 8) + 2 (i & 3) + (e & 1) + 16 (e >> 1), the prepared activations' order. One
// activation row: up to 4 weight rows per pass with 2 accumulators each (gemvStep, fp8_spread.h;
// 8 independent FMA chains), their 4 sums reduced into one vector.

using Cvt32 = Fp8Spread;  // fp8_spread.h

constexpr int kGemvAhead = 2048;  // software prefetch distance (bytes of each row stream), as fp8_gemm's GEMV
constexpr int kGemvSegment = 512;  // codes per accumulator chain before it is folded into the rows' total

/** Summation depth of fp8GemvSums over L codes: a chain of kGemvSegment / 8 FMAs per lane, 3 levels of
 *  gemvBlockSums, one add per segment into the total (a chain over all of L would be L / 8 deep). */
constexpr int fp8GemvDepth(int L) { return (L < kGemvSegment ? L : kGemvSegment) / 8 + 3 + (L + kGemvSegment - 1) / kGemvSegment; }

/** Sums of NW (1-4) weight rows (K apart from w0) over the steps [0, L) into sums[0..NW) (4 written).
 *  Not inlined: inside fp8Gemv GCC kept the accumulators in stack slots. */
template <int NW>
__attribute__((noinline)) void fp8GemvSums(const Cvt32& c, const uint8_t* w0, int K, int L, const double* xq, double* sums) {
  const __m256i sign = c.sign, c0 = c.ctl[0], c1 = c.ctl[1], c2 = c.ctl[2], c3 = c.ctl[3];
  // the running total lives in sums (memory; a 17th register would spill an accumulator)
  _mm256_store_pd(sums, _mm256_setzero_pd());
  for (int k0 = 0; k0 < L; k0 += kGemvSegment) {
    // one chain per segment, then folded: a shallow depth keeps the level-1 bound tight
    const int k1 = L - k0 < kGemvSegment ? L : k0 + kGemvSegment;
    __m256d s[8];
    for (auto& v : s) v = _mm256_setzero_pd();
    for (int k = k0; k < k1; k += 32) {
      // software prefetch 2 KiB ahead in each row slot's stream (row i, then the next pass's row i),
      // 4 lines of a row together, as fp8_gemm's GEMV
      if ((k & 255) == 0)
        for (int i = 0; i < NW; i++) {
          size_t off = size_t(k) + kGemvAhead;
          const uint8_t* base = w0 + size_t(i) * K;
          while (off >= size_t(K)) off -= K, base += 4 * size_t(K);
          for (int l = 0; l < 4; l++) _mm_prefetch(reinterpret_cast<const char*>(base + off + 64 * l), _MM_HINT_T0);
        }
#pragma GCC unroll 4
      for (int i = 0; i < NW; i++) gemvStep(sign, c0, c1, c2, c3, w0 + size_t(i) * K + k, xq + k, s[2 * i], s[2 * i + 1]);
    }
    _mm256_store_pd(sums, _mm256_add_pd(_mm256_load_pd(sums), gemvBlockSums(s)));
  }
}

/** Vector sums of one weight row against RT (2-3) activation rows (xs doubles apart) over the steps
 *  [0, L): each converted step serves every activation row. */
template <int RT>
void fp8GemvRows(const Cvt32& c, const uint8_t* wr, int K, int L, const double* xq, size_t xs, double* sums) {
  __m256d acc[RT][4];
  for (int m = 0; m < RT; m++)
    for (int g = 0; g < 4; g++) acc[m][g] = _mm256_setzero_pd();
  for (int k = 0; k < L; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + 4 * size_t(K) + k), _MM_HINT_T0);
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + k));
    const __m256i lo = _mm256_add_epi8(b, b), hi = _mm256_and_si256(b, c.sign);
    const __m256i w[2] = {_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi)};
    for (int h = 0; h < 2; h++)
      for (int g = 0; g < 4; g++) {
        const __m256d q = _mm256_castsi256_pd(_mm256_shuffle_epi8(w[h], c.ctl[g]));
        for (int m = 0; m < RT; m++) acc[m][g] = _mm256_fmadd_pd(q, _mm256_loadu_pd(xq + m * xs + k + 16 * h + 4 * g), acc[m][g]);
      }
  }
  for (int m = 0; m < RT; m++) sums[m] = hsum(_mm256_add_pd(_mm256_add_pd(acc[m][0], acc[m][1]), _mm256_add_pd(acc[m][2], acc[m][3])));
}

/** Prepared activation row x for weight group `group`: x * 2^(512 + scale - 127) per 128-block (nat, K doubles); xq: the
 *  steps' grid [0, L) (element k at grid position k + mis, zero outside [0, K)) in the steps' order. */
void fp8GemvPrep(const DenseArgs& a, const float* x, int group, int mis, int L, double* xq, double* nat, double* grid) {
  const int K = a.K, nb = (K + 127) / 128;
  for (int b = 0; b < nb; b++) {
    const uint8_t sb = a.ws[size_t(group) * nb + b];
    const __m256d f = _mm256_set1_pd(std::ldexp(1.0, kXExp + (fp8ScaleExact(sb) ? int(sb) - 127 : 0)));  // else flagged (NaN bound)
    const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
    int k = k0;
    for (; k + 4 <= k1; k += 4) _mm256_storeu_pd(nat + k, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + k)), f));
    for (; k < k1; k++) nat[k] = double(x[k]) * _mm256_cvtsd_f64(f);
  }
  std::fill(grid, grid + mis, 0.0);
  std::memcpy(grid + mis, nat, sizeof(double) * (L - mis < K ? L - mis : K));
  if (mis + K < L) std::fill(grid + mis + K, grid + L, 0.0);
  for (int k = 0; k < L; k += 32)
    for (int i = 0; i < 8; i += 2) {
      // positions 4i..4i+7 hold elements (2i', 2i'+1, 16+2i', 17+2i') for i' = i, i + 1 (8 more for i >= 4)
      const int e = (i < 4 ? 0 : 8) + 2 * (i & 3);
      const __m256d lo = _mm256_loadu_pd(grid + k + e), hi = _mm256_loadu_pd(grid + k + e + 16);
      _mm256_storeu_pd(xq + k + 4 * i, _mm256_permute2f128_pd(lo, hi, 0x20));
      _mm256_storeu_pd(xq + k + 4 * i + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
}

/** Exact products of one weight row with the natural-order prepared row, sum and magnitude sum (sequential). */
inline void fp8GemvTight(const uint8_t* wr, const double* nat, int K, double& s, double& t) {
  s = t = 0;
  for (int k = 0; k < K; k++) {
    const double p = placed1<DenseKind::Fp8>(wr, k) * nat[k];
    s += p;
    t += std::fabs(p);
  }
}

/** Weight rows [r0 + j0, r0 + j1) against RT = a.rows (1-3) activation rows. */
template <int RT>
void fp8Gemv(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Cvt32 c;
  thread_local std::vector<double> xqBuf, natBuf, mxBuf, gridBuf;
  const int K = a.K, nb = (K + 127) / 128;
  const uint8_t* W = static_cast<const uint8_t*>(a.w);
  // When every row starts at the same alignment (K % 32 == 0), the 32-byte loads run on the aligned grid
  // from mis bytes before each row, the activations zero outside it (the codes there are finite placed
  // values; an aligned block never crosses a page). Else unaligned steps over [0, L) and a scalar tail.
  const int mis = K % 32 == 0 ? int(reinterpret_cast<uintptr_t>(W + size_t(a.r0) * K) % 32) : 0;
  const int L = K % 32 == 0 ? (K + mis + 31) / 32 * 32 : K & ~31;
  // summation depth (one row: fp8GemvDepth; 2-3 rows: L/16 per lane chain, then 2 + 2), plus the sequential tail
  const int D = (RT == 1 ? fp8GemvDepth(L) : L / 16 + 4) + (K % 32 == 0 ? 0 : K - L);
  const double R = std::ldexp(1.0, 504);
  const size_t xs = size_t(L) + 32;
  xqBuf.resize(RT * xs);
  natBuf.resize(size_t(RT) * K);
  gridBuf.resize(xs);
  mxBuf.resize(size_t(RT) * nb);
  double* xq = xqBuf.data();
  double* nat = natBuf.data();
  double* mx = mxBuf.data();
  int xlsb[RT];  // on first need
  for (int m = 0; m < RT; m++) xlsb[m] = kLsbUnknown;
  for (int m = 0; m < RT; m++) blockMax(a.x + size_t(m) * K, K, mx + size_t(m) * nb);
  int group = -1;
  const __m256d eT = settleFactor(D), vR = _mm256_set1_pd(R);
  for (int j = j0; j < j1;) {
    const int r = a.r0 + j;
    if (r >> 7 != group) {
      group = r >> 7;
      for (int m = 0; m < RT; m++) fp8GemvPrep(a, a.x + size_t(m) * K, group, mis, L, xq + m * xs, nat + size_t(m) * K, gridBuf.data());
    }
    // up to 4 weight rows of one scale group, settled together (one activation row: the 4 rows in one
    // pass; 2-3: each converted step for all of them)
    const int n4 = std::min(std::min(4, j1 - j), 128 - (r & 127));
    const uint8_t* w0 = W + size_t(r) * K;
    alignas(32) double sd[RT][4] = {}, Td[RT][4] = {};
    if constexpr (RT == 1) {
      switch (n4) {
        case 4: fp8GemvSums<4>(c, w0 - mis, K, L, xq, sd[0]); break;
        case 3: fp8GemvSums<3>(c, w0 - mis, K, L, xq, sd[0]); break;
        case 2: fp8GemvSums<2>(c, w0 - mis, K, L, xq, sd[0]); break;
        default: fp8GemvSums<1>(c, w0 - mis, K, L, xq, sd[0]);
      }
    } else {
      for (int i = 0; i < n4; i++) {
        double sums[RT];
        fp8GemvRows<RT>(c, w0 + size_t(i) * K - mis, K, L, xq, xs, sums);
        for (int m = 0; m < RT; m++) sd[m][i] = sums[m];
      }
    }
    for (int m = 0; m < RT; m++) {
      const double* nm = nat + size_t(m) * K;
      for (int i = 0; i < n4; i++) {
        if (K % 32)
          for (int k = L; k < K; k++) sd[m][i] += placed1<DenseKind::Fp8>(w0 + size_t(i) * K, k) * nm[k];
        const float* br = a.bounds + size_t(r + i) * denseBoundsStride(K);
        for (int b = 0; b < nb; b++) Td[m][i] += double(br[b]) * mx[size_t(m) * nb + b];
      }
      const size_t o = size_t(m) * a.n + j;
      settleStore4(_mm256_mul_pd(_mm256_load_pd(sd[m]), vR), _mm256_load_pd(Td[m]), eT, n4, a.y + o, a.amb + o, st, [&](int i, double s, double T, float* y) {
        if (xlsb[m] == kLsbUnknown) xlsb[m] = minLsbExponent(a.x + size_t(m) * K, K);
        const uint8_t* wr = w0 + size_t(i) * K;
        const int lsb = productLsb(xlsb[m], denseBoundsLsb(a.bounds[size_t(r + i) * denseBoundsStride(K) + nb]));
        return settleOne(s, T, D, lsb, y, st, [&](double& s1, double& t1) {
          fp8GemvTight(wr, nm, K, s1, t1);
          s1 *= R;
          t1 *= R;
          return K + 2;
        });
      });
    }
    j += n4;
  }
}

// ---------- GEMM (rows >= kGemmRows*): register tiles over converted weight panels ----------
//
// A panel of up to kPanel weight rows is converted to float64 once per chunk of activation
// rows (FP8: times 2^(scale byte - 3), exact, so the activations need no per-group factor:
// products are w x * 2^-380, BF16 ones w x * 2^-384), then each 4x3 tile of (weight rows,
// activation rows) accumulates its 12 dot products in registers over a slice of K whose panel
// part stays in L1 (partial sums kept in S between slices). Every lane sums Kv = ceil(K/4)
// products in sequence and the final reduction adds two levels: depth Kv + 2. Level 1 runs 4
// outputs at a time in vector form (settleF32's test); the rest goes the per-element way.

// activation rows from which the tiled GEMM runs (FP8: below, the GEMV in passes of up to 3 rows;
// 1 thread, 1024x1024: 2.3-2.9x the 16-code GEMV at 2-3 rows, ahead of the tiles up to ~10 rows;
// BF16: 2 rows run the GEMV (then rowsKind's), 8 accumulator chains: the bench-2g head 129280x2048 from memory,
// 2 threads, same process alternating, 1.26-1.29x the tiles; at 3 rows the two are even)
constexpr int kGemmRowsBf16 = 3, kGemmRowsFp8 = 8;
constexpr int kPanel = 8;       // weight rows per converted panel
constexpr int kSliceV = 64;     // vectors of 4 per L1 slice (256 elements: the panel's slice is 16 KB)
constexpr int kChunkRows = 96;  // activation rows prepared per chunk

/** A growable 64-byte aligned buffer of doubles (per thread). */
struct AlignedBuf {
  double* p = nullptr;
  size_t n = 0;
  double* need(size_t k) {
    if (k > n) {
      std::free(p);
      p = static_cast<double*>(std::aligned_alloc(64, (k * 8 + 63) / 64 * 64));
      n = p ? k : 0;
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};

struct GemmScratch {
  AlignedBuf xp, wb, S, mx, bt;
  std::vector<int> xlsb;
};


/** Offset of vector v of chunk row m in the prepared activations: slice by slice, each slice's rows one
 *  after another (the tiles then read one sequential stream per slice). */
inline size_t chunkAt(int MC, int m, int v) { return (size_t(v / kSliceV) * MC + m) * kSliceV * 4 + size_t(v % kSliceV) * 4; }

/** Activation rows [m0, m1) as x * 2^512 in kPerm16 order per 16 (the tail as is, zero to 4 Kv), layout
 *  chunkAt; mx: max |x| per 128-block (Inf when the block holds Inf/NaN). */
void gemmPrep(const DenseArgs& a, int m0, int m1, int MC, int Kv, double* xp, double* mx) {
  const int K = a.K, K16 = K & ~15, nb = (K + 127) / 128;
  const double f1 = std::ldexp(1.0, kXExp);
  const __m256d f = _mm256_set1_pd(f1);
  for (int m = m0; m < m1; m++) {
    const float* x = a.x + size_t(m) * K;
    for (int k = 0; k < K16; k += 16) prep16(x + k, xp + chunkAt(MC, m - m0, k / 4), f);
    for (int k = K16; k < Kv * 4; k++) xp[chunkAt(MC, m - m0, k / 4) + k % 4] = k < K ? double(x[k]) * f1 : 0.0;
    blockMax(x, K, mx + size_t(m - m0) * nb);
  }
}

/** Offset of weight row w's vector v in a converted panel: slice by slice, each slice's rows one after
 *  another (contiguous in L1: rows K apart would share cache sets when K is a multiple of 512). */
inline size_t panelAt(int w, int v) { return (size_t(v / kSliceV) * kPanel + w) * kSliceV * 4 + size_t(v % kSliceV) * 4; }

/** Weight rows [r, r + nw) as float64 (BF16: value * 2^-896; FP8: value * scale * 2^-892) in kPerm16
 *  order per 16, the tail as is, zero to 4 Kv; layout panelAt. */
template <DenseKind KIND>
void convertPanel(const Consts& c, const DenseArgs& a, int r, int nw, int Kv, double* wb) {
  constexpr int EB = KIND == DenseKind::Bf16 ? 2 : 1;
  const int K = a.K, K16 = K & ~15, nb = (K + 127) / 128;
  const uint8_t* W = static_cast<const uint8_t*>(a.w);
  for (int w = 0; w < nw; w++) {
    const uint8_t* wr = W + size_t(r + w) * K * EB;
    const uint8_t* sr = KIND == DenseKind::Fp8 ? a.ws + size_t((r + w) >> 7) * nb : nullptr;
    double f1 = 1;
    for (int k = 0; k < K16; k += 16) {
      __m256d q[4];
      load16<KIND>(c, wr + size_t(k) * EB, q);
      if (KIND == DenseKind::Fp8) {
        if ((k & 127) == 0) f1 = fp8ScaleExact(sr[k >> 7]) ? std::ldexp(1.0, int(sr[k >> 7]) - 3) : 1;  // else flagged (NaN bound)
        const __m256d f = _mm256_set1_pd(f1);
        for (int i = 0; i < 4; i++) q[i] = _mm256_mul_pd(q[i], f);
      }
      double* d = wb + panelAt(w, k / 4);  // kSliceV is a multiple of 4: the chunk stays in one slice
      for (int i = 0; i < 4; i++) _mm256_store_pd(d + 4 * i, q[i]);
    }
    for (int k = K16; k < Kv * 4; k++) {
      if (KIND == DenseKind::Fp8 && k < K) f1 = fp8ScaleExact(sr[k >> 7]) ? std::ldexp(1.0, int(sr[k >> 7]) - 3) : 1;
      wb[panelAt(w, k / 4) + k % 4] = k < K ? placed1<KIND>(wr, k) * f1 : 0.0;
    }
  }
}

/** NW weight rows x NX activation rows over nv vectors: sums continue from S[x * kPanel + w]. */
template <int NW, int NX>
inline void gemmTile(const double* wb, size_t ws, const double* xb, size_t xs, int nv, double* S) {
  __m256d acc[NW][NX];
  for (int w = 0; w < NW; w++)
    for (int x = 0; x < NX; x++) acc[w][x] = _mm256_load_pd(S + (x * kPanel + w) * 4);
  for (int v = 0; v < nv; v++) {
    __m256d xv[NX];
    for (int x = 0; x < NX; x++) xv[x] = _mm256_load_pd(xb + x * xs + 4 * size_t(v));
    for (int w = 0; w < NW; w++) {
      const __m256d wv = _mm256_load_pd(wb + w * ws + 4 * size_t(v));
      for (int x = 0; x < NX; x++) acc[w][x] = _mm256_fmadd_pd(wv, xv[x], acc[w][x]);
    }
  }
  for (int w = 0; w < NW; w++)
    for (int x = 0; x < NX; x++) _mm256_store_pd(S + (x * kPanel + w) * 4, acc[w][x]);
}

void gemmTileAny(int nw, int nx, const double* wb, size_t ws, const double* xb, size_t xs, int nv, double* S) {
  switch (nw * 4 + nx) {
#define DSV4_TILE(W, X) \
  case W * 4 + X:       \
    return gemmTile<W, X>(wb, ws, xb, xs, nv, S);
    DSV4_TILE(4, 3) DSV4_TILE(4, 2) DSV4_TILE(4, 1) DSV4_TILE(3, 3) DSV4_TILE(3, 2) DSV4_TILE(3, 1)
    DSV4_TILE(2, 3) DSV4_TILE(2, 2) DSV4_TILE(2, 1) DSV4_TILE(1, 3) DSV4_TILE(1, 2)
#undef DSV4_TILE
    default: return gemmTile<1, 1>(wb, ws, xb, xs, nv, S);
  }
}

/** The 4 lane sums of 4 accumulators, one per lane of the result (two addition levels). */
inline __m256d reduce4(const double* S) {
  const __m256d h01 = _mm256_hadd_pd(_mm256_load_pd(S), _mm256_load_pd(S + 4));
  const __m256d h23 = _mm256_hadd_pd(_mm256_load_pd(S + 8), _mm256_load_pd(S + 12));
  return _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20), _mm256_permute2f128_pd(h01, h23, 0x31));
}

/** Exact-product dot of one converted weight row and one prepared activation row with its magnitude sum. */
inline void tightDot(const double* wb, int w, const double* xp, int MC, int m, int Kv, double& s, double& t) {
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  __m256d a = _mm256_setzero_pd(), b = a;
  for (int v = 0; v < Kv; v++) {
    const __m256d wv = _mm256_load_pd(wb + panelAt(w, v)), xv = _mm256_load_pd(xp + chunkAt(MC, m, v));
    a = _mm256_fmadd_pd(wv, xv, a);
    b = _mm256_fmadd_pd(_mm256_and_pd(wv, absMask), _mm256_and_pd(xv, absMask), b);
  }
  s = hsum(a);
  t = hsum(b);
}

template <DenseKind KIND>
void gemmKind(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Consts c;
  thread_local GemmScratch g;
  const int K = a.K, nb = (K + 127) / 128, Kv = (K + 3) / 4, D = Kv + 2;
  const size_t stride = size_t(Kv) * 4;
  const double R = std::ldexp(1.0, KIND == DenseKind::Bf16 ? 384 : 380);
  const int MC = a.rows < kChunkRows ? a.rows : kChunkRows;
  double* xp = g.xp.need(size_t(MC) * ((Kv + kSliceV - 1) / kSliceV) * kSliceV * 4);
  double* wb = g.wb.need(size_t(kPanel) * ((Kv + kSliceV - 1) / kSliceV) * kSliceV * 4);
  double* S = g.S.need(size_t(MC) * kPanel * 4);
  double* mx = g.mx.need(size_t(MC) * nb);
  double* bt = g.bt.need(size_t(nb) * kPanel);
  if (!xp || !wb || !S || !mx || !bt) return rowsKind<KIND>(a, j0, j1, st);
  g.xlsb.resize(MC);
  const __m256d eT = settleFactor(D), vR = _mm256_set1_pd(R);
  for (int m0 = 0; m0 < a.rows; m0 += MC) {
    const int m1 = m0 + MC < a.rows ? m0 + MC : a.rows;
    gemmPrep(a, m0, m1, MC, Kv, xp, mx);
    for (int m = m0; m < m1; m++) g.xlsb[m - m0] = kLsbUnknown;
    for (int jp = j0; jp < j1; jp += kPanel) {
      const int nw = j1 - jp < kPanel ? j1 - jp : kPanel, r = a.r0 + jp;
      convertPanel<KIND>(c, a, r, nw, Kv, wb);
      for (int b = 0; b < nb; b++)
        for (int w = 0; w < kPanel; w++) bt[b * kPanel + w] = w < nw ? double(a.bounds[size_t(r + w) * denseBoundsStride(K) + b]) : 0.0;
      std::memset(S, 0, sizeof(double) * size_t(m1 - m0) * kPanel * 4);
      for (int v0 = 0; v0 < Kv; v0 += kSliceV) {
        const int nv = v0 + kSliceV < Kv ? kSliceV : Kv - v0;
        for (int m = m0; m < m1; m += 3) {
          const int nx = m1 - m < 3 ? m1 - m : 3;
          for (int w = 0; w < nw; w += 4)
            gemmTileAny(nw - w < 4 ? nw - w : 4, nx, wb + panelAt(w, v0), size_t(kSliceV) * 4, xp + chunkAt(MC, m - m0, v0), size_t(kSliceV) * 4, nv,
                        S + (size_t(m - m0) * kPanel + w) * 4);
        }
      }
      // settle: 4 outputs at a time
      for (int m = m0; m < m1; m++) {
        const double* mr = mx + size_t(m - m0) * nb;
        for (int w = 0; w < nw; w += 4) {
          const size_t o0 = size_t(m) * a.n + size_t(jp + w);
          const int n4 = nw - w < 4 ? nw - w : 4;
          const __m256d s4 = _mm256_mul_pd(reduce4(S + (size_t(m - m0) * kPanel + w) * 4), vR);
          __m256d T4 = _mm256_setzero_pd();
          for (int b = 0; b < nb; b++) T4 = _mm256_add_pd(T4, _mm256_mul_pd(_mm256_set1_pd(mr[b]), _mm256_load_pd(bt + b * kPanel + w)));
          settleStore4(s4, T4, eT, n4, a.y + o0, a.amb + o0, st, [&](int i, double s, double T, float* y) {
            int& xl = g.xlsb[m - m0];
            if (xl == kLsbUnknown) xl = minLsbExponent(a.x + size_t(m) * K, K);
            const int lsb = productLsb(xl, denseBoundsLsb(a.bounds[size_t(r + w + i) * denseBoundsStride(K) + nb]));
            return settleOne(s, T, D, lsb, y, st, [&](double& s1, double& t1) {
              tightDot(wb, w + i, xp, MC, m - m0, Kv, s1, t1);
              s1 *= R;
              t1 *= R;
              return D;
            });
          });
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
  const bool tiled = a.rows >= (a.kind == DenseKind::Bf16 ? kGemmRowsBf16 : kGemmRowsFp8);
  if (a.kind == DenseKind::Bf16) tiled ? gemmKind<DenseKind::Bf16>(a, j0, j1, st) : a.rows == 1 ? bf16Gemv<1>(a, j0, j1, st) : bf16Gemv<2>(a, j0, j1, st);
  else if (a.rows < kGemmRowsFp8) {
    // up to 3 activation rows per pass over the weights
    for (int m0 = 0; m0 < a.rows; m0 += 3) {
      DenseArgs b = a;
      b.rows = a.rows - m0 < 3 ? a.rows - m0 : 3;
      b.x += size_t(m0) * a.K;
      b.y += size_t(m0) * a.n;
      b.amb += size_t(m0) * a.n;
      b.rows == 1 ? fp8Gemv<1>(b, j0, j1, st) : b.rows == 2 ? fp8Gemv<2>(b, j0, j1, st) : fp8Gemv<3>(b, j0, j1, st);
    }
  }
  else tiled ? gemmKind<DenseKind::Fp8>(a, j0, j1, st) : rowsKind<DenseKind::Fp8>(a, j0, j1, st);
}

}  // namespace avx2
}  // namespace dsv4
#endif
