// Exact fp8_gemm / fp4_gemm kernels (golden README "Kernel semantics"):
// every K block's dot product is computed exactly, rounded once to fp32, then
// scaled and added to an fp32 accumulator in increasing K order. Any summation
// order inside a block is allowed because the block sum is exact.
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>

namespace dsv4 {

/** One fp8/fp4 GEMM call: y[rows, out] = x[rows, K] . w[out, K]^T. */
struct GemmArgs {
  const uint8_t* xq;  // e4m3 codes [rows, K]
  const float* xs;    // act scales [rows, K/128]
  int rows;
  int K;              // multiple of 128
  const uint8_t* w;   // fp8: [out, K] codes; fp4: [out, K/2] packed nibbles
  const uint8_t* ws;  // fp8: ue8m0 [ceil(out/128), K/128]; fp4: ue8m0 [out, K/32]
  int out;
  float* y;           // [rows, out]
};

/** Lightning-indexer scores of one query row (spec §3.5, model/indexer.ts):
 *  score[t] = bf16(RN32(sum_h bf16(RN32(relu(bf16(RN32(q_h . k_t))) * w_h)))) for
 *  t in [t0, t1); amb[t] = 1 where a float64 sum cannot be settled (caller recomputes). */
struct IndexerArgs {
  const float* q;     // [H, d]
  const float* hw;    // [H]
  const float* keys;  // [visible, d]
  int H;
  int d;
  float* scores;      // [visible]
  uint8_t* amb;       // [visible]
};

/** Indexer scores against compact FP4 keys (native/indexer_scalar.cc, src/tensor/fp4-rows.ts);
 *  amb[t] = 1 where the entry is not exact in compact form or a sum cannot be certified. */
struct IndexerFp4Args {
  const int8_t* qc;      // query codes [H, d], in [-12, 12]
  const double* qu;      // query block units [H, d/32] (0: all-zero block)
  const int32_t* qcorr;  // 12 * sum of each query block's codes [H, d/32]
  int qRange;            // max over heads of the unit exponent span of nonzero blocks
  int rangeLimit;        // indexerFp4RangeLimit(d)
  const float* hw;       // [H]
  const uint8_t* codes;  // key codes + 12, rows interleaved per group of 8: [t/8][j/4][t%8][j%4] (fp4-rows.ts)
  const float* units;    // key block units [visible, d/32]
  const uint8_t* exact;  // [visible]
  int H;
  int d;                 // multiple of 32
  float* scores;         // [visible]
  uint8_t* amb;          // [visible]
};
/** Query codes/units/corrections; false when q is not fake-FP4 or a head weight is not finite. */
bool indexerFp4PrepareQuery(const float* q, const float* hw, int H, int d, int8_t* qc, double* qu, int32_t* qcorr, int* qRange);
int indexerFp4RangeLimit(int d);
/** Entry t is exact in compact form and its block dots sum exactly in float64. */
bool indexerFp4KeyOk(const IndexerFp4Args& a, int t);
/** Score from the heads' exact dots (float64); false when the head sum cannot be certified. */
bool indexerFp4Finish(const float* hw, int H, const double* dots, float* score);

/** fp32 -> bf16 value (RNE; inf/NaN kept), as formats.ts roundBf16. */
float roundBf16(float v);
/** Exponent of the lowest set bit of v (v = odd * 2^e): INT_MAX for zero, INT_MIN for inf/NaN. */
int lsbExponent(float v);
/** min lsbExponent over v[0..n) (INT_MAX if all zero, INT_MIN if any inf/NaN). */
int minLsbExponent(const float* v, int n);
/** lsb exponent of products of two sets with the given min lsb exponents (INT_MAX: all zero, INT_MIN: unknown). */
inline int productLsb(int a, int b) {
  if (a == INT_MIN || b == INT_MIN) return INT_MIN;
  if (a == INT_MAX || b == INT_MAX) return INT_MAX;
  return a + b;
}
/** RN32 of a float64 sum s (magnitude sum t) of exact products that are all multiples of 2^lsb:
 *  then every partial sum is exact when t < 2^(lsb+53); else falls back to settleF32. */
bool settleExactF32(double s, double t, int n, int lsb, float* out);
/** Indexer score of one entry from its per-head float64 dot sums (s), magnitude sums (t) and
 *  product lsb exponents (lsb); H <= 512. */
bool indexerFinish(const IndexerArgs& a, const double* dotS, const double* dotT, const int* lsb, float* score);

/** RN32 of a float64 sum s of n exact products with sum of magnitudes t, or false when ambiguous. */
bool settleF32(double s, double t, int n, float* out);

/** UE8M0 byte -> fp32 (255 = NaN, 0 = 2^-127 subnormal). */
float e8m0ToFloat(uint8_t b);

// Activation preparation (per call, cost O(rows*K)) and the weight-streaming
// part, split by output rows [n0, n1) so a thread pool can share the work.
// Preparation returns false when an activation holds a NaN code (the caller
// then uses the reference path, which propagates NaN).

// Portable scalar implementation (exact, float64 block sums).
namespace scalar {
bool fp8Prepare(const GemmArgs& a, double* xd, int m0, int m1);
void fp8Rows(const GemmArgs& a, const double* xd, int n0, int n1);
bool fp4Prepare(const GemmArgs& a, double* xd, int m0, int m1);
void fp4Rows(const GemmArgs& a, const double* xd, int n0, int n1);
void indexerScores(const IndexerArgs& a, int t0, int t1);
void indexerScoresFp4(const IndexerFp4Args& a, int t0, int t1);
}  // namespace scalar

#if defined(__x86_64__) || defined(_M_X64)
// AVX2 + FMA implementation (runtime dispatch in addon.cc).
namespace avx2 {
/** Bytes of prepared activations for one row (fp8: float64 lanes; fp4: int8 digits + corrections). */
size_t fp8PrepBytesPerRow(int K);
size_t fp4PrepBytesPerRow(int K);
bool fp8Prepare(const GemmArgs& a, uint8_t* prep, int m0, int m1);
void fp8Rows(const GemmArgs& a, const uint8_t* prep, int n0, int n1);
bool fp4Prepare(const GemmArgs& a, uint8_t* prep, int m0, int m1);
void fp4Rows(const GemmArgs& a, const uint8_t* prep, int n0, int n1);
/** The FP4 GEMM's AVX-512 VNNI form (fp4_gemm_vnni.cc; fp4Prepare / fp4Rows pick it when cpuVnni()). */
bool fp4PrepareVnni(const GemmArgs& a, uint8_t* prep, int m0, int m1);
void fp4GemmVnni(const GemmArgs& a, const uint8_t* prep, int n0, int n1);
/** The compact-FP4 indexer's block dots of P (1-4) heads against one group of 8 keys, AVX-512 VNNI (indexer_vnni.cc). */
void indexerHeadDotsVnni(int P, const IndexerFp4Args& a, const uint8_t* K, int h, int nb, const double* kud, double (*out)[8]);
void indexerScores(const IndexerArgs& a, int t0, int t1);
void indexerScoresFp4(const IndexerFp4Args& a, int t0, int t1);
bool hasNanE4m3(const uint8_t* p, size_t n);
double readSum(const uint8_t* p, size_t n);
double fmaLoop(long iters);
}  // namespace avx2
/** AVX-512 VNNI + VL + BW present and not disabled (DSV4_NO_AVX512): fp4_gemm_vnni.cc, indexer_vnni.cc; addon.cc. */
bool cpuVnni();
#endif

}  // namespace dsv4
