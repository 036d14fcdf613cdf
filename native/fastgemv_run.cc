// The few-row fast products of a fastGemv call (fast_addon.cc parses it): FP8 / BF16-valued jobs and
// FP4 ones (fp4q8.h) together, so a decode layer's expert batch is one pool dispatch. Activations
// dequantized row-major once (those the FP8 kinds read) and prepared in int8 form once (those the FP4
// jobs read), then pieces of weight rows taken in turn by the pool's threads (runChunks: a descheduled
// worker costs little), each piece's outputs over all activation rows.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "fast.h"
#include "fastgemv.h"
#include "fp4q8.h"
#include "pool.h"

namespace dsv4 {

Pool& sharedPool();  // addon.cc

namespace fastgemv {

namespace {

struct Piece {
  int job, a, b;
};

struct Run {
  std::vector<Job> jobs;
  std::vector<const float*> xp;  // per job of at most kChainRows rows (AVX2): its permuted activations
  std::vector<Piece> pieces;
  size_t base = 0;  // runChunks takes at most 32767 chunks per call
  bool avx2;
};

void pieceFn(void* ctx, int i, int) {
  const Run& run = *static_cast<const Run*>(ctx);
  const Piece& p = run.pieces[run.base + size_t(i)];
  const Job& j = run.jobs[size_t(p.job)];
  if (j.kind == WeightKind::Fp4) {
    const fp4q8::Job q{j.q8, j.R, j.K, static_cast<const uint8_t*>(j.w), j.ws, j.r0, j.n, j.y};
#if defined(__x86_64__) || defined(_M_X64)
    if (run.avx2) return fp4q8::avx2::rows(q, p.a, p.b);
#endif
    return fp4q8::scalar::rows(q, p.a, p.b);
  }
  const bool chained = j.R <= kChainRows;
  if (run.avx2) {
#if defined(__x86_64__) || defined(_M_X64)
    thread_local std::vector<float> scratch;
    scratch.resize(size_t(j.R) * chain::paddedK(j.K));
    if (chained) chain::avx2::rows(j, run.xp[size_t(p.job)], p.a, p.b, scratch.data());
    else avx2::rows(j, p.a, p.b, scratch.data());
    return;
#endif
  }
  if (chained) chain::scalar::rows(j, p.a, p.b);
  else scalar::rows(j, p.a, p.b);
}

/** Work of one weight row, in FP8 weight bytes: FP4 rows are half as long (the int8 kernel streams
 *  them at about the FP8 chain kernel's bytes per second). */
double rowWork(const Job& j) { return j.kind == WeightKind::Fp4 ? j.K / 2 : j.K; }

void prepareQ8(const uint8_t* q, const float* xs, int K, uint8_t* out, bool avx2) {
#if defined(__x86_64__) || defined(_M_X64)
  if (avx2) return fp4q8::avx2::prepare(q, xs, K, out);
#endif
  (void)avx2;
  fp4q8::prepare(q, xs, K, out);
}

}  // namespace

void run(const std::vector<fast::Act>& acts, const std::vector<fast::Job>& jobs, bool avx2) {
  Pool& pool = sharedPool();
  std::lock_guard<std::mutex> lock(pool.callLock());
  // dequantized activations, row-major: code x scale (one fp32 rounding), or the fp32 values
  thread_local std::vector<float> deq;
  static const struct E4m3 {  // fast::e4m3 by table (its ldexp cost ~30 us per 2048-code decode row)
    float v[256];
    E4m3() {
      for (int c = 0; c < 256; c++) v[c] = fast::e4m3(uint8_t(c));
    }
    float operator[](uint8_t c) const { return v[c]; }
  } e4m3;
  // which activation matrices the FP8 kinds read dequantized, which the FP4 jobs in int8 form
  std::vector<char> useDeq(acts.size()), useQ8(acts.size());
  for (const fast::Job& fj : jobs) (fj.kind == fast::Kind::Fp4 ? useQ8 : useDeq)[size_t(fj.act - acts.data())] = 1;
  size_t total = 0, q8Bytes = 0;
  for (size_t i = 0; i < acts.size(); i++) {
    total += acts[i].quant && useDeq[i] ? size_t(acts[i].rows) * acts[i].K : 0;
    q8Bytes += useQ8[i] ? size_t(acts[i].rows) * fp4q8::rowBytes(acts[i].K) : 0;
  }
  deq.resize(total);
  thread_local std::vector<uint8_t> q8buf;
  q8buf.resize(q8Bytes + 64);
  uint8_t* q8 = q8buf.data() + (-reinterpret_cast<uintptr_t>(q8buf.data()) & 63);  // 64-byte aligned: no cache-line splits
  std::vector<const float*> xs;
  std::vector<const uint8_t*> xq8;
  size_t off = 0, q8Off = 0;
  for (size_t i = 0; i < acts.size(); i++) {
    const fast::Act& a = acts[i];
    xq8.push_back(q8 + q8Off);
    if (useQ8[i]) {
      const uint8_t* q = static_cast<const uint8_t*>(a.x);
      for (int m = 0; m < a.rows; m++, q8Off += fp4q8::rowBytes(a.K))
        prepareQ8(q + size_t(m) * a.K, a.xs + size_t(m) * (a.K / 128), a.K, q8 + q8Off, avx2);
    }
    if (!a.quant || !useDeq[i]) {
      xs.push_back(static_cast<const float*>(a.x));
      continue;
    }
    float* o = deq.data() + off;
    const uint8_t* q = static_cast<const uint8_t*>(a.x);
    const int nkb = a.K / 128;
    for (int m = 0; m < a.rows; m++)
      for (int k = 0; k < a.K; k++) o[size_t(m) * a.K + k] = e4m3[q[size_t(m) * a.K + k]] * a.xs[size_t(m) * nkb + (k >> 7)];  // fast::actValue
    xs.push_back(o);
    off += size_t(a.rows) * a.K;
  }
  Run r;
  r.avx2 = avx2;
  double work = 0;
  for (const fast::Job& fj : jobs) {
    const fast::Act& a = *fj.act;
    const WeightKind kind = fj.kind == fast::Kind::Bf16        ? WeightKind::Bf16
                            : fj.kind == fast::Kind::Fp8AsBf16 ? WeightKind::Fp8AsBf16
                            : fj.kind == fast::Kind::Fp4       ? WeightKind::Fp4
                                                               : WeightKind::Fp8;
    const size_t ai = size_t(fj.act - acts.data());
    r.jobs.push_back(Job{kind, xs[ai], a.rows, a.K, fj.w, fj.ws, fj.r0, fj.n, fj.y, xq8[ai]});
    work += double(fj.n) * rowWork(r.jobs.back());
  }
  // the chain kernel's activations in its lane order, once per call
  thread_local std::vector<float> perm;
  size_t permFloats = 0;
  for (const Job& j : r.jobs) permFloats += avx2 && j.R <= kChainRows && j.kind != WeightKind::Fp4 ? size_t(j.R) * chain::paddedK(j.K) : 0;
  perm.resize(permFloats);
  off = 0;
  for (const Job& j : r.jobs) {
    r.xp.push_back(perm.data() + off);
#if defined(__x86_64__) || defined(_M_X64)
    if (avx2 && j.R <= kChainRows && j.kind != WeightKind::Fp4) chain::avx2::permute(j, perm.data() + off), off += size_t(j.R) * chain::paddedK(j.K);
#endif
  }
  // pieces of 32-row multiples, about 8 per thread over the call (at least 64 KiB of weights each)
  const int threads = pool.threads();
  const double target = std::max(work / (8.0 * threads), 65536.0);
  for (size_t i = 0; i < r.jobs.size(); i++) {
    const Job& j = r.jobs[i];
    const int rows = std::max(32, int(target / rowWork(j)) / 32 * 32);
    for (int a = 0; a < j.n; a += rows) r.pieces.push_back(Piece{int(i), a, std::min(a + rows, j.n)});
  }
  if (r.pieces.size() == 1 || work < 262144.0) {
    for (size_t i = 0; i < r.pieces.size(); i++) pieceFn(&r, int(i), 0);
  } else {
    for (; r.base < r.pieces.size(); r.base += 32767) pool.runChunks(pieceFn, &r, int(std::min<size_t>(r.pieces.size() - r.base, 32767)));
  }
}

}  // namespace fastgemv
}  // namespace dsv4
