// Batched N-API entry points: several independent FP8/FP4 GEMMs (routed experts of a layer) or
// several row ranges of one BF16-valued weight (the grouped wo_a projection, spec §3.3) in ONE
// call and one pool dispatch. Every output element goes through the same kernel as the
// one-by-one calls (gemm / denseGemm in addon.cc), so the results are the same bits; only the
// per-call overheads (N-API call, scratch, pool hand-off and join) are paid once per batch.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "bf16.h"
#include "kernels.h"
#include "pool.h"
#include "methods.h"

namespace dsv4 {

Pool& sharedPool();                // addon.cc
bool cpuAvx2();                    // addon.cc
uint8_t* gemmScratch(size_t bytes);  // addon.cc, under the pool's call lock
void countDense(uint64_t elements, uint32_t tight, uint32_t flagged);  // addon.cc (denseStats)

namespace {

// ---------- shared helpers ----------

/** Element i of a JS array as a typed array of type `want` (data, length), false otherwise. */
bool elemArray(napi_env env, napi_value arr, uint32_t i, napi_typedarray_type want, void** data, size_t* len) {
  napi_value v, ab;
  bool is = false;
  napi_typedarray_type t;
  size_t off;
  if (napi_get_element(env, arr, i, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return false;
  return t == want;
}

bool elemInt(napi_env env, napi_value arr, uint32_t i, int* out) {
  napi_value v;
  int32_t r;
  if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_int32(env, v, &r) != napi_ok) return false;
  *out = r;
  return true;
}

bool elemBool(napi_env env, napi_value arr, uint32_t i, bool* out) {
  napi_value v;
  return napi_get_element(env, arr, i, &v) == napi_ok && napi_get_value_bool(env, v, out) == napi_ok;
}

uint32_t arrayLength(napi_env env, napi_value v) {
  bool is = false;
  uint32_t n = 0;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &n) != napi_ok) return UINT32_MAX;
  return n;
}

/** [b, e) of share `share` of `units` units. */
void shareRange(int64_t units, int share, int shares, int64_t& b, int64_t& e) {
  b = units * share / shares;
  e = units * (share + 1) / shares;
}

/** Thread shares for `work` weight-byte-equivalents (~256 KiB each, as addon.cc), at most `units`. */
int sharesFor(double work, int64_t units) {
  const int64_t n = int64_t(work / (256.0 * 1024));
  return int(n < 1 ? 1 : n > units ? units : n);
}

napi_value fail(napi_env env, const char* msg) {
  napi_throw_range_error(env, nullptr, msg);
  return nullptr;
}

// ---------- batched FP8/FP4 GEMMs ----------

/** One prepared activation matrix (e4m3 codes + scales) in one kernel's layout. */
struct Act {
  GemmArgs a;  // xq, xs, rows, K (weight fields unused)
  bool fp4;
  size_t off;  // prepared bytes at scratch + off
};

/** One product: y[rows, out] = act . w^T, output rows split in units of `align` rows. */
struct GemmJob {
  GemmArgs a;
  bool fp4;
  const uint8_t* prep;
  int units;     // ceil(out / align)
  int64_t cost;  // time of one unit (rowCost per weight element): threads get equal shares of it
};

int alignOf(bool fp4) { return fp4 ? 1 : 4; }  // as addon.cc's rowsJob split

/** Relative time per weight element of a product with R activation rows, from single-thread runs
 *  of the AVX2 kernels (1024x2048 weights, units of 1/100 FP8 GEMM multiply-add): the FP8 GEMV
 *  converts per row (R = 1: 2.1, R = 2: 3.5; up to 7 rows it runs in pairs), its tiles cost ~R + 2; FP4 is ~1.0 at R = 1,
 *  ~0.9 R up to 7 rows (GEMV) and ~0.78 R in the GEMM tiles (48 rows vs FP8 at 256). Weight bytes x (R + 1) had FP4
 *  GEMMs at 0.6x their time against the FP8 shared expert: prefill batches ran 20-40% unbalanced. */
int64_t rowCost(bool fp4, int64_t R) {
  if (fp4) return R == 1 ? 100 : R <= 7 ? 90 * R + 10 : 78 * R + 10;
  if (R <= 7) return (R / 2) * 350 + (R % 2) * 213;  // up to 7 rows the GEMVs, in pairs and a single row
  return 100 * R + 200;
}

struct Batch {
  std::vector<Act> acts;
  std::vector<GemmJob> jobs;
  uint8_t* prep = nullptr;
  int64_t prepRows = 0, cost = 0;  // cost: sum of units x cost over the jobs
  int maxRows = 0;                 // most activation rows of one product
  std::atomic<bool> ok{true};
};

#if defined(__x86_64__) || defined(_M_X64)
#define DSV4_AVX2 1
#else
#define DSV4_AVX2 0
#endif

size_t prepBytesPerRow(bool fp4, int K) {
#if DSV4_AVX2
  if (cpuAvx2()) return fp4 ? avx2::fp4PrepBytesPerRow(K) : avx2::fp8PrepBytesPerRow(K);
#endif
  (void)fp4;
  return size_t(K) * sizeof(double);
}

/** Prepares activation rows [b, e) of the concatenated rows of all acts. */
void batchPrep(void* ctx, int share, int shares) {
  Batch& B = *static_cast<Batch*>(ctx);
  int64_t b, e, base = 0;
  shareRange(B.prepRows, share, shares, b, e);
  for (const Act& x : B.acts) {
    const int64_t lo = b > base ? b - base : 0, hi = e - base < x.a.rows ? e - base : x.a.rows;
    base += x.a.rows;
    if (lo >= hi) continue;
    uint8_t* p = B.prep + x.off;
    bool ok;
#if DSV4_AVX2
    if (cpuAvx2())
      ok = x.fp4 ? avx2::fp4Prepare(x.a, p, int(lo), int(hi)) : avx2::fp8Prepare(x.a, p, int(lo), int(hi));
    else
#endif
      ok = x.fp4 ? scalar::fp4Prepare(x.a, reinterpret_cast<double*>(p), int(lo), int(hi))
                 : scalar::fp8Prepare(x.a, reinterpret_cast<double*>(p), int(lo), int(hi));
    if (!ok) B.ok.store(false);
  }
}

/** First unit of a job (units of `cost` from `base` on) that starts at or after `at`, within [0, units]. */
int64_t unitAt(int64_t at, int64_t base, int64_t cost, int64_t units) {
  const int64_t u = at <= base ? 0 : (at - base + cost - 1) / cost;
  return u < units ? u : units;
}

/** The units whose weight bytes start in this share's [b, e) of all jobs' bytes. */
void batchRows(void* ctx, int share, int shares) {
  const Batch& B = *static_cast<const Batch*>(ctx);
  int64_t b, e, base = 0;
  shareRange(B.cost, share, shares, b, e);
  for (const GemmJob& j : B.jobs) {
    const int64_t lo = unitAt(b, base, j.cost, j.units), hi = unitAt(e, base, j.cost, j.units);
    base += j.units * j.cost;
    if (lo >= hi) continue;
    const int al = alignOf(j.fp4);
    const int n0 = int(lo) * al, n1 = int(hi) * al < j.a.out ? int(hi) * al : j.a.out;
#if DSV4_AVX2
    if (cpuAvx2()) {
      if (j.fp4) avx2::fp4Rows(j.a, j.prep, n0, n1);
      else avx2::fp8Rows(j.a, j.prep, n0, n1);
      continue;
    }
#endif
    if (j.fp4) {
      scalar::fp4Rows(j.a, reinterpret_cast<const double*>(j.prep), n0, n1);
    } else {
      scalar::fp8Rows(j.a, reinterpret_cast<const double*>(j.prep), n0, n1);
    }
  }
}

// gemmBatch(acts, jobs) -> boolean (false: an activation holds a NaN code; nothing is settled)
//   acts: flat [xq Uint8Array, xs Float32Array, rows, K, fp4 boolean] per activation matrix
//   jobs: flat [act index, w Uint8Array, ws Uint8Array, out, y Float32Array] per product
napi_value GemmBatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) return fail(env, "dsv4 native gemmBatch: 2 arguments expected");
  const uint32_t na = arrayLength(env, argv[0]), nj = arrayLength(env, argv[1]);
  const char* bad = "dsv4 native gemmBatch: bad argument types or sizes";
  if (na == UINT32_MAX || nj == UINT32_MAX || na % 5 || nj % 5) return fail(env, bad);
  Batch B;
  B.acts.resize(na / 5);
  size_t prepTotal = 0;
  for (uint32_t i = 0; i < na / 5; i++) {
    Act& x = B.acts[i];
    x.a = GemmArgs{};
    void *xq, *xs;
    size_t nxq, nxs;
    if (!elemArray(env, argv[0], 5 * i, napi_uint8_array, &xq, &nxq) || !elemArray(env, argv[0], 5 * i + 1, napi_float32_array, &xs, &nxs) ||
        !elemInt(env, argv[0], 5 * i + 2, &x.a.rows) || !elemInt(env, argv[0], 5 * i + 3, &x.a.K) || !elemBool(env, argv[0], 5 * i + 4, &x.fp4))
      return fail(env, bad);
    const size_t R = size_t(x.a.rows), K = size_t(x.a.K);
    if (x.a.rows <= 0 || x.a.K <= 0 || K % 128 != 0 || nxq < R * K || nxs < R * (K / 128)) return fail(env, bad);
    x.a.xq = static_cast<const uint8_t*>(xq);
    x.a.xs = static_cast<const float*>(xs);
    x.off = prepTotal;
    prepTotal += (R * prepBytesPerRow(x.fp4, x.a.K) + 63) & ~size_t(63);
    B.prepRows += x.a.rows;
    B.maxRows = std::max(B.maxRows, x.a.rows);
  }
  B.jobs.resize(nj / 5);
  double work = 0;
  int64_t units = 0;
  for (uint32_t i = 0; i < nj / 5; i++) {
    GemmJob& j = B.jobs[i];
    int act = -1;
    void *w, *ws, *y;
    size_t nw, nws, ny;
    if (!elemInt(env, argv[1], 5 * i, &act) || act < 0 || size_t(act) >= B.acts.size() ||
        !elemArray(env, argv[1], 5 * i + 1, napi_uint8_array, &w, &nw) || !elemArray(env, argv[1], 5 * i + 2, napi_uint8_array, &ws, &nws) ||
        !elemInt(env, argv[1], 5 * i + 3, &j.a.out) || !elemArray(env, argv[1], 5 * i + 4, napi_float32_array, &y, &ny))
      return fail(env, bad);
    const Act& x = B.acts[size_t(act)];
    j.fp4 = x.fp4;
    const size_t R = size_t(x.a.rows), K = size_t(x.a.K), O = size_t(j.a.out);
    const size_t needW = j.fp4 ? O * K / 2 : O * K;
    const size_t needWs = j.fp4 ? O * (K / 32) : ((O + 127) / 128) * (K / 128);
    if (j.a.out <= 0 || nw < needW || nws < needWs || ny < R * O) return fail(env, bad);
    j.a.xq = x.a.xq;
    j.a.xs = x.a.xs;
    j.a.rows = x.a.rows;
    j.a.K = x.a.K;
    j.a.w = static_cast<const uint8_t*>(w);
    j.a.ws = static_cast<const uint8_t*>(ws);
    j.a.y = static_cast<float*>(y);
    j.prep = reinterpret_cast<const uint8_t*>(x.off);  // offset until the scratch is known
    const int al = alignOf(j.fp4);
    j.units = (j.a.out + al - 1) / al;
    j.cost = int64_t(al) * int64_t(K) * rowCost(j.fp4, int64_t(R));
    B.cost += j.units * j.cost;
    units += j.units;
    // as addon.cc gemm: GEMMs count a sixteenth of their MACs (they are compute-bound per byte)
    work += double(R) * O * K / (R == 1 ? 1 : 16);
  }
  napi_value r;
  if (B.jobs.empty()) {
    napi_get_boolean(env, true, &r);
    return r;
  }
  Pool& p = sharedPool();
  {
    std::lock_guard<std::mutex> g(p.callLock());
    B.prep = gemmScratch(prepTotal);
    for (GemmJob& j : B.jobs) j.prep = B.prep + reinterpret_cast<size_t>(j.prep);
    size_t prepElems = 0;
    for (const Act& x : B.acts) prepElems += size_t(x.a.rows) * x.a.K;
    p.run(batchPrep, &B, prepElems >= (1 << 16) ? int(B.prepRows) : 1);
    if (B.ok.load()) {
      if (B.maxRows <= kChunkedRows) p.runChunks(batchRows, &B, chunksFor(p, sharesFor(work, units)));
      else p.run(batchRows, &B, sharesFor(work, units));
    }
  }
  napi_get_boolean(env, B.ok.load(), &r);
  return r;
}

