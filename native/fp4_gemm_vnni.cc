// AVX-512 (VNNI + VL + BW) exact FP4 x FP8 GEMM: fp4_gemm of more than kGemvRowsVnni activation rows
// (fp4_avx2.cc dispatches here when cpuVnni()). The same exact int32 block sums as fp4_avx2.cc,
// sum((k + 12) X) - 12 sum(X) with X = D * 2^S, in a layout whose vector lanes are 8 weight rows:
//
// - a weight vector holds, for 8 rows, one packed dword (8 elements of a 32-element block): its low
//   nibbles (elements 0, 2, 4, 6 of the 8) or its high nibbles (1, 3, 5, 7), as u8 (k + 12);
// - the activation side of that dword is 4 broadcast pairs (digit bytes, int16 factors): maddubs
//   against digits (D0, 0, D4, 0) gives D0 (k0 + 12) and D4 (k4 + 12) in the two int16 lanes, and
//   vpdpwssd times (2^S0, 2^S4) adds both into each row's int32 sum;
// - after the block's 4 dwords each lane holds one row's exact block sum, so the reference's fp32
//   block update (fl32(sum) * act scale * weight scale, added in K order) runs on 8 outputs per
//   vector with no transpose. The lanes-are-blocks layout of fp4_avx2.cc spent ~25% of its time on
//   that transpose and update (all updates removed: 1.4x).
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")
#include <immintrin.h>

#include <cstring>

#include "fp4_avx2.h"
#include "kernels.h"

namespace dsv4 {
namespace avx2 {

namespace {

// Prepared activations: per 256-element chunk (kChunkV bytes, rows fp4PrepBytesPerRow apart), per
// 32-element block 4 dwords x 32 bytes: digits and factors of the groups A (elements 0, 4), B (2, 6),
// C (1, 5), D (3, 7) of the dword's 8 elements; then the 8 blocks' negated corrections -12 sum(X)
// (int32) and act scales * 2^-10 (float).
constexpr int kBlockV = 128;
constexpr int kChunkV = 8 * kBlockV + 64;
// A register tile: kMT activation rows x kNV vectors of 8 weight rows: kMT * kNV int32 sums, as many fp32
// outputs and 2 kNV weight vectors in the 32 registers (2 rows x 4 vectors ran 1.03-1.06x 4 rows x 2
// vectors, 3 x 3 in between: each broadcast then feeds 4 weight vectors)
constexpr int kNV = 4;
constexpr int kNG = 8 * kNV;  // weight rows per converted group
constexpr int kMT = 2;
constexpr int kMC = 64;  // activation rows per pass over a weight group (their chunks stay in L2; 32: 0.96-0.98x)

/** e2m1 code -> u8 (2 value + 12), as Cvt4 in fp4_avx2.cc. */
inline __m256i e2m1Lut() {
  const __m128i t = _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
  return _mm256_broadcastsi128_si256(t);
}

/** ue8m0 byte -> fp32 (0: 2^-127, 255: NaN), as fp4Scales. */
inline float e8m0(uint8_t b) {
  const uint32_t bits = b == 0 ? 0x00400000u : b == 255 ? 0x7fc00000u : uint32_t(b) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** The converted weights of one chunk for kNG rows: [block][dword][lo rows 0-7, hi rows 0-7, lo rows
 *  8-15, hi rows 8-15, ...], and the rows' block scales [block][row]. */
struct WeightChunk {
  alignas(64) __m256i v[8][4][2 * kNV];
  alignas(32) float scale[8][kNG];
};

/** Rows r[0..kNG) (pointers to the chunk's packed bytes and scale bytes) into w, nblk blocks. */
inline void convertChunk(const uint8_t* const* rp, const uint8_t* const* sp, int nblk, WeightChunk& w) {
  const __m256i lut = e2m1Lut(), low = _mm256_set1_epi8(15);
  for (int h = 0; h < kNV; h++) {
    const uint8_t* const* r = rp + 8 * h;
    for (int b = 0; b < nblk; b++) {
      // [row j's 16 bytes | row j+4's]: a 4x4 dword transpose per 128-bit lane leaves dword d of rows 0-3 | 4-7
      __m256i R[4];
      for (int j = 0; j < 4; j++)
        R[j] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r[j] + 16 * b))),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[j + 4] + 16 * b)), 1);
      const __m256i t0 = _mm256_unpacklo_epi32(R[0], R[1]), t1 = _mm256_unpackhi_epi32(R[0], R[1]);
      const __m256i t2 = _mm256_unpacklo_epi32(R[2], R[3]), t3 = _mm256_unpackhi_epi32(R[2], R[3]);
      const __m256i q[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                            _mm256_unpackhi_epi64(t1, t3)};
      for (int d = 0; d < 4; d++) {
        w.v[b][d][2 * h] = _mm256_shuffle_epi8(lut, _mm256_and_si256(q[d], low));
        w.v[b][d][2 * h + 1] = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(q[d], 4), low));
      }
    }
  }
  for (int j = 0; j < kNG; j++)
    for (int b = 0; b < nblk; b++) w.scale[b][j] = e8m0(sp[j][b]);
}

