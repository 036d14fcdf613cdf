// AVX2 + FMA + F16C fast products (fast.h): a BLIS-style fp32 GEMM. Activations are dequantized
// once per call into tiles of 16 or 24 rows, [k][tile rows]; per k block of KC, a panel of 6 (or 4)
// weight rows is dequantized into fp32 [rows][KC] and used by every activation tile: 6x16 (4x24)
// register tiles, 12 accumulators, one vfmadd231ps per weight row and 8 activation rows per k. Each
// output's sum runs k = 0, 1, ... in one accumulator (kept in `carry` between k blocks), so the bits
// are the reference's sequential fmaf chain whatever the tiling.
//
// Exact dequantization: an e4m3 byte becomes fp16 by bit placement (sign<<15 | (byte&0x7f)<<7 =
// value * 2^-8, subnormal codes included; NaN codes replaced by an fp16 NaN), vcvtph2ps widens it
// exactly, and multiplying by 2^(b-119) (split in two when above 2^127) is exact or overflows as
// the reference's fround(value * 2^(b-127)). e2m1 nibbles pick their magnitude (times the scale) by
// vpermps, the sign xored in.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>

#include "fast.h"

namespace dsv4 {
namespace fast {
namespace avx2 {

namespace {

// ---------- activations ----------

/** 8 e4m3 codes as fp16 bits by placement: sign<<15 | (code&0x7f)<<7 = value * 2^-8 (subnormal codes
 *  included), NaN codes (0x7f/0xff) an fp16 NaN; vcvtph2ps widens it exactly. */
inline __m128i e4m3Half8(const uint8_t* src) {
  const __m128i x = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src)));
  const __m128i m7f = _mm_set1_epi16(0x7f), mag = _mm_and_si128(x, m7f);
  const __m128i h = _mm_or_si128(_mm_slli_epi16(mag, 7), _mm_slli_epi16(_mm_and_si128(x, _mm_set1_epi16(0x80)), 8));
  return _mm_blendv_epi8(h, _mm_set1_epi16(0x7e00), _mm_cmpeq_epi16(mag, m7f));
}

/** 8 dequantized activations of row m from column k (k % 8 == 0): e4m3 value * 2^-8, times 2^8 (exact),
 *  times the scale (one rounding). */
inline __m256 actRow8(const Act& a, int m, int k) {
  if (!a.quant) return _mm256_loadu_ps(static_cast<const float*>(a.x) + size_t(m) * a.K + k);
  const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(e4m3Half8(static_cast<const uint8_t*>(a.x) + size_t(m) * a.K + k)), _mm256_set1_ps(256.0f));
  return _mm256_mul_ps(v, _mm256_set1_ps(a.xs[size_t(m) * (a.K / 128) + (k >> 7)]));
}

/** r[i][j] -> r[j][i] for an 8x8 block. */
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

}  // namespace

void prepare(const Act& a, int t0, int t1) {
  const int K = a.K, tw = a.tw;
  for (int pc = 0; pc * KC < K; pc++) {
    const int k0 = pc * KC, len = std::min(KC, K - k0);
    for (int t = t0; t < t1; t++) {
      float* base = a.prep + size_t(pc) * KC * a.mpad + size_t(t) * len * tw;
      for (int l0 = 0; l0 < tw; l0 += 8) {  // 8 rows at a time, 8x8 blocks transposed
        const int m0 = t * tw + l0, rows = std::min(8, a.rows - m0);
        int k = 0;
        for (; k + 8 <= len; k += 8) {
          __m256 r[8];
          for (int i = 0; i < 8; i++) r[i] = i < rows ? actRow8(a, m0 + i, k0 + k) : _mm256_setzero_ps();
          transpose8(r);
          for (int i = 0; i < 8; i++) _mm256_store_ps(base + size_t(k + i) * tw + l0, r[i]);
        }
        for (; k < len; k++)  // dense activations: K % 8 tail
          for (int i = 0; i < 8; i++) base[size_t(k) * tw + l0 + i] = i < rows ? actValue(a, m0 + i, k0 + k) : 0.0f;
      }
    }
  }
}

