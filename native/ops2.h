// Element-wise and per-head operations of the forward pass besides the decode ops of ops.h
// (spec §2.3, §2.5-2.7, §3.3, §3.5, §3.7): the SwiGLU of the experts, BF16 rounding of
// whole arrays, and the per-head transforms RoPE / inverse RoPE / act_quant / Hadamard +
// fp4_act_quant / the query RMS rescale. Each repeats its TypeScript reference's operation
// sequence (src/tensor/ops2.ts lists them), so results agree bit for bit; what cannot be
// decided here (the BigInt stage of exact sums, exp results within reach of an fp32 rounding
// boundary, non-finite values) is reported and recomputed in TypeScript.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dsv4 {
namespace ops2 {

/** quant.ts pow2CeilScale: 2^ceil(log2(v)) from the fp32 bits of v. */
inline double pow2CeilScale(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return std::ldexp(1.0, int((b >> 23) & 0xff) - 127 + ((b & 0x7fffff) != 0 ? 1 : 0));
}

/** h[i] = bf16(rw[i / inter] * fl32(silu(clamp(g)) * clamp(u))) for i in [i0, i1) (moe.ts swiglu); rw may
 *  be null, limit <= 0 disables the clamp. Elements it cannot decide (non-finite inputs, an exp result
 *  within reach of an fp32 rounding boundary) are appended to `undecided` (their h left as is). */
void swiglu(const float* g, const float* u, size_t i0, size_t i1, int inter, double limit, const float* rw, float* h,
            std::vector<uint32_t>& undecided);

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
/** swiglu with AVX2 + FMA (ops2_avx2.cc); the same results and undecided elements' contract. */
void swiglu(const float* g, const float* u, size_t i0, size_t i1, int inter, double limit, const float* rw, float* h,
            std::vector<uint32_t>& undecided);
}  // namespace avx2
#endif

/** a[i] = bf16(a[i]) for i in [i0, i1) (formats.ts roundBf16Array). */
void roundBf16Range(float* a, size_t i0, size_t i1);

/** compressor.ts poolChannel for channel ch: the gated softmax pooling of one compressed entry over
 *  nCand candidate rows of kv / score [nCand, K] (overlap: rows r.. give channels c..2c-1); false when
 *  undecided (non-finite values besides -inf scores, an exp quotient near an fp32 boundary, the BigInt
 *  stage of the sum). */
bool poolChannel(const float* kv, const float* score, int r, int c, bool overlap, int ch, float* out);

/** topk.ts topkOrder of BF16 scores s[0..n) (topk.cc): the indices of the min(k, n) largest into out, by
 *  value descending, ties to the lower index; -1 (out untouched) when a score is not a BF16 value or is NaN. */
int64_t topkBf16(const float* s, size_t n, size_t k, int32_t* out);

/** y[d] = fl32(y[d] + src[d]) for d < n, then BF16 when round (ops2.ts addRows). */
void addRow(float* y, const float* src, size_t n, bool round);

/** Per-head transforms (ops2.ts HeadMode); each ends with RoPE on the head's last rd dims except HADAMARD. */
enum HeadMode : int {
  ROPE = 0,              // rope.ts applyRope
  ROPE_INVERSE = 1,      // applyRope(..., inverse = true)
  ROPE_FP8 = 2,          // applyRope, then quant.ts actQuantInPlace(x, 0, d - rd, 64)
  ROPE_HADAMARD_FP4 = 3, // applyRope, hadamard.ts hadamardBf16(x, 0, d), fp4ActQuantInPlace(x, 0, d, 32)
  RMS_ROPE = 4,          // norm.ts headRmsScaleBf16, then applyRope
};

struct HeadArgs {
  int d;              // head width
  int rd;             // rope dims (the last rd of the head)
  int mode;           // HeadMode
  const float* cos;   // [positions, rd/2] (rope.ts RopeTable)
  const float* sin;
  float eps;          // RMS_ROPE: fl32(eps)
  float scale;        // ROPE_HADAMARD_FP4: fl32(d^-0.5)
  // ROPE_HADAMARD_FP4: a faster Hadamard + FP4 step with the same bits, false (x untouched) to fall back
  bool (*hadamardFp4)(float* x, int n, float scale) = nullptr;
  // RMS_ROPE: a faster norm.ts headRmsScaleBf16 with the same bits, false (x untouched) to fall back
  bool (*rmsScale)(float* x, int n, float eps) = nullptr;
};

namespace avx2 {
/** The Hadamard + FP4 step of head in AVX2 (heads_avx2.cc) when exact in float64; else false, x untouched. */
bool hadamardFp4(float* x, int n, float scale);
/** headRmsScaleBf16 in AVX2 (heads_avx2.cc): n a multiple of 8, finite x; false (x untouched) when the
 *  float64 sum's bound does not settle the mean (the scalar path then sums exactly). */
bool rmsScale(float* x, int n, float eps);
}  // namespace avx2

/** The transform on one head x[0 .. d) at position pos; false (x untouched) when undecided. */
bool head(const HeadArgs& a, float* x, int pos);

}  // namespace ops2
}  // namespace dsv4
