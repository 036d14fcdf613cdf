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
// Loops: the BF16 GEMV (bf16Gemv, 1-4 activation rows: the head in decode), the
// FP8 GEMV (wo_a, up to 7 rows) and rowsKind (the GEMV above: the GEMM's fallback
// when its buffers cannot be allocated); from 5 BF16 / 8 FP8 rows denseRows hands
// over to the tiled GEMM (dense_gemm_avx2.cc); shared pieces in dense_avx2.h. Any
// summation order gives the same bits, as each result is a certified rounding of
// the exact sum.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dense_avx2.h"
#include "fp8_spread.h"

namespace dsv4 {
namespace avx2 {

namespace {

using namespace dense;

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
            if (p.xlsb[m] == kLsbUnknown) p.xlsb[m] = minLsbExponentAvx2(a.x + size_t(m) * K, K);
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



// ---------- BF16 GEMV (one activation row: the head in decode) ----------

// Software prefetch into L2 (T1), 8 KiB ahead of the weight stream. Into L1 (T0) 1 KiB ahead, a core streamed the
// head from DRAM at ~14 GB/s while the same loop ran at ~23 from L2: the L1 miss buffers the T0 prefetches hold
// cap the bytes in flight. T1 8 KiB ahead (64-byte aligned weights, as the arena gives): the 129280x2048 head, 1
// thread, 13.7-13.9 -> 22-24 GB/s, 2 threads (C++ harness of this loop) 18-26 -> 33-34 GB/s; bench-2g exact decode
// step 50-52 -> 43-46 ms alternating (without huge pages 52 -> 47). 16 B off the 64-byte grid T1 gained nothing.
constexpr int kGemvPrefetch = 8192;

/** Accumulators per activation row in bf16Dot: 4 for 1-2 rows, 2 for 3-4 (8 in all, with the 4 placed vectors
 *  and 3 constants within the 16 registers). */
constexpr int bf16GemvAcc(int rows) { return rows <= 2 ? 4 : 2; }

/** bf16Dot's accumulators: acc[m][i] of activation row m. */
template <int RT>
using Bf16Acc = __m256d[RT][bf16GemvAcc(RT)];

/** bf16Dot's steps over the elements [k0, k1) (16-weight chunks from the row's vector start h) into acc, each
 *  chunk prefetching `ahead` bytes ahead of it into L2. */
template <int RT>
inline void bf16DotSteps(const Consts& c, const uint8_t* wr, int k0, int k1, const double* const* xr, Bf16Acc<RT>& acc, size_t ahead) {
  constexpr int NC = RT == 1 ? 2 : 1;  // 16-weight chunks per step
  constexpr int NA = bf16GemvAcc(RT);
  const auto chunk = [&](int k) {
    __m256d q[4];
    load16<DenseKind::Bf16>(c, wr + size_t(k) * 2, q);
#pragma GCC unroll 4
    for (int m = 0; m < RT; m++)
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) acc[m][i % NA] = _mm256_fmadd_pd(q[i], _mm256_loadu_pd(xr[m] + k + 4 * i), acc[m][i % NA]);
  };
  int k = k0;
  for (; k + 16 * NC <= k1; k += 16 * NC) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + size_t(k) * 2 + ahead), _MM_HINT_T1);
#pragma GCC unroll 2
    for (int n = 0; n < NC; n++) chunk(k + 16 * n);
  }
  if (k < k1) chunk(k);
}

/** The row's sums from its accumulators, plus the scalar head [0, h) and tail [k16, K). */
template <int RT>
inline void bf16DotFinish(const uint8_t* wr, int K, int h, const double* const* xr, const Bf16Acc<RT>& acc, double* s) {
  constexpr int NA = bf16GemvAcc(RT);
  const int K16 = k16(K, h);
  for (int m = 0; m < RT; m++) {
    double sd = hsum(NA == 4 ? _mm256_add_pd(_mm256_add_pd(acc[m][0], acc[m][1]), _mm256_add_pd(acc[m][2 % NA], acc[m][3 % NA]))
                             : _mm256_add_pd(acc[m][0], acc[m][1 % NA]));
    for (int part = 0; part < 2; part++)
      for (int k1 = part ? K16 : 0; k1 < (part ? K : h); k1++) sd += placed1<DenseKind::Bf16>(wr, k1) * xr[m][k1];
    s[m] = sd;
  }
}