namespace {

// ---------- weight panels ----------

/** 2^e as fp32 for e in [-126, 127]. */
inline float pow2(int e) { return fast::bitsToFloat(uint32_t(e + 127) << 23); }

/** 128 e4m3 codes times 2^(b-127) (fp8: b = 255 NaN; as BF16: 2^128, then RNE to BF16). */
template <bool asBf16>
void fp8Block(const uint8_t* src, uint8_t b, float* out) {
  const int E = b - 119;  // the fp16 placement is value * 2^-8
  const bool two = E > 127;
  const __m256 s1 = _mm256_set1_ps(!asBf16 && b == 255 ? NAN : pow2(std::min(E, 127))), s2 = _mm256_set1_ps(two ? pow2(E - 127) : 1.0f);
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), keep = _mm256_set1_epi32(int(0xffff0000u));
  for (int i = 0; i < 128; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(e4m3Half8(src + i)), s1);
    if (two) v = _mm256_mul_ps(v, s2);
    if (asBf16) {  // RNE to BF16 on the bits; Inf stays Inf, a NaN stays a NaN (quiet bit set)
      const __m256i u = _mm256_castps_si256(v);
      v = _mm256_castsi256_ps(_mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(_mm256_srli_epi32(u, 16), one)), keep));
    }
    _mm256_store_ps(out + i, v);
  }
}

/** 32 e2m1 weights (16 bytes, element i at bits 4i..4i+3 of each 32-bit word) times scale s: the
 *  8 magnitudes times s (exact, or overflow / NaN as the reference) looked up by vpermps, the sign
 *  bit (nibble bit 3) xored in. */
inline void fp4Chunk(const uint8_t* src, __m256 s, float* out) {
  const __m256 mag = _mm256_mul_ps(_mm256_setr_ps(0, 0.5f, 1, 1.5f, 2, 3, 4, 6), s);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), signShifts = _mm256_setr_epi32(28, 24, 20, 16, 12, 8, 4, 0);
  const __m256i signBit = _mm256_set1_epi32(int(0x80000000u));
  for (int q = 0; q < 4; q++) {
    uint32_t u;
    std::memcpy(&u, src + 4 * q, 4);
    const __m256i x = _mm256_set1_epi32(int(u));
    const __m256 v = _mm256_permutevar8x32_ps(mag, _mm256_srlv_epi32(x, shifts));
    _mm256_store_ps(out + 8 * q, _mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_and_si256(_mm256_sllv_epi32(x, signShifts), signBit))));
  }
}
/** Weight row r (absolute), k in [k0, k0+len), as fp32 into out (32-byte aligned). */
void packRow(const Job& j, int r, int k0, int len, float* out) {
  const int K = j.act->K;
  switch (j.kind) {
    case Kind::Fp8:
    case Kind::Fp8AsBf16: {  // K % 128 == 0, k0 % 128 == 0
      const uint8_t* w = static_cast<const uint8_t*>(j.w) + size_t(r) * K;
      const uint8_t* s = j.ws + size_t(r >> 7) * (K / 128);
      for (int k = k0; k < k0 + len; k += 128) {
        if (j.kind == Kind::Fp8) fp8Block<false>(w + k, s[k >> 7], out + (k - k0));
        else fp8Block<true>(w + k, s[k >> 7], out + (k - k0));
      }
      break;
    }
    case Kind::Fp4: {  // K % 128 == 0
      const uint8_t* w = static_cast<const uint8_t*>(j.w) + size_t(r) * (K / 2);
      const uint8_t* s = j.ws + size_t(r) * (K / 32);
      for (int k = k0; k < k0 + len; k += 32) fp4Chunk(w + k / 2, _mm256_set1_ps(e8m0(s[k >> 5])), out + (k - k0));
      break;
    }
    case Kind::Bf16: {
      const uint16_t* w = static_cast<const uint16_t*>(j.w) + size_t(r) * K + k0;
      int k = 0;
      for (; k + 8 <= len; k += 8)
        _mm256_store_ps(out + k, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k))), 16)));
      for (; k < len; k++) out[k] = fast::bitsToFloat(uint32_t(w[k]) << 16);
      break;
    }
  }
}

/** Prefetches weight row r's bytes for k in [k0, k0+len) (rows are read 128-512 bytes at a time, too
 *  short for the hardware prefetcher when the weights come from memory: experts in a batch). */