inline __m256i bcast(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/** NM (1..kMT) activation rows (chunk pointers xc) x kNG weight rows over nblk blocks: y[m][0..kNG) +=
 *  each block's fl32(sum) * act scale * weight scale, in K order. */
template <int NM>
inline void tile(const uint8_t* const* xc, const WeightChunk& w, int nblk, float* const* y) {
  __m256 Y[NM][kNV];
  for (int m = 0; m < NM; m++)
    for (int h = 0; h < kNV; h++) Y[m][h] = _mm256_load_ps(y[m] + 8 * h);
  for (int b = 0; b < nblk; b++) {
    __m256i A[NM][kNV];
    for (int m = 0; m < NM; m++)
      for (int h = 0; h < kNV; h++) A[m][h] = bcast(xc[m] + 8 * kBlockV + 4 * b);  // -12 sum(X)
#pragma GCC unroll 4
    for (int d = 0; d < 4; d++) {
      __m256i lo[kNV], hi[kNV];
      for (int h = 0; h < kNV; h++) {
        lo[h] = w.v[b][d][2 * h];
        hi[h] = w.v[b][d][2 * h + 1];
      }
#pragma GCC unroll 4
      for (int m = 0; m < NM; m++) {
        const uint8_t* p = xc[m] + b * kBlockV + 32 * d;
        const __m256i dA = bcast(p), fA = bcast(p + 4), dB = bcast(p + 8), fB = bcast(p + 12);
        const __m256i dC = bcast(p + 16), fC = bcast(p + 20), dD = bcast(p + 24), fD = bcast(p + 28);
        for (int h = 0; h < kNV; h++) A[m][h] = _mm256_dpwssd_epi32(A[m][h], _mm256_maddubs_epi16(lo[h], dA), fA);
        for (int h = 0; h < kNV; h++) A[m][h] = _mm256_dpwssd_epi32(A[m][h], _mm256_maddubs_epi16(lo[h], dB), fB);
        for (int h = 0; h < kNV; h++) A[m][h] = _mm256_dpwssd_epi32(A[m][h], _mm256_maddubs_epi16(hi[h], dC), fC);
        for (int h = 0; h < kNV; h++) A[m][h] = _mm256_dpwssd_epi32(A[m][h], _mm256_maddubs_epi16(hi[h], dD), fD);
      }
    }
    // the reference's block update: fl32(exact sum) * (act scale * 2^-10) * weight scale (fp4Values)
    for (int m = 0; m < NM; m++) {
      const __m256 sa = _mm256_broadcast_ss(reinterpret_cast<const float*>(xc[m] + 8 * kBlockV + 32 + 4 * b));
      for (int h = 0; h < kNV; h++)
        Y[m][h] = _mm256_add_ps(Y[m][h], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(A[m][h]), sa), _mm256_load_ps(w.scale[b] + 8 * h)));
    }
  }
  for (int m = 0; m < NM; m++)
    for (int h = 0; h < kNV; h++) _mm256_store_ps(y[m] + 8 * h, Y[m][h]);
}

}  // namespace