/** dotTile<Bf16, RT, 4, false>'s sums (each accumulator adds the same products in the same order) of one weight
 *  row against RT prepared activation rows. One row: two 16-weight chunks per step, so one software prefetch per
 *  cache line; two: one chunk per step (two chunks' weights and 8 accumulators would not fit in registers). */
template <int RT>
inline void bf16Dot(const Consts& c, const uint8_t* wr, int K, int h, const double* const* xr, double* s) {
  Bf16Acc<RT> acc;
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_pd();
  bf16DotSteps<RT>(c, wr, h, k16(K, h), xr, acc, kGemvPrefetch);
  bf16DotFinish<RT>(wr, K, h, xr, acc, s);
}

/** Elements per K slice for RT activation rows of K elements (0: none). 3-4 rows of prepared float64 activations
 *  above 32 KiB overflow L1 and stream from L2 once per weight row: the bench-2g head at 4 rows (64 KiB) ran 19.2
 *  cycles per 16-weight step in L2 against 12.2 when K = 512 fit. In 8 KiB slices, each read once per group of 4
 *  weight rows: the head from DRAM, 2 threads, alternating, 3 rows 13.2-15.1 -> 16.7 GB/s and 4 rows 11.6-11.7
 *  -> 12.4-12.9 (16 KiB slices: 16.1-16.4 and 11.7; 2 rows, 32 KiB in 16 KiB slices, 0.85x: not sliced); in a
 *  bench-2g decode step of 4 sequences, old/new addon alternating, the head 53.6-54.2 -> 40.1-40.4 ms. */
inline int bf16SliceOf(int RT, int K) {
  constexpr size_t kL1Rows = 32 << 10, kSlice = 8 << 10;
  if (RT < 3 || size_t(RT) * K * 8 <= kL1Rows) return 0;
  return int(kSlice / (8 * size_t(RT))) & ~15;
}

/** bf16Dot of the n4 weight rows at wr (K elements apart) in K slices of S elements: each slice's activations
 *  are read from L2 once for the 4 rows, the accumulators kept between slices (the same sums as bf16Dot). The
 *  prefetch runs one group (4 rows) ahead at the same offset. */
template <int RT>
inline void bf16DotSliced(const Consts& c, const uint8_t* wr, int n4, int K, int h, int S, const double* const* xr, double (*s)[RT]) {
  Bf16Acc<RT> acc[4];
  for (int i = 0; i < n4; i++)
    for (auto& row : acc[i])
      for (auto& v : row) v = _mm256_setzero_pd();
  const int K16 = k16(K, h);
  for (int k0 = h; k0 < K16; k0 += S)
    for (int i = 0; i < n4; i++) bf16DotSteps<RT>(c, wr + size_t(i) * K * 2, k0, std::min(k0 + S, K16), xr, acc[i], size_t(4) * K * 2);
  for (int i = 0; i < n4; i++) bf16DotFinish<RT>(wr + size_t(i) * K * 2, K, h, xr, acc[i], s[i]);
}

/** Weight rows [r0 + j0, r0 + j1) against RT (1-4) activation rows, 4 weight rows settled together in vector
 *  form per activation row; an activation row's lsb (the certificate) only when an output needs it. */