void prefetchRow(const Job& j, int r, int k0, int len) {
  const int K = j.act->K;
  const char* p;
  size_t bytes;
  switch (j.kind) {
    case Kind::Fp4: p = static_cast<const char*>(j.w) + (size_t(r) * K + k0) / 2, bytes = size_t(len) / 2; break;
    case Kind::Bf16: p = static_cast<const char*>(j.w) + (size_t(r) * K + k0) * 2, bytes = size_t(len) * 2; break;
    default: p = static_cast<const char*>(j.w) + size_t(r) * K + k0, bytes = size_t(len);
  }
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// ---------- register tiles ----------

/** NJ weight rows x 8*MV activation rows over k in [0, len): wp rows KC apart, ap [len][TW]; the sums
 *  start at 0 (first k block) or from c (row i at c + i * ldc) and go back there. */
template <int NJ, int MV, int TW>
void tile(const float* wp, const float* ap, int len, float* c, int ldc, bool first) {
  __m256 acc[NJ][MV];
#pragma GCC unroll 8
  for (int i = 0; i < NJ; i++)
#pragma GCC unroll 3
    for (int v = 0; v < MV; v++) acc[i][v] = first ? _mm256_setzero_ps() : _mm256_load_ps(c + i * ldc + 8 * v);
  // 12 accumulators + the activation vectors + a broadcast weight: 4x24 would need all 16 registers,
  // so its third activation vector stays in memory (an FMA memory operand; asm keeps GCC from
  // loading it into a register once)
  constexpr int MA = MV == 3 ? 2 : MV;
  for (int k = 0; k < len; k++) {
    __m256 a[MA];
#pragma GCC unroll 2
    for (int v = 0; v < MA; v++) a[v] = _mm256_load_ps(ap + k * TW + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < NJ; i++) {
      const __m256 b = _mm256_broadcast_ss(wp + i * KC + k);
#pragma GCC unroll 2
      for (int v = 0; v < MA; v++) acc[i][v] = _mm256_fmadd_ps(b, a[v], acc[i][v]);
      if constexpr (MV == 3) asm("vfmadd231ps %2, %1, %0" : "+x"(acc[i][2]) : "x"(b), "m"(*reinterpret_cast<const __m256*>(ap + k * TW + 16)));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NJ; i++)
#pragma GCC unroll 3
    for (int v = 0; v < MV; v++) _mm256_store_ps(c + i * ldc + 8 * v, acc[i][v]);
}

using TileFn = void (*)(const float*, const float*, int, float*, int, bool);

template <int NJ, int TW>
constexpr TileFn pick(int mv) {
  if constexpr (TW == 24 && NJ <= 4)
    if (mv == 3) return tile<NJ, 3, TW>;
  return mv == 1 ? tile<NJ, 1, TW> : tile<NJ, 2, TW>;
}

/** The tile of nj weight rows x 8 * mv activation rows (nj <= 6 for 16-row tiles, <= 4 for 24). */
TileFn tileFor(int tw, int nj, int mv) {
  if (tw == 24) {
    switch (nj) {
      case 1: return pick<1, 24>(mv);
      case 2: return pick<2, 24>(mv);
      case 3: return pick<3, 24>(mv);
      default: return pick<4, 24>(mv);
    }
  }
  switch (nj) {
    case 1: return pick<1, 16>(mv);
    case 2: return pick<2, 16>(mv);
    case 3: return pick<3, 16>(mv);
    case 4: return pick<4, 16>(mv);
    case 5: return pick<5, 16>(mv);
    default: return pick<6, 16>(mv);
  }
}

/** Panel p's weight rows over k block pc, then its register tiles over activation tiles [t0, t1);
 *  the panel's sums at carry (row i of the panel at carry + i * ldc). */
void panelBlock(const Job& j, int p, int pc, int t0, int t1, float* wp, float* carry) {
  const Act& a = *j.act;
  const int ldc = carryStride(a), k0 = pc * KC, len = std::min(KC, a.K - k0), tw = a.tw, nr = panelRows(a);
  const int c0 = p * nr, nj = std::min(nr, j.n - c0);
  for (int i = 0; i < nj; i++) packRow(j, j.r0 + c0 + i, k0, len, wp + i * KC);
  for (int t = t0; t < t1; t++) {
    const float* ap = a.prep + size_t(pc) * KC * a.mpad + size_t(t) * len * tw;
    const int mv = std::min(tw, a.rows - t * tw + 7) / 8;
    tileFor(tw, nj, mv)(wp, ap, len, carry + size_t(t) * tw, ldc, pc == 0);
  }
}

constexpr int PREFETCH = 2;  // panels ahead

void prefetchPanel(const Job& j, int p, int pc) {
  const int k0 = pc * KC, len = std::min(KC, j.act->K - k0);
  const int nr = panelRows(*j.act);
  for (int c = p * nr; c < std::min(p * nr + nr, j.n); c++) prefetchRow(j, j.r0 + c, k0, len);
}

/** The sums [column - p0 * panelRows][row] of panels [p0, p1) x tiles [t0, t1) into y[row][column]. */
void transpose(const Job& j, int p0, int p1, int t0, int t1, const float* carry) {
  const Act& a = *j.act;
  const int ldc = carryStride(a);
  // the sums [column][row] into y[row][column], 64 columns at a time (y rows can be 2^k bytes apart:
  // storing a tile's rows directly would hit one cache set)
  const int nr = panelRows(a), c1 = std::min(p1 * nr, j.n), m1 = std::min(t1 * a.tw, a.rows);
  for (int cb = p0 * nr; cb < c1; cb += 64) {
    const int ce = std::min(cb + 64, c1);
    for (int m = t0 * a.tw; m < m1; m++) {
      float* y = j.y + size_t(m) * j.n;
      for (int c = cb; c < ce; c++) y[c] = carry[size_t(c - p0 * nr) * ldc + m];
    }
  }
}

}  // namespace

/** A thread's buffer for an item's sums (32-byte aligned, grown as needed). */
float* carryBuffer(size_t floats) {
  struct Buffer {
    float* p = nullptr;
    size_t n = 0;
    ~Buffer() { std::free(p); }
  };
  static thread_local Buffer b;
  if (floats > b.n) {
    std::free(b.p);
    b.n = std::max(floats, 2 * b.n);
    b.p = static_cast<float*>(std::aligned_alloc(64, (b.n * sizeof(float) + 63) & ~size_t(63)));
    if (!b.p) b.n = 0;
  }
  return b.p;
}

void run(const Job& j, int p0, int p1, int t0, int t1) {
  const Act& a = *j.act;
  const int nb = (a.K + KC - 1) / KC, nr = panelRows(a);
  alignas(64) static thread_local float wp[NR_MAX * KC];
  const size_t panelFloats = size_t(nr) * carryStride(a);
  float* carry = carryBuffer(size_t(p1 - p0) * panelFloats);
  if (!carry) std::abort();  // a few hundred KiB per thread: out of memory
  // (weight rows are read 128-512 bytes at a time, too short for the hardware prefetcher when they
  // come from memory: prefetched by hand)
  if (size_t(t1 - t0) * a.tw * a.K <= 96 * 1024) {
    // the activations stay in L2 (experts: ~20-60 rows): panel by panel, each over all k blocks, so
    // weight rows are read in order (1.0-1.2x over the k-block order when they come from memory)
    for (int p = p0; p < p1; p++)
      for (int pc = 0; pc < nb; pc++) {
        if (pc + 1 < nb) prefetchPanel(j, p, pc + 1);
        else if (p + 1 < p1) prefetchPanel(j, p + 1, 0);
        panelBlock(j, p, pc, t0, t1, wp, carry + size_t(p - p0) * panelFloats);
      }
    return transpose(j, p0, p1, t0, t1, carry);
  }
  // else k block by k block, each over all panels (the block's activations stay in L1/L2)
  for (int pc = 0; pc < nb; pc++)
    for (int p = p0; p < p1; p++) {
      if (p + PREFETCH < p1) prefetchPanel(j, p + PREFETCH, pc);
      panelBlock(j, p, pc, t0, t1, wp, carry + size_t(p - p0) * panelFloats);
    }
  transpose(j, p0, p1, t0, t1, carry);
}

}  // namespace avx2
}  // namespace fast
}  // namespace dsv4
#endif
