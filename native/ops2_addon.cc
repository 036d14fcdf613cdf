// N-API entry points of ops2.h, registered by addon.cc's Init (registerOps2). Large calls
// (prefill) are split over the shared pool in contiguous ranges; results do not depend on
// the split. src/tensor/ops2.ts wraps them as optional Kernels methods.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>
#include <string>

#include "methods.h"
#include "napi_call.h"
#include "ops2.h"
#include "pool.h"

namespace dsv4 {

Pool& sharedPool();  // addon.cc
bool cpuAvx2();      // addon.cc

namespace {

/** fn(i0, i1) over [0, n) split in one range per thread when the call does >= `work` units of
 *  about one element each (a pool hand-off costs some microseconds), else on this thread. */
template <class F>
bool parallelRanges(size_t n, double work, F fn) {
  if (n < 2 || work < double(1 << 18)) return fn(size_t(0), n);
  struct Ctx {
    size_t n;
    F* fn;
    std::atomic<bool> ok{true};
  } ctx{n, &fn};
  Pool& p = sharedPool();
  std::lock_guard<std::mutex> g(p.callLock());
  p.run(
      [](void* c, int share, int shares) {
        Ctx& x = *static_cast<Ctx*>(c);
        if (!(*x.fn)(x.n * share / shares, x.n * (share + 1) / shares)) x.ok.store(false);
      },
      &ctx, int(std::min<size_t>(n, 64)));
  return ctx.ok.load();
}

// ops2Swiglu(g, u, rows, inter, limit, rw (empty: none), h, undecided) -> count of undecided elements, their
// indices in undecided (h there untouched); -1 when more than undecided holds
napi_value Swiglu(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2Swiglu", 8);
  const int rows = c.integer(2), inter = c.integer(3);
  c.check(rows >= 0 && inter > 0);
  const size_t n = size_t(std::max(rows, 0)) * size_t(std::max(inter, 0));
  const float* g = c.array<float>(0, napi_float32_array, n);
  const float* u = c.array<float>(1, napi_float32_array, n);
  const double limit = c.number(4);
  size_t rwLen = 0, cap = 0;
  const float* rw = c.array<float>(5, napi_float32_array, 0, &rwLen);
  float* h = c.array<float>(6, napi_float32_array, n);
  int32_t* out = c.array<int32_t>(7, napi_int32_array, 0, &cap);
  c.check(rwLen == 0 || rwLen >= size_t(rows));
  c.check(n < (size_t(1) << 31));
  if (!c.ok()) return c.fail();
  const float* w = rwLen ? rw : nullptr;
  std::mutex m;
  std::vector<uint32_t> all;
  const bool avx2 = cpuAvx2();
  (void)avx2;
  // exp dominates: ~20 units per element
  parallelRanges(n, 20.0 * n, [&](size_t i0, size_t i1) {
    std::vector<uint32_t> mine;
#if defined(__x86_64__) || defined(_M_X64)
    if (avx2) ops2::avx2::swiglu(g, u, i0, i1, inter, limit, w, h, mine);
    else
#endif
      ops2::swiglu(g, u, i0, i1, inter, limit, w, h, mine);
    if (!mine.empty()) {
      std::lock_guard<std::mutex> l(m);
      all.insert(all.end(), mine.begin(), mine.end());
    }
    return true;
  });
  if (all.size() > cap) return c.result(-1.0);
  std::copy(all.begin(), all.end(), out);
  return c.result(double(all.size()));
}

// ops2RoundBf16(a): every element to BF16 in place
napi_value RoundBf16(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2RoundBf16", 1);
  size_t n = 0;
  float* a = c.array<float>(0, napi_float32_array, 0, &n);
  if (!c.ok()) return c.fail();
  parallelRanges(n, 0.25 * n, [&](size_t i0, size_t i1) {
    ops2::roundBf16Range(a, i0, i1);
    return true;
  });
  return nullptr;
}

// ops2AddRows(y, idx (empty: row t), src, rows, dim, round): y[idx[t]] = fl32(y[idx[t]] + src[t]), then BF16 if round
napi_value AddRows(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2AddRows", 6);
  const int rows = c.integer(3), dim = c.integer(4);
  c.check(rows >= 0 && dim > 0);
  const size_t R = size_t(std::max(rows, 0)), D = size_t(std::max(dim, 0));
  size_t yLen = 0, idxLen = 0;
  float* y = c.array<float>(0, napi_float32_array, 0, &yLen);
  const int32_t* idx = c.array<int32_t>(1, napi_int32_array, 0, &idxLen);
  const float* src = c.array<float>(2, napi_float32_array, R * D);
  c.check(idxLen == 0 || idxLen >= R);
  if (c.ok())
    for (size_t t = 0; t < R; t++) c.check(size_t(idxLen ? idx[t] : int32_t(t)) < yLen / D && (idxLen == 0 || idx[t] >= 0));
  const bool round = c.flag(5);
  if (!c.ok()) return c.fail();
  // rows may repeat in idx: one thread, in row order
  for (size_t t = 0; t < R; t++) ops2::addRow(y + size_t(idxLen ? idx[t] : int32_t(t)) * D, src + t * D, D, round);
  return nullptr;
}

// ops2Pool(kv, score, r, c, overlap, entry, flags) -> count of channels left undecided (flags[ch] = 1)
napi_value Pool2(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2Pool", 7);
  const int r = c.integer(2), width = c.integer(3);
  const bool overlap = c.flag(4);
  c.check(r > 0 && width > 0 && r <= 4096 && width <= 65536);
  const size_t n = c.ok() ? size_t(overlap ? 2 * r : r) * size_t(overlap ? 2 * width : width) : 0;
  const float* kv = c.array<float>(0, napi_float32_array, n);
  const float* score = c.array<float>(1, napi_float32_array, n);
  float* entry = c.array<float>(5, napi_float32_array, size_t(std::max(width, 0)));
  uint8_t* flags = c.array<uint8_t>(6, napi_uint8_array, size_t(std::max(width, 0)));
  if (!c.ok()) return c.fail();
  int undecided = 0;
  for (int ch = 0; ch < width; ch++) undecided += flags[ch] = !ops2::poolChannel(kv, score, r, width, overlap, ch, entry + ch);
  return c.result(double(undecided));
}

// ops2Heads(x, rows, H, d, rd, mode, cos, sin, positions, eps, scale, flags) -> count of flagged heads
// (flags[r*H + h] = 1: undecided, that head of x untouched)
napi_value Heads(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2Heads", 12);
  const int rows = c.integer(1), H = c.integer(2), d = c.integer(3), rd = c.integer(4), mode = c.integer(5);
  c.check(rows >= 0 && H >= 0 && d > 0 && d <= 8192 && rd >= 0 && rd <= d && rd % 2 == 0);
  const size_t heads = c.ok() ? size_t(rows) * size_t(H) : 0;
  float* x = c.array<float>(0, napi_float32_array, heads * size_t(d > 0 ? d : 0));
  size_t tableLen = 0, sinLen = 0;
  const float* cos = c.array<float>(6, napi_float32_array, 0, &tableLen);
  const float* sin = c.array<float>(7, napi_float32_array, 0, &sinLen);
  const int32_t* pos = c.array<int32_t>(8, napi_int32_array, size_t(std::max(rows, 0)));
  const double eps = c.number(9), scale = c.number(10);
  uint8_t* flags = c.array<uint8_t>(11, napi_uint8_array, heads);
  if (c.ok())
    for (int r = 0; r < rows; r++) c.check(pos[r] >= 0 && (size_t(pos[r]) + 1) * size_t(rd / 2) <= std::min(tableLen, sinLen));
  if (!c.ok()) return c.fail();
  ops2::HeadArgs a{d, rd, mode, cos, sin, float(eps), float(scale)};
#if defined(__x86_64__) || defined(_M_X64)
  if (cpuAvx2()) {
    a.hadamardFp4 = ops2::avx2::hadamardFp4;
    a.rmsScale = ops2::avx2::rmsScale;
  }
#endif
  // shapes the transforms do not cover go to the reference whole
  const bool covered = (mode != ops2::ROPE_FP8 || (d - rd) % 64 == 0) && (mode != ops2::ROPE_HADAMARD_FP4 || ((d & (d - 1)) == 0 && d % 32 == 0));
  std::atomic<int> flagged{0};
  parallelRanges(heads, double(heads) * d * (mode == ops2::ROPE_HADAMARD_FP4 ? 8 : 2), [&](size_t i0, size_t i1) {
    int f = 0;
    for (size_t i = i0; i < i1; i++) {
      flags[i] = !covered || !ops2::head(a, x + i * size_t(d), pos[i / size_t(H)]);
      f += flags[i];
    }
    flagged += f;
    return true;
  });
  return c.result(double(flagged.load()));
}

// ops2TopkBf16(scores, n, k, out) -> entries written to out (min(k, n)), or -1 when a score is not a BF16 value
napi_value TopkBf16(napi_env env, napi_callback_info info) {
  Call c(env, info, "ops2TopkBf16", 4);
  const int n = c.integer(1), k = c.integer(2);
  c.check(n >= 0 && k >= 0);
  const float* s = c.array<float>(0, napi_float32_array, size_t(std::max(n, 0)));
  int32_t* out = c.array<int32_t>(3, napi_int32_array, size_t(std::min(std::max(n, 0), std::max(k, 0))));
  if (!c.ok()) return c.fail();
  return c.result(double(ops2::topkBf16(s, size_t(n), size_t(k), out)));
}

}  // namespace

void registerOps2(napi_env env, napi_value exports) {
  static const Method methods[] = {
      {"ops2Swiglu", Swiglu},
      {"ops2RoundBf16", RoundBf16},
      {"ops2Heads", Heads},
      {"ops2AddRows", AddRows},
      {"ops2Pool", Pool2},
      {"ops2TopkBf16", TopkBf16},
  };
  defineMethods(env, exports, methods);
}

}  // namespace dsv4