template <int RT>
__attribute__((noinline)) void bf16Gemv(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  static const Consts c;
  const int K = a.K, nb = (K + 127) / 128, h = alignHead<DenseKind::Bf16>(a), D = depth(K, h, bf16GemvAcc(RT));
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
  const int S = bf16SliceOf(RT, K);
  for (int j = j0; j < j1; j += 4) {
    const int n4 = j1 - j < 4 ? j1 - j : 4;
    alignas(32) double sd[RT][4] = {}, Td[RT][4] = {};
    double sl[4][RT];
    if (S) bf16DotSliced<RT>(c, W + (size_t(a.r0) + j) * K * 2, n4, K, h, S, xr, sl);
    for (int i = 0; i < n4; i++) {
      const size_t r = size_t(a.r0) + j + i;
      double s[RT];
      if (S) std::copy(sl[i], sl[i] + RT, s);
      else bf16Dot<RT>(c, W + r * K * 2, K, h, xr, s);
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
        if (p.xlsb[m] == kLsbUnknown) p.xlsb[m] = minLsbExponentAvx2(a.x + size_t(m) * K, K);
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
// code's top 16 bits (sign<<15 | (c & 0x7f)<<1, the placement above), two byte unpacks, then
// shifts, masks and vpshufb spread them over 8 x 4 float64 lanes: position 4i + e of a step holds element
// (i < 4 ? 0 : 8) + (i & 3) + 4 (e & 1) + 16 (e >> 1), the prepared activations' order. One
// activation row: up to 4 weight rows per pass with 2 accumulators each (gemvStep, fp8_spread.h;
// 8 independent FMA chains), their 4 sums reduced into one vector.

using Cvt32 = Fp8Spread;  // fp8_spread.h

constexpr int kGemvAhead = 8192;  // software prefetch into L2, bytes ahead in each row stream, as fp8_gemm's GEMV
constexpr int kGemvSegment = 512;  // codes per accumulator chain before it is folded into the rows' total

/** Summation depth of fp8GemvSums over L codes: a chain of kGemvSegment / 8 FMAs per lane, 3 levels of
 *  gemvBlockSums, one add per segment into the total (a chain over all of L would be L / 8 deep). */
constexpr int fp8GemvDepth(int L) { return (L < kGemvSegment ? L : kGemvSegment) / 8 + 3 + (L + kGemvSegment - 1) / kGemvSegment; }

/** Sums of NW (1-4) weight rows (K apart from w0) over the steps [0, L) into sums[0..NW) (4 written).
 *  Not inlined: inside fp8Gemv GCC kept the accumulators in stack slots. */
template <int NW>
__attribute__((noinline)) void fp8GemvSums(const Cvt32& c, const uint8_t* w0, int K, int L, const double* xq, double* sums) {
  const __m256i sign = c.sign, m1 = c.mid[0], m2 = c.mid[1], hi16 = c.hi16;
  // the running total lives in sums (memory; a 17th register would spill an accumulator)
  _mm256_store_pd(sums, _mm256_setzero_pd());
  for (int k0 = 0; k0 < L; k0 += kGemvSegment) {
    // one chain per segment, then folded: a shallow depth keeps the level-1 bound tight
    const int k1 = L - k0 < kGemvSegment ? L : k0 + kGemvSegment;
    __m256d s[8];
    for (auto& v : s) v = _mm256_setzero_pd();
    for (int k = k0; k < k1; k += 32) {
      // software prefetch into L2 8 KiB ahead in each row slot's stream (row i, then the later passes' row i),
      // 4 lines of a row together, as fp8_gemm's GEMV
      if ((k & 255) == 0)
        for (int i = 0; i < NW; i++) {
          size_t off = size_t(k) + kGemvAhead;
          const uint8_t* base = w0 + size_t(i) * K;
          while (off >= size_t(K)) off -= K, base += 4 * size_t(K);
          for (int l = 0; l < 4; l++) _mm_prefetch(reinterpret_cast<const char*>(base + off + 64 * l), _MM_HINT_T1);
        }
#pragma GCC unroll 4
      for (int i = 0; i < NW; i++) gemvStep(sign, m1, m2, hi16, w0 + size_t(i) * K + k, xq + k, s[2 * i], s[2 * i + 1]);
    }
    _mm256_store_pd(sums, _mm256_add_pd(_mm256_load_pd(sums), gemvBlockSums(s)));
  }
}

/** Vector sums of one weight row against RT (2-3) activation rows (xs doubles apart) over the steps
 *  [0, L): each converted step serves every activation row. */
template <int RT>
void fp8GemvRows(const Cvt32& c, const uint8_t* wr, int K, int L, const double* xq, size_t xs, double* sums) {
  // accumulators per activation row: 4 for 2 rows, 2 for 3 (12 spilled: 8192x1024 from memory, 2 threads, 3 rows
  // 1.1-1.23x; 3 + 1 rows as fast as 2 + 2 and one 4-row pass, 3 + 3 ahead of 2 + 2 + 2 at 6)
  constexpr int NA = RT <= 2 ? 4 : 2;
  __m256d acc[RT][NA];
  for (int m = 0; m < RT; m++)
    for (int g = 0; g < NA; g++) acc[m][g] = _mm256_setzero_pd();
  for (int k = 0; k < L; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(wr + 4 * size_t(K) + k), _MM_HINT_T0);
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + k));
    const __m256i lo = _mm256_add_epi8(b, b), hi = _mm256_and_si256(b, c.sign);
    const __m256i w[2] = {_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi)};
    for (int h = 0; h < 2; h++) {
      const __m256d q[4] = {_mm256_castsi256_pd(spreadWords<0>(c, w[h])), _mm256_castsi256_pd(spreadWords<1>(c, w[h])),
                            _mm256_castsi256_pd(spreadWords<2>(c, w[h])), _mm256_castsi256_pd(spreadWords<3>(c, w[h]))};
      for (int g = 0; g < 4; g++)
        for (int m = 0; m < RT; m++) acc[m][g % NA] = _mm256_fmadd_pd(q[g], _mm256_loadu_pd(xq + m * xs + k + 16 * h + 4 * g), acc[m][g % NA]);
    }
  }
  for (int m = 0; m < RT; m++)
    sums[m] = hsum(NA == 4 ? _mm256_add_pd(_mm256_add_pd(acc[m][0], acc[m][1]), _mm256_add_pd(acc[m][2 % NA], acc[m][3 % NA]))
                           : _mm256_add_pd(acc[m][0], acc[m][1 % NA]));
}