bool fp4PrepareVnni(const GemmArgs& a, uint8_t* prep, int m0, int m1) {
  static constexpr int kGroup[4][2] = {{0, 4}, {2, 6}, {1, 5}, {3, 7}};  // A, B, C, D; B and D in the odd bytes
  const fp4avx2::ActTables& T = fp4avx2::actTables();
  const int K = a.K, nkb = K / 128, nch = (K + 255) / 256;
  const size_t rowBytes = fp4PrepBytesPerRow(K);
  bool ok = true;
  uint8_t nan = 0;
  for (int m = m0; m < m1; m++) {
    const uint8_t* q = a.xq + size_t(m) * K;
    for (int c = 0; c < nch; c++) {
      uint8_t* xc = prep + size_t(m) * rowBytes + size_t(c) * kChunkV;
      int32_t* nc = reinterpret_cast<int32_t*>(xc + 8 * kBlockV);
      float* sv = reinterpret_cast<float*>(xc + 8 * kBlockV + 32);
      const int nblk = K - c * 256 >= 256 ? 8 : (K - c * 256) / 32;
      for (int b = 0; b < 8; b++) {
        if (b >= nblk) {  // never read
          nc[b] = 0;
          sv[b] = 0.0f;
          continue;
        }
        const uint8_t* e = q + c * 256 + b * 32;
        int32_t corr = 0;
        for (int i = 0; i < 32; i++) {
          corr += T.e4m3Int[e[i]];
          nan |= uint8_t((e[i] & 0x7f) + 1);
        }
        for (int d = 0; d < 4; d++)
          for (int g = 0; g < 4; g++) {
            uint8_t* o = xc + b * kBlockV + 32 * d + 8 * g;
            const uint8_t c0 = e[8 * d + kGroup[g][0]], c1 = e[8 * d + kGroup[g][1]];
            const uint8_t digits[4] = {uint8_t(g & 1 ? 0 : T.digitLo[c0]), uint8_t(g & 1 ? T.digitLo[c0] : 0), uint8_t(g & 1 ? 0 : T.digitLo[c1]),
                                       uint8_t(g & 1 ? T.digitLo[c1] : 0)};
            const int16_t factors[2] = {T.factor[c0], T.factor[c1]};
            std::memcpy(o, digits, 4);
            std::memcpy(o + 4, factors, 4);
          }
        nc[b] = -12 * corr;
        const float sa = a.xs[size_t(m) * nkb + (c * 256 + b * 32) / 128], sa10 = sa * (1.0f / 1024);
        if (!(sa10 * 1024.0f == sa)) ok = false;  // not exact (tiny scale) or NaN: the reference path
        sv[b] = sa10;
      }
    }
  }
  if (nan & 0x80) ok = false;  // (code & 0x7f) + 1 == 0x80: a NaN code
  return ok;
}

void fp4GemmVnni(const GemmArgs& a, const uint8_t* prep, int n0, int n1) {
  const int K = a.K, nsb = K / 32, nch = (K + 255) / 256, rows = a.rows;
  const size_t rowBytes = fp4PrepBytesPerRow(K);
  WeightChunk w;
  alignas(32) float acc[kMC][kNG];
  for (int mc = 0; mc < rows; mc += kMC) {
    const int nm = rows - mc < kMC ? rows - mc : kMC;
    for (int ng0 = n0; ng0 < n1; ng0 += kNG) {
      const int ng = n1 - ng0 < kNG ? n1 - ng0 : kNG;
      std::memset(acc, 0, sizeof acc);
      for (int c = 0; c < nch; c++) {
        const int nblk = K - c * 256 >= 256 ? 8 : (K - c * 256) / 32;
        const uint8_t* rp[kNG];
        const uint8_t* sp[kNG];
        for (int j = 0; j < kNG; j++) {  // rows past n1 repeat the first (results dropped)
          const size_t r = size_t(ng0 + (j < ng ? j : 0));
          rp[j] = a.w + r * (K / 2) + c * 128;
          sp[j] = a.ws + r * nsb + c * 8;
        }
        convertChunk(rp, sp, nblk, w);
        for (int m = 0; m < nm; m += kMT) {
          const int nt = nm - m < kMT ? nm - m : kMT;
          const uint8_t* xc[kMT];
          float* y[kMT];
          for (int i = 0; i < nt; i++) {
            xc[i] = prep + size_t(mc + m + i) * rowBytes + size_t(c) * kChunkV;
            y[i] = acc[m + i];
          }
          static_assert(kMT == 2, "the tiles below");
          if (nt == 2) tile<2>(xc, w, nblk, y);
          else tile<1>(xc, w, nblk, y);
        }
      }
      for (int m = 0; m < nm; m++) std::memcpy(a.y + size_t(mc + m) * a.out + ng0, acc[m], size_t(ng) * sizeof(float));
    }
  }
}

static_assert(kChunkV <= 4 * 256 + 64 + 256, "the VNNI layout fits fp4PrepBytesPerRow's chunk");

}  // namespace avx2
}  // namespace dsv4
#endif