// ---------- batched dense (BF16-valued) products over one weight ----------

struct DenseBatch {
  std::vector<DenseArgs> jobs;
  int64_t cols = 0;  // sum of n over the jobs
  int maxRows = 0;    // most activation rows of one product
  std::atomic<uint32_t> tight{0}, flagged{0};
};

void denseBatchJob(void* ctx, int share, int shares) {
  DenseBatch& B = *static_cast<DenseBatch*>(ctx);
  int64_t b, e, base = 0;
  shareRange(B.cols, share, shares, b, e);
  DenseStats st;
  for (const DenseArgs& a : B.jobs) {
    const int64_t lo = b > base ? b - base : 0, hi = e - base < a.n ? e - base : a.n;
    base += a.n;
    if (lo >= hi) continue;
#if DSV4_AVX2
    if (cpuAvx2()) {
      avx2::denseRows(a, int(lo), int(hi), st);  // (portable itself without bounds)
      continue;
    }
#endif
    scalar::denseRows(a, int(lo), int(hi), st);
  }
  B.tight.fetch_add(st.tight);
  B.flagged.fetch_add(st.flagged);
}

// denseBatch(fp8, K, w, ws, bounds, jobs, amb) -> number of elements flagged in amb
//   jobs: flat [x Float32Array, rows, r0, n, y Float32Array] per product y[rows, n] = x . W[r0 .. r0+n)ᵀ;
//   amb holds the jobs' [rows, n] flags one after another.
napi_value DenseBatchFn(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  const char* bad = "dsv4 native denseBatch: bad argument types or sizes";
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 7) return fail(env, "dsv4 native denseBatch: 7 arguments expected");
  bool fp8 = false;
  int32_t K = 0;
  napi_get_value_bool(env, argv[0], &fp8);
  napi_get_value_int32(env, argv[1], &K);
  void *w, *ws, *bounds, *amb;
  size_t nw, nws, nbd, namb;
  bool is = false;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  auto typed = [&](napi_value v, napi_typedarray_type want, void** d, size_t* n) {
    return napi_is_typedarray(env, v, &is) == napi_ok && is && napi_get_typedarray_info(env, v, &t, n, d, &ab, &off) == napi_ok && t == want;
  };
  if (K <= 0 || !typed(argv[2], fp8 ? napi_uint8_array : napi_uint16_array, &w, &nw) || !typed(argv[3], napi_uint8_array, &ws, &nws) ||
      !typed(argv[4], napi_float32_array, &bounds, &nbd) || !typed(argv[6], napi_uint8_array, &amb, &namb))
    return fail(env, bad);
  const uint32_t nj = arrayLength(env, argv[5]);
  if (nj == UINT32_MAX || nj % 5) return fail(env, bad);
  const size_t nb = (size_t(K) + 127) / 128;
  DenseBatch B;
  B.jobs.resize(nj / 5);
  size_t ambOff = 0;
  double work = 0;
  for (uint32_t i = 0; i < nj / 5; i++) {
    DenseArgs& a = B.jobs[i];
    a = DenseArgs{};
    void *x, *y;
    size_t nx, ny;
    if (!elemArray(env, argv[5], 5 * i, napi_float32_array, &x, &nx) || !elemInt(env, argv[5], 5 * i + 1, &a.rows) ||
        !elemInt(env, argv[5], 5 * i + 2, &a.r0) || !elemInt(env, argv[5], 5 * i + 3, &a.n) ||
        !elemArray(env, argv[5], 5 * i + 4, napi_float32_array, &y, &ny))
      return fail(env, bad);
    const size_t R = size_t(a.rows), N = size_t(a.n), rowsNeeded = size_t(a.r0) + N;
    if (a.rows <= 0 || a.n <= 0 || a.r0 < 0 || nx < R * K || ny < R * N || nw < rowsNeeded * K ||
        (fp8 && nws < (rowsNeeded + 127) / 128 * nb) || (nbd != 0 && nbd < rowsNeeded * denseBoundsStride(K)) || namb < ambOff + R * N)
      return fail(env, bad);
    a.kind = fp8 ? DenseKind::Fp8 : DenseKind::Bf16;
    a.K = K;
    a.x = static_cast<const float*>(x);
    a.w = w;
    a.ws = static_cast<const uint8_t*>(ws);
    a.bounds = nbd ? static_cast<const float*>(bounds) : nullptr;
    a.y = static_cast<float*>(y);
    a.amb = static_cast<uint8_t*>(amb) + ambOff;
    a.call = nextDenseCall();
    ambOff += R * N;
    B.cols += a.n;
    B.maxRows = std::max(B.maxRows, a.rows);
    work += 2.0 * R * N * K;
  }
  if (!B.jobs.empty()) {
    Pool& p = sharedPool();
    std::lock_guard<std::mutex> g(p.callLock());
    if (B.maxRows <= kChunkedRows) p.runChunks(denseBatchJob, &B, chunksFor(p, sharesFor(work, B.cols)));
    else p.run(denseBatchJob, &B, sharesFor(work, B.cols));
  }
  countDense(ambOff, B.tight.load(), B.flagged.load());
  napi_value r;
  napi_create_uint32(env, B.flagged.load(), &r);
  return r;
}

}  // namespace

void registerBatch(napi_env env, napi_value exports) {
  const Method methods[] = {
      {"gemmBatch", GemmBatch},
      {"denseBatch", DenseBatchFn},
  };
  defineMethods(env, exports, methods);
}

}  // namespace dsv4