/** 2^(kXExp + scale - 127) for an exact scale byte (else 2^kXExp: that block's bounds are NaN, so flagged). */
inline double fp8GroupFactor(uint8_t sb) {
  const int e = kXExp + (fp8ScaleExact(sb) ? int(sb) - 127 : 0);
  uint64_t bits = uint64_t(e + 1023) << 52;
  double f;
  std::memcpy(&f, &bits, 8);
  return f;
}

/** The natural-order prepared row for weight group `group`: x * 2^(512 + scale - 127) per 128-block (nat, K doubles). */
void fp8GemvNat(const DenseArgs& a, const float* x, int group, double* nat) {
  const int K = a.K, nb = (K + 127) / 128;
  for (int b = 0; b < nb; b++) {
    const __m256d f = _mm256_set1_pd(fp8GroupFactor(a.ws[size_t(group) * nb + b]));
    const int k0 = b * 128, k1 = k0 + 128 < K ? k0 + 128 : K;
    int k = k0;
    for (; k + 4 <= k1; k += 4) _mm256_storeu_pd(nat + k, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + k)), f));
    for (; k < k1; k++) nat[k] = double(x[k]) * _mm256_cvtsd_f64(f);
  }
}

/** Prepared activation row x for weight group `group`, xq: the steps' grid [0, L) (element k at grid position
 *  k + mis, zero outside [0, K)) in the steps' order. With mis = 0 and K = L (aligned rows, K % 32 == 0) each
 *  32-step lies in one 128-block and xq comes straight from x; else via nat (computed here) and grid. Returns
 *  whether nat was computed. */
