// N-API entry point of the fast products (fast.h): fastBatch(acts, jobs) computes several products,
// each over its own activation matrix and weight row range, with two pool dispatches: the
// activations dequantized once (split by tiles), then the products as items (weight panel ranges,
// or activation tiles for narrow outputs) that the threads take in turn.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "fast.h"
#include "fastgemv.h"
#include "methods.h"
#include "pool.h"

namespace dsv4 {

Pool& sharedPool();  // addon.cc
bool cpuAvx2();      // addon.cc

namespace {

using fast::Act;
using fast::Job;
using fast::Kind;

#if defined(__x86_64__) || defined(_M_X64)
bool useAvx2() {
  static const bool ok = cpuAvx2() && __builtin_cpu_supports("f16c");
  return ok;
}
void prepare(const Act& a, int t0, int t1) {
  if (useAvx2()) fast::avx2::prepare(a, t0, t1);
  else fast::scalar::prepare(a, t0, t1);
}
void run(const Job& j, int p0, int p1, int t0, int t1) {
  if (useAvx2()) fast::avx2::run(j, p0, p1, t0, t1);
  else fast::scalar::run(j, p0, p1, t0, t1);
}
#else  // fast_avx2.cc is empty off x86-64
bool useAvx2() { return false; }
void prepare(const Act& a, int t0, int t1) { fast::scalar::prepare(a, t0, t1); }
void run(const Job& j, int p0, int p1, int t0, int t1) { fast::scalar::run(j, p0, p1, t0, t1); }
#endif

/** 64-byte aligned fp32 scratch, grown as needed (only under the pool's call lock). */
float* scratch(size_t floats) {
  static float* buf = nullptr;
  static size_t cap = 0;
  if (floats > cap) {
    std::free(buf);
    cap = std::max(floats, cap * 2);
    buf = static_cast<float*>(std::aligned_alloc(64, (cap * sizeof(float) + 63) & ~size_t(63)));
    if (!buf) cap = 0;
  }
  return buf;
}

/** One piece of work: panels [p0, p1) x tiles [t0, t1) of a job; the threads take them in turn. */
struct Item {
  int job, p0, p1, t0, t1;
};

struct Batch {
  std::vector<Act> acts;
  std::vector<Job> jobs;
  std::vector<Item> items;
  std::atomic<size_t> next{0};
  int tiles = 0;  // over all acts
  double cost = 0;
};

void prepShare(void* ctx, int share, int shares) {
  const Batch& B = *static_cast<const Batch*>(ctx);
  const int b = int(int64_t(B.tiles) * share / shares), e = int(int64_t(B.tiles) * (share + 1) / shares);
  int base = 0;
  for (const Act& a : B.acts) {
    const int n = a.mpad / a.tw, lo = std::max(b - base, 0), hi = std::min(e - base, n);
    base += n;
    if (lo >= hi) continue;
    prepare(a, lo, hi);
  }
}

/** Items in turn (a share whose core is busy with another process takes fewer). */
void runShare(void* ctx, int, int) {
  Batch& B = *static_cast<Batch*>(ctx);
  for (size_t i; (i = B.next.fetch_add(1)) < B.items.size();) {
    const Item& it = B.items[i];
    const Job& j = B.jobs[size_t(it.job)];
    run(j, it.p0, it.p1, it.t0, it.t1);
  }
}

/** The job's items: panel ranges, or activation tile ranges (two per thread) when the output is narrow. */
void addItems(Batch& B, int job, int panels, int tiles, double panelCost, double actBytes, int threads) {
  if (panels < 8 && tiles > 1) {
    const int per = (tiles + 2 * threads - 1) / (2 * threads);  // each item converts all the weights
    for (int t = 0; t < tiles; t += per) B.items.push_back(Item{job, 0, panels, t, std::min(t + per, tiles)});
    return;
  }
  // at least ~2M multiply-adds per item; activations beyond L2 are read once per item, so enough
  // panels that this costs under ~1 byte per cycle (16 multiply-adds)
  double per = std::ceil(double(1 << 21) / panelCost);
  if (actBytes > 384 * 1024) per = std::max(per, std::ceil(actBytes * 16 / panelCost));
  const int cp = int(std::min<double>(per, panels));
  for (int p = 0; p < panels; p += cp) B.items.push_back(Item{job, p, std::min(p + cp, panels), 0, tiles});
}

bool typedArg(napi_env env, napi_value arr, uint32_t i, void** data, size_t* len, napi_typedarray_type* type) {
  napi_value v, ab;
  bool is = false;
  size_t off;
  if (napi_get_element(env, arr, i, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  return napi_get_typedarray_info(env, v, type, len, data, &ab, &off) == napi_ok;
}

bool intArg(napi_env env, napi_value arr, uint32_t i, int* out) {
  napi_value v;
  int32_t r;
  if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_int32(env, v, &r) != napi_ok) return false;
  *out = r;
  return true;
}

uint32_t arrayLength(napi_env env, napi_value v) {
  bool is = false;
  uint32_t n = 0;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &n) != napi_ok) return UINT32_MAX;
  return n;
}

napi_value fail(napi_env env, const char* msg) {
  napi_throw_range_error(env, nullptr, msg);
  return nullptr;
}

// fastBatch(acts, jobs)
//   acts: flat [x Uint8Array (e4m3 codes) | Float32Array, xs Float32Array (1x128 scales; ignored for fp32), rows, K]
//   jobs: flat [act index, kind (0 fp8, 1 fp4, 2 bf16, 3 fp8 as bf16), w, ws Uint8Array, r0, n, y Float32Array]
//   FP8/FP4 kinds need K % 128 == 0 and e4m3 activations; BF16-valued kinds fp32 activations (fp8 as bf16: K % 128 == 0).
// fastGemv(acts, jobs): the same arguments, FP8 kinds (no NaN weight codes) or BF16 (K % 32 == 0 from
//   3 rows), at most fastgemv::kMaxRows activation rows: the few-row kernels of fastgemv_*.cc; up to
//   fastgemv::kChainRows rows in the chain semantics (fastchain_*.cc), which fastBatch does not give; FP4
//   jobs in the int8 semantics (fp4q8_*.cc), which fastBatch does not give either. All jobs of a call share
//   one pool dispatch. fastDecode: the same function (its presence says the addon takes FP4 jobs there).
napi_value FastCall(napi_env env, napi_callback_info info, bool gemv) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) return fail(env, "dsv4 native fastBatch: 2 arguments expected");
  const uint32_t na = arrayLength(env, argv[0]), nj = arrayLength(env, argv[1]);
  const char* bad = "dsv4 native fastBatch: bad argument types or sizes";
  if (na == UINT32_MAX || nj == UINT32_MAX || na % 4 || nj % 7) return fail(env, bad);
  const bool avx2 = useAvx2();
  Batch B;
  B.acts.resize(na / 4);
  size_t floats = 0;
  for (uint32_t i = 0; i < na / 4; i++) {
    Act& a = B.acts[i];
    void *x, *xs;
    size_t nx, nxs;
    napi_typedarray_type tx, txs;
    if (!typedArg(env, argv[0], 4 * i, &x, &nx, &tx) || !typedArg(env, argv[0], 4 * i + 1, &xs, &nxs, &txs) || !intArg(env, argv[0], 4 * i + 2, &a.rows) ||
        !intArg(env, argv[0], 4 * i + 3, &a.K) || txs != napi_float32_array || (tx != napi_uint8_array && tx != napi_float32_array))
      return fail(env, bad);
    a.quant = tx == napi_uint8_array;
    const size_t R = size_t(a.rows), K = size_t(a.K);
    if (a.rows <= 0 || a.K <= 0 || nx < R * K || (a.quant && (K % 128 != 0 || nxs < R * (K / 128)))) return fail(env, bad);
    a.x = x;
    a.xs = static_cast<const float*>(xs);
    a.tw = avx2 ? fast::tileRows(a.rows) : 16;
    a.mpad = (a.rows + a.tw - 1) / a.tw * a.tw;
    a.prep = reinterpret_cast<float*>(floats);  // offset until the scratch is known
    floats += (size_t(avx2 ? a.mpad : a.rows) * K + 15) & ~size_t(15);
    B.tiles += a.mpad / a.tw;
  }
  B.jobs.resize(nj / 7);
  for (uint32_t i = 0; i < nj / 7; i++) {
    Job& j = B.jobs[i];
    int act = -1, kind = -1;
    void *w, *ws, *y;
    size_t nw, nws, ny;
    napi_typedarray_type tw, tws, ty;
    if (!intArg(env, argv[1], 7 * i, &act) || act < 0 || size_t(act) >= B.acts.size() || !intArg(env, argv[1], 7 * i + 1, &kind) || kind < 0 || kind > 3 ||
        !typedArg(env, argv[1], 7 * i + 2, &w, &nw, &tw) || !typedArg(env, argv[1], 7 * i + 3, &ws, &nws, &tws) || !intArg(env, argv[1], 7 * i + 4, &j.r0) ||
        !intArg(env, argv[1], 7 * i + 5, &j.n) || !typedArg(env, argv[1], 7 * i + 6, &y, &ny, &ty) || tws != napi_uint8_array || ty != napi_float32_array)
      return fail(env, bad);
    j.kind = Kind(kind);
    j.act = &B.acts[size_t(act)];
    const Act& a = *j.act;
    const size_t R = size_t(a.rows), K = size_t(a.K), rowsNeeded = size_t(j.r0) + size_t(j.n);
    const bool quantKind = j.kind == Kind::Fp8 || j.kind == Kind::Fp4;
    if (j.r0 < 0 || j.n <= 0 || quantKind != a.quant || ny < R * size_t(j.n)) return fail(env, bad);
    if ((j.kind != Kind::Bf16 && K % 128 != 0) || (j.kind == Kind::Bf16 ? tw != napi_uint16_array : tw != napi_uint8_array)) return fail(env, bad);
    const size_t needW = j.kind == Kind::Fp4 ? rowsNeeded * K / 2 : rowsNeeded * K;
    const size_t needWs = j.kind == Kind::Fp4 ? rowsNeeded * (K / 32) : j.kind == Kind::Bf16 ? 0 : (rowsNeeded + 127) / 128 * (K / 128);
    if (nw < needW || nws < needWs) return fail(env, bad);
    j.w = w;
    j.ws = static_cast<const uint8_t*>(ws);
    j.y = static_cast<float*>(y);
    const int nr = fast::panelRows(a), panels = (j.n + nr - 1) / nr, tiles = a.mpad / a.tw;
    const double panelCost = double(nr) * a.mpad * K;
    addItems(B, int(i), panels, tiles, panelCost, double(a.mpad) * K * 4, sharedPool().threads());
    B.cost += double(panels) * panelCost;
  }
  if (B.jobs.empty()) return nullptr;
  if (gemv) {
    for (const Job& j : B.jobs)
      if ((j.kind == Kind::Bf16 && j.act->K % 32 != 0 && j.act->rows > fastgemv::kChainRows) || j.act->rows > fastgemv::kMaxRows)
        return fail(env, bad);
    fastgemv::run(B.acts, B.jobs, avx2);
    return nullptr;
  }
  Pool& p = sharedPool();
  {
    std::lock_guard<std::mutex> g(p.callLock());
    float* s = scratch(floats);
    if (!s) return fail(env, "dsv4 native fastBatch: out of memory");
    for (Act& a : B.acts) a.prep = s + reinterpret_cast<size_t>(a.prep);
    size_t prepFloats = 0;
    for (const Act& a : B.acts) prepFloats += size_t(a.rows) * a.K;
    p.run(prepShare, &B, prepFloats >= (1 << 16) ? B.tiles : 1);
    p.run(runShare, &B, B.cost < (1 << 20) ? 1 : int(std::min<size_t>(B.items.size(), 64)));
  }
  return nullptr;
}

napi_value FastBatch(napi_env env, napi_callback_info info) { return FastCall(env, info, false); }
napi_value FastGemv(napi_env env, napi_callback_info info) { return FastCall(env, info, true); }

}  // namespace

void registerFast(napi_env env, napi_value exports) {
  const Method methods[] = {{"fastBatch", FastBatch}, {"fastGemv", FastGemv}, {"fastDecode", FastGemv}};
  defineMethods(env, exports, methods);
}

}  // namespace dsv4
