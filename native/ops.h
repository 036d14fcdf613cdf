// Decode-path operations besides the weight products (spec §3.2-3.3, golden README
// "Numerics"): act_quant, hyper-connection mixes and combines, RMSNorm rows and
// sparse attention. Each equals its TypeScript reference bit for bit
// (src/tensor/quant.ts, src/tensor/norm.ts, src/model/hc.ts, src/model/attention.ts):
// the same float64-then-fp32 operation sequence, and exact sums settled by an error
// bound or the TwoSum stage of exact.ts exactSumToF32. What these cannot settle
// (the BigInt stage, non-finite values, exp results too close to an fp32 rounding
// boundary) is reported, and the caller recomputes it in TypeScript.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dsv4 {
namespace ops {

/** RN32(s) when the exact value lies within ±err of s (exact.ts settle). */
bool settle(double s, double err, float* out);
/** RN32 of a float64 sum s of n exact terms with magnitude sum t (exact.ts settleSum). */
bool settleSum(double s, double t, int n, float* out);
/** RN32(Σ terms / div) when the TwoSum stage of exact.ts exactSumToF32 decides it. */
bool sumToF32(const double* terms, int n, double div, float* out);
/** RN32(Σ terms) as exact.ts sumF32 (summed in index order), false when undecided. */
bool sumF32(const double* terms, int n, float* out);
/** fl32(exp(x)) when every float64 within 2^-50 relative of libm's exp(x) rounds to it
 *  (so V8's Math.exp, within 1 ulp, gives the same fp32); false otherwise. */
bool exp32(float x, float* out);
/** A lower bound on the lsb exponents of the nonzero BF16 values w[0..n) (INT_MAX: all zero). */
int bf16LsbBound(const uint16_t* w, int n);
/** RN32(s) for a float64 sum s of exact terms that are all multiples of 2^lsb with magnitude sum t:
 *  when t < 2^(lsb+53) no partial sum was rounded, so s is exact (ties included). */
bool exactBySpan(double s, double t, int lsb, float* out);

// ---- act_quant (quant.ts actQuant), 1x128 blocks ----
/** One row of `cols` (a multiple of 128) values; false on a non-finite input. */
bool actQuantRow(const float* x, int cols, uint8_t* q, float* scale);

// ---- RMS factor and norms (norm.ts) ----
/** rmsFactor: fl32(rsqrt(fl32(mean(fl32(x²)) + fl32(eps)))); false when undecided. */
bool rmsFactor(const float* x, int n, float eps, float* out);
/** rmsFactor from s, a float64 sum of the terms fl32(x²) in any order (the error bound does not depend on it). */
bool rmsFactorFrom(double s, const float* x, int n, float eps, float* out);
/** rmsNormRow into y (may alias x); false when undecided. */
bool rmsNormRow(const float* x, int n, const float* w, float eps, float* y);

// ---- hyper-connections (hc.ts) ----
/** Σ_j fl32(coef[j*cs] * x[j*dim]) rounded once (hc.ts weightedStreams / hcPost inner sum). */
bool streamSum(const double* coef, int cs, const float* x, int dim, int hc, float* out);
/** streamSum for d in [0, dim) (x + d), into out[d]. */
bool streamSums(const double* coef, int cs, const float* x, int dim, int hc, float* out);

/** hc.ts splitSinkhorn of one token's mixes m [(2+hc)*hc] (fp32 values) into pre, post [hc] and comb
 *  [hc*hc]; false when an exp lies too close to an fp32 rounding boundary or a sum is undecided. */
bool splitSinkhorn(const double* m, const float* base, const float* scale, int hc, int iters, float eps, double* pre, double* post,
                   double* comb);

// ---- exact fp32 x fp32 dot products (exact.ts dotF32) ----
using DotFn = void (*)(const float* a, const float* b, int n, double* s, double* t);
void dotF64(const float* a, const float* b, int n, double* s, double* t);
/** RN32(Σ a·b) from the float64 sums; recomputes the products for the TwoSum stage. */
bool finishDot(const float* a, const float* b, int n, double s, double t, float* out);

// ---- sparse attention (attention.ts sparseAttnHead), one query row, all heads ----
struct AttnArgs {
  const float* q;                // [H, d] (BF16 values)
  int H;
  int d;                         // <= 1024
  const uint16_t* const* keys;   // [n] BF16 bits of each slot's key, nullptr = masked
  int n;
  float scale;
  const float* sink;             // [H]
  float* out;                    // [H, d]
  uint8_t* flag;                 // [H]: 1 = not decided here, recompute in TypeScript
};
/** Inner loops: a BF16 key to float64 (with Σk², max|k| and a lower bound on its lsb exponents,
 *  bf16LsbBound), the block's q·k for all heads and keys, and its P·V sums for all heads. */
struct AttnLoops {
  void (*cvt)(const uint16_t* k, int d, double* out, double* norm2, double* maxAbs, int* lsb);
  /** D[h*ldD + j] = Σ_i q[h*d + i] * k[j][i] for h < H, j < nk (float64 sums of exact products, any order). */
  void (*dots)(const double* q, int H, const double* const* k, int nk, int d, double* D, int ldD);
  /** sum[h*d + e] = acc[h*d + e]*c[h] + Σ_j p[h*ldP + j]*k[j][e] for h < H (float64, j in increasing order). */
  void (*pv)(const double* p, int ldP, int H, const double* const* k, int nk, int d, const double* c, const double* acc, double* sum);
  /** acc[e] = RN32(sum[e]) where |sum[e] - exact| <= (|acc[e]*c| + pMax) * bk + |sum[e]| * 4u decides it,
   *  else acc[e] unchanged and e listed in bad; returns the count listed. */
  int (*settleRows)(const double* sum, double* acc, double c, double pMax, double bk, int d, int* bad);
  /** A query row to float64 with Σq² and its exact min lsb exponent (minLsbExponent: INT_MAX all zero,
   *  INT_MIN any non-finite). */
  void (*prepQ)(const float* q, int d, double* qd, double* norm2, int* lsb);
  /** out[e] = bf16(fl32(acc[e] / l)). */
  void (*finish)(const double* acc, double l, int d, float* out);
};
const AttnLoops& scalarAttnLoops();
void attnHeads(const AttnArgs& a, const AttnLoops& L, int h0, int h1);

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
const AttnLoops& attnLoops();
void dotF64(const float* a, const float* b, int n, double* s, double* t);
bool actQuantRow(const float* x, int cols, uint8_t* q, float* scale);
/** y[d] = bf16(S_d) or, with an addend, bf16(fl32(fl32(pk * addend[d]) + S_d)), S_d = RN32(Σ_j fl32(coef[j*cs] *
 *  x[j*dim + d])) (hc.ts weightedStreams / hcPost); false when undecided or a coef is not an fp32 value. */
bool hcCombine(const double* coef, int cs, const float* x, int dim, int hc, const float* addend, float pk, float* y);
bool rmsFactor(const float* x, int n, float eps, float* out);
bool rmsNormRow(const float* x, int n, const float* w, float eps, float* y);
/** out[r*O + j] = fl32(RN32(x_r·fn_j) * rmsFactor(x_r)) for rows r < R (x [R, F], fn [O, F], F a multiple of 4):
 *  a register-tiled float64 product over L2-sized column chunks; false when a row is undecided. */
bool rmsDotsRows(const float* x, int R, int F, const float* fn, int O, float eps, double* out);
/** An upper bound on |x| (Euclidean norm) of x [F], F a multiple of 8, at most 2^18. */
double normBound(const float* x, int F);
/** One row (decode): out[j] = fl32(RN32(x·fn_j) * rs) for j in [j0, j1), 4 outputs per pass over x, bounded by
 *  Cauchy-Schwarz with nx = normBound(x, F) (else the exact magnitude sum); F a multiple of 8, at most 2^18;
 *  false when undecided. */
bool rmsDotsOne(const float* x, int F, double nx, const float* fn, int j0, int j1, float rs, double* out);
}  // namespace avx2
#endif

}  // namespace ops
}  // namespace dsv4
