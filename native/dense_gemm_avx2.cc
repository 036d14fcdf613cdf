// AVX2 + FMA tiled GEMM of the exact dense products (bf16.h), from kGemmRows* activation rows
// (dense_avx2.h); called by denseRows in bf16_avx2.cc.
//
//
// A panel of up to kPanel weight rows is converted to float64 once per chunk of activation
// rows (FP8: times 2^(scale byte - 3), exact, so the activations need no per-group factor:
// products are w x * 2^-380, BF16 ones w x * 2^-384), then each 4x3 tile of (weight rows,
// activation rows) accumulates its 12 dot products in registers over a slice of K whose panel
// part stays in L1 (partial sums kept in S between slices). Every lane sums Kv = ceil(K/4)
// products in sequence and the final reduction adds two levels: depth Kv + 2. Level 1 runs 4
// outputs at a time in vector form (settleF32's test); the rest goes the per-element way.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <vector>

#include "dense_avx2.h"

namespace dsv4 {
namespace avx2 {
namespace dense {

namespace {

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


constexpr int kTileW = 4, kTileX = 3;  // weight and activation rows of a register tile

/** Chunk rows rounded up to whole tiles. */
inline int chunkRowsAlloc(int MC) { return (MC + kTileX - 1) / kTileX * kTileX; }

/** Offset of vector v of chunk row m in the prepared activations: slice by slice, in each slice the rows
 *  by tile (kTileX), a tile's rows interleaved per vector ([v][row]), so a tile reads one sequential
 *  stream (rows a slice apart ran the tile at ~78% of the float64 FMA rate, interleaved ~90%). */
inline size_t chunkAt(int MC, int m, int v) {
  return (size_t(v / kSliceV) * chunkRowsAlloc(MC) + m / kTileX * kTileX) * kSliceV * 4 + size_t(v % kSliceV) * (4 * kTileX) + size_t(m % kTileX) * 4;
}

/** Activation rows [m0, m1) as x * 2^512 in kPerm16 order per 16 (the tail as is, zero to 4 Kv), layout
 *  chunkAt; mx: max |x| per 128-block (Inf when the block holds Inf/NaN). */
void gemmPrep(const DenseArgs& a, int m0, int m1, int MC, int Kv, double* xp, double* mx) {
  const int K = a.K, K16 = K & ~15, nb = (K + 127) / 128;
  const double f1 = std::ldexp(1.0, kXExp);
  const __m256d f = _mm256_set1_pd(f1);
  for (int m = m0; m < m1; m++) {
    const float* x = a.x + size_t(m) * K;
    for (int k = 0; k < K16; k += 16) prep16(x + k, xp + chunkAt(MC, m - m0, k / 4), f, 4 * kTileX);
    for (int k = K16; k < Kv * 4; k++) xp[chunkAt(MC, m - m0, k / 4) + k % 4] = k < K ? double(x[k]) * f1 : 0.0;
    blockMax(x, K, mx + size_t(m - m0) * nb);
  }
}

/** Offset of weight row w's vector v in a converted panel: slice by slice (contiguous in L1: rows K apart
 *  would share cache sets when K is a multiple of 512), in each slice the rows by tile (kTileW), a tile's
 *  rows interleaved per vector as the activations (chunkAt). */
inline size_t panelAt(int w, int v) {
  return (size_t(v / kSliceV) * kPanel + w / kTileW * kTileW) * kSliceV * 4 + size_t(v % kSliceV) * (4 * kTileW) + size_t(w % kTileW) * 4;
}

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
      for (int i = 0; i < 4; i++) _mm256_store_pd(d + 4 * kTileW * i, q[i]);
    }
    for (int k = K16; k < Kv * 4; k++) {
      if (KIND == DenseKind::Fp8 && k < K) f1 = fp8ScaleExact(sr[k >> 7]) ? std::ldexp(1.0, int(sr[k >> 7]) - 3) : 1;
      wb[panelAt(w, k / 4) + k % 4] = k < K ? placed1<KIND>(wr, k) * f1 : 0.0;
    }
  }
}

/** NW weight rows (wb: a tile's rows at panelAt) x NX activation rows (xb: at chunkAt) over nv vectors:
 *  sums continue from S[x * kPanel + w]. */
template <int NW, int NX>
inline void gemmTile(const double* wb, const double* xb, int nv, double* S) {
  __m256d acc[NW][NX];
  for (int w = 0; w < NW; w++)
    for (int x = 0; x < NX; x++) acc[w][x] = _mm256_load_pd(S + (x * kPanel + w) * 4);
  for (int v = 0; v < nv; v++) {
    __m256d xv[NX];
    for (int x = 0; x < NX; x++) xv[x] = _mm256_load_pd(xb + 4 * x + 4 * kTileX * size_t(v));
    for (int w = 0; w < NW; w++) {
      const __m256d wv = _mm256_load_pd(wb + 4 * w + 4 * kTileW * size_t(v));
      for (int x = 0; x < NX; x++) acc[w][x] = _mm256_fmadd_pd(wv, xv[x], acc[w][x]);
    }
  }
  for (int w = 0; w < NW; w++)
    for (int x = 0; x < NX; x++) _mm256_store_pd(S + (x * kPanel + w) * 4, acc[w][x]);
}

void gemmTileAny(int nw, int nx, const double* wb, const double* xb, int nv, double* S) {
  switch (nw * 4 + nx) {
#define DSV4_TILE(W, X) \
  case W * 4 + X:       \
    return gemmTile<W, X>(wb, xb, nv, S);
    DSV4_TILE(4, 3) DSV4_TILE(4, 2) DSV4_TILE(4, 1) DSV4_TILE(3, 3) DSV4_TILE(3, 2) DSV4_TILE(3, 1)
    DSV4_TILE(2, 3) DSV4_TILE(2, 2) DSV4_TILE(2, 1) DSV4_TILE(1, 3) DSV4_TILE(1, 2)
#undef DSV4_TILE
    default: return gemmTile<1, 1>(wb, xb, nv, S);
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
  double* xp = g.xp.need(size_t(chunkRowsAlloc(MC)) * ((Kv + kSliceV - 1) / kSliceV) * kSliceV * 4);
  double* wb = g.wb.need(size_t(kPanel) * ((Kv + kSliceV - 1) / kSliceV) * kSliceV * 4);
  double* S = g.S.need(size_t(MC) * kPanel * 4);
  double* mx = g.mx.need(size_t(MC) * nb);
  double* bt = g.bt.need(size_t(nb) * kPanel);
  if (!xp || !wb || !S || !mx || !bt) return gemvRows(a, j0, j1, st);
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
        for (int m = m0; m < m1; m += kTileX) {
          const int nx = m1 - m < kTileX ? m1 - m : kTileX;
          for (int w = 0; w < nw; w += kTileW)
            gemmTileAny(nw - w < kTileW ? nw - w : kTileW, nx, wb + panelAt(w, v0), xp + chunkAt(MC, m - m0, v0), nv, S + (size_t(m - m0) * kPanel + w) * 4);
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
            if (xl == kLsbUnknown) xl = minLsbExponentAvx2(a.x + size_t(m) * K, K);
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

void gemmRows(const DenseArgs& a, int j0, int j1, DenseStats& st) {
  a.kind == DenseKind::Bf16 ? gemmKind<DenseKind::Bf16>(a, j0, j1, st) : gemmKind<DenseKind::Fp8>(a, j0, j1, st);
}

}  // namespace dense
}  // namespace avx2
}  // namespace dsv4
#endif
