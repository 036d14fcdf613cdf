// The few-row fast FP8 products of a fastGemv call (fast_addon.cc parses it): activations
// dequantized row-major once, then pieces of weight rows taken in turn by the pool's threads
// (runChunks: a descheduled worker costs little), each piece's outputs over all activation rows.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "fast.h"
#include "fastgemv.h"
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
  size_t total = 0;
  for (const fast::Act& a : acts) total += a.quant ? size_t(a.rows) * a.K : 0;
  deq.resize(total);
  std::vector<const float*> xs;
  size_t off = 0;
  for (const fast::Act& a : acts) {
    if (!a.quant) {
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
    const WeightKind kind = fj.kind == fast::Kind::Bf16 ? WeightKind::Bf16 : fj.kind == fast::Kind::Fp8AsBf16 ? WeightKind::Fp8AsBf16 : WeightKind::Fp8;
    r.jobs.push_back(Job{kind, xs[size_t(fj.act - acts.data())], a.rows, a.K, fj.w, fj.ws,
                         fj.r0, fj.n, fj.y});
    work += double(fj.n) * a.K;
  }
  // the chain kernel's activations in its lane order, once per call
  thread_local std::vector<float> perm;
  size_t permFloats = 0;
  for (const Job& j : r.jobs) permFloats += avx2 && j.R <= kChainRows ? size_t(j.R) * chain::paddedK(j.K) : 0;
  perm.resize(permFloats);
  off = 0;
  for (const Job& j : r.jobs) {
    r.xp.push_back(perm.data() + off);
#if defined(__x86_64__) || defined(_M_X64)
    if (avx2 && j.R <= kChainRows) chain::avx2::permute(j, perm.data() + off), off += size_t(j.R) * chain::paddedK(j.K);
#endif
  }
  // pieces of 32-row multiples, about 8 per thread over the call (at least 64 KiB of weights each)
  const int threads = pool.threads();
  const double target = std::max(work / (8.0 * threads), 65536.0);
  for (size_t i = 0; i < r.jobs.size(); i++) {
    const Job& j = r.jobs[i];
    const int rows = std::max(32, int(target / j.K) / 32 * 32);
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