bool fp8GemvPrep(const DenseArgs& a, const float* x, int group, int mis, int L, double* xq, double* nat, double* grid) {
  const int K = a.K, nb = (K + 127) / 128;
  // positions 4i..4i+3 of a step hold elements (b + g, b + g + 4, b + g + 16, b + g + 20), b = 0 for i < 4, else 8,
  // g = i & 3: a 4x4 transpose of the elements b.., b + 4.., b + 16.., b + 20..
  const auto permute = [&](const auto& load, int k) {
    for (int b = 0; b < 16; b += 8) {
      const __m256d A = load(k + b), B = load(k + b + 4), C = load(k + b + 16), D = load(k + b + 20);
      const __m256d t0 = _mm256_unpacklo_pd(A, B), t1 = _mm256_unpackhi_pd(A, B);
      const __m256d t2 = _mm256_unpacklo_pd(C, D), t3 = _mm256_unpackhi_pd(C, D);
      double* o = xq + k + 2 * b;  // position 4i with i = b / 2
      _mm256_storeu_pd(o, _mm256_permute2f128_pd(t0, t2, 0x20));
      _mm256_storeu_pd(o + 4, _mm256_permute2f128_pd(t1, t3, 0x20));
      _mm256_storeu_pd(o + 8, _mm256_permute2f128_pd(t0, t2, 0x31));
      _mm256_storeu_pd(o + 12, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
  };
  if (mis == 0 && L == K) {
    for (int b = 0; b < nb; b++) {
      const __m256d f = _mm256_set1_pd(fp8GroupFactor(a.ws[size_t(group) * nb + b]));
      for (int k = b * 128; k < b * 128 + 128; k += 32) permute([&](int i) { return _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), f); }, k);
    }
    return false;
  }
  fp8GemvNat(a, x, group, nat);
  std::fill(grid, grid + mis, 0.0);
  std::memcpy(grid + mis, nat, sizeof(double) * (L - mis < K ? L - mis : K));
  if (mis + K < L) std::fill(grid + mis + K, grid + L, 0.0);
  for (int k = 0; k < L; k += 32) permute([&](int i) { return _mm256_loadu_pd(grid + i); }, k);
  return true;
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

/** Σ_b br[b] * mx[b] (a magnitude bound: any summation order, the settle factor has slack), 4 blocks per step. */
inline double boundDot(const float* br, const double* mx, int nb) {
  __m256d t = _mm256_setzero_pd();
  int b = 0;
  for (; b + 4 <= nb; b += 4) t = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(br + b)), _mm256_loadu_pd(mx + b), t);
  double T = hsum(t);
  for (; b < nb; b++) T += double(br[b]) * mx[b];
  return T;
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
  // summation depth (one row: fp8GemvDepth; 2 rows: L/16 per lane chain, then 2 + 2; 3 rows, 2 accumulators:
  // L/8, then 1 + 2), plus the sequential tail
  const int D = (RT == 1 ? fp8GemvDepth(L) : RT == 2 ? L / 16 + 4 : L / 8 + 3) + (K % 32 == 0 ? 0 : K - L);
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
  bool natReady[RT];  // nat (the natural-order row) of this group: tails and the tight fallback read it
  const __m256d eT = settleFactor(D), vR = _mm256_set1_pd(R);
  for (int j = j0; j < j1;) {
    const int r = a.r0 + j;
    if (r >> 7 != group) {
      group = r >> 7;
      for (int m = 0; m < RT; m++) natReady[m] = fp8GemvPrep(a, a.x + size_t(m) * K, group, mis, L, xq + m * xs, nat + size_t(m) * K, gridBuf.data());
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
      double* nm = nat + size_t(m) * K;
      const auto natRow = [&]() -> const double* {
        if (!natReady[m]) fp8GemvNat(a, a.x + size_t(m) * K, group, nm), natReady[m] = true;
        return nm;
      };
      for (int i = 0; i < n4; i++) {
        if (K % 32) {
          const double* nr = natRow();
          for (int k = L; k < K; k++) sd[m][i] += placed1<DenseKind::Fp8>(w0 + size_t(i) * K, k) * nr[k];
        }
        Td[m][i] = boundDot(a.bounds + size_t(r + i) * denseBoundsStride(K), mx + size_t(m) * nb, nb);
      }
      const size_t o = size_t(m) * a.n + j;
      settleStore4(_mm256_mul_pd(_mm256_load_pd(sd[m]), vR), _mm256_load_pd(Td[m]), eT, n4, a.y + o, a.amb + o, st, [&](int i, double s, double T, float* y) {
        if (xlsb[m] == kLsbUnknown) xlsb[m] = minLsbExponentAvx2(a.x + size_t(m) * K, K);
        const uint8_t* wr = w0 + size_t(i) * K;
        const int lsb = productLsb(xlsb[m], denseBoundsLsb(a.bounds[size_t(r + i) * denseBoundsStride(K) + nb]));
        return settleOne(s, T, D, lsb, y, st, [&](double& s1, double& t1) {
          fp8GemvTight(wr, natRow(), K, s1, t1);
          s1 *= R;
          t1 *= R;
          return K + 2;
        });
      });
    }
    j += n4;
  }
}

}  // namespace

void dense::gemvRows(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  a.kind == DenseKind::Bf16 ? rowsKind<DenseKind::Bf16>(a, j0, j1, st) : rowsKind<DenseKind::Fp8>(a, j0, j1, st);
}

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
  if (a.kind == DenseKind::Bf16) {
    if (tiled) return dense::gemmRows(a, j0, j1, st);
    switch (a.rows) {
      case 1: return bf16Gemv<1>(a, j0, j1, st);
      case 2: return bf16Gemv<2>(a, j0, j1, st);
      case 3: return bf16Gemv<3>(a, j0, j1, st);
      default: return bf16Gemv<4>(a, j0, j1, st);
    }
  }
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
  else tiled ? dense::gemmRows(a, j0, j1, st) : rowsKind<DenseKind::Fp8>(a, j0, j1, st);
}

}  // namespace avx2
}  // namespace dsv4
#endif
