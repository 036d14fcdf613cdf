// N-API entry points of the dsv4 native kernels (plain C Node-API, no
// dependencies). Runtime CPU dispatch: AVX2+FMA kernels when the CPU has
// them, else the portable scalar kernels. Everything is synchronous on the
// calling thread (the engine calls from its worker thread), with the work
// shared by a persistent pool of DSV4_THREADS threads (default: all cores).
#include <node_api.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "bf16.h"
#include "kernels.h"
#include "pool.h"
#include "methods.h"

namespace dsv4 {
void registerOps(napi_env env, napi_value exports);  // ops_addon.cc
void registerBatch(napi_env env, napi_value exports);  // batch.cc
void registerOps2(napi_env env, napi_value exports);  // ops2_addon.cc
void registerFast(napi_env env, napi_value exports);  // fast_addon.cc
void registerMem(napi_env env, napi_value exports);  // mem.cc
namespace {

bool hasAvx2() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !std::getenv("DSV4_NO_AVX2");
  return ok;
#else
  return false;
#endif
}

bool hasVnni() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool ok = hasAvx2() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw") && !std::getenv("DSV4_NO_AVX512");
  return ok;
#else
  return false;
#endif
}

int defaultThreads() {
  if (const char* e = std::getenv("DSV4_THREADS")) {
    const int n = std::atoi(e);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}

std::unique_ptr<Pool>& poolRef() {
  static std::unique_ptr<Pool> p;
  return p;
}
std::mutex poolCreate;
Pool& pool() {
  std::lock_guard<std::mutex> g(poolCreate);
  auto& p = poolRef();
  if (!p) p.reset(new Pool(defaultThreads()));
  return *p;
}

// ---------- GEMM job ----------

struct Job {
  GemmArgs a;
  bool fp4;
  uint8_t* prep;
  std::atomic<bool> ok{true};
};

void split(int total, int align, int share, int shares, int& b, int& e) {
  const int units = (total + align - 1) / align;
  b = int(int64_t(units) * share / shares) * align;
  e = int(int64_t(units) * (share + 1) / shares) * align;
  if (e > total) e = total;
  if (b > total) b = total;
}

void prepJob(void* ctx, int share, int shares) {
  Job& j = *static_cast<Job*>(ctx);
  int m0, m1;
  split(j.a.rows, 1, share, shares, m0, m1);
  if (m0 >= m1) return;
  bool ok;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2())
    ok = j.fp4 ? avx2::fp4Prepare(j.a, j.prep, m0, m1) : avx2::fp8Prepare(j.a, j.prep, m0, m1);
  else
#endif
    ok = j.fp4 ? scalar::fp4Prepare(j.a, reinterpret_cast<double*>(j.prep), m0, m1)
               : scalar::fp8Prepare(j.a, reinterpret_cast<double*>(j.prep), m0, m1);
  if (!ok) j.ok.store(false);
}

void rowsJob(void* ctx, int share, int shares) {
  Job& j = *static_cast<Job*>(ctx);
  int n0, n1;
  split(j.a.out, j.fp4 ? 1 : 4, share, shares, n0, n1);
  if (n0 >= n1) return;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) {
    if (j.fp4) avx2::fp4Rows(j.a, j.prep, n0, n1);
    else avx2::fp8Rows(j.a, j.prep, n0, n1);
    return;
  }
#endif
  if (j.fp4) scalar::fp4Rows(j.a, reinterpret_cast<const double*>(j.prep), n0, n1);
  else scalar::fp8Rows(j.a, reinterpret_cast<const double*>(j.prep), n0, n1);
}

size_t prepBytes(const GemmArgs& a, bool fp4) {
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) return size_t(a.rows) * (fp4 ? avx2::fp4PrepBytesPerRow(a.K) : avx2::fp8PrepBytesPerRow(a.K));
#endif
  (void)fp4;
  return size_t(a.rows) * a.K * sizeof(double);
}

struct Scratch {
  uint8_t* p = nullptr;
  size_t n = 0;
  uint8_t* get(size_t bytes) {
    if (bytes > n) {
      std::free(p);
      n = bytes + (bytes >> 2);
      p = static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) & ~size_t(63)));
    }
    return p;
  }
};
Scratch scratch;

/** Thread shares for `work` weight-byte-equivalents (~256 KiB each at least), at most `units`. */
int sharesFor(double work, int units) {
  const double per = 256.0 * 1024;
  const int n = int(work / per);
  return n < 1 ? 1 : n > units ? units : n;
}

/** Returns false when the reference path must be used (NaN activation codes). */
bool gemm(const GemmArgs& a, bool fp4) {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.callLock());
  Job j;
  j.a = a;
  j.fp4 = fp4;
  j.prep = scratch.get(prepBytes(a, fp4));
  // a handoff costs microseconds: split only work worth ~20 us per thread
  const double macs = double(a.rows) * a.out * a.K;
  p.run(prepJob, &j, a.rows * a.K >= (1 << 16) ? a.rows : 1);
  if (!j.ok.load()) return false;
  const int shares = sharesFor(macs / (a.rows == 1 ? 1 : 16), a.out);
  if (a.rows <= kChunkedRows) p.runChunks(rowsJob, &j, chunksFor(p, shares));
  else p.run(rowsJob, &j, shares);
  return true;
}

// ---------- dense BF16-valued job (bf16.h) ----------

struct DenseJob {
  DenseArgs a;
  std::atomic<uint32_t> tight{0}, flagged{0};
};

void denseJob(void* ctx, int share, int shares) {
  DenseJob& j = *static_cast<DenseJob*>(ctx);
  // few output columns and many rows (prefill through small weights): split the activation rows,
  // so each thread prepares only its own (the tiled kernel converts the few weight rows again)
  DenseArgs a = j.a;
  int j0 = 0, j1 = a.n;
  if (a.n < 256 && a.rows >= 8 * shares) {
    int m0, m1;
    split(a.rows, 1, share, shares, m0, m1);
    if (m0 >= m1) return;
    a.x += size_t(m0) * a.K;
    a.y += size_t(m0) * a.n;
    a.amb += size_t(m0) * a.n;
    a.rows = m1 - m0;
  } else {
    split(a.n, 1, share, shares, j0, j1);
    if (j0 >= j1) return;
  }
  DenseStats st;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) avx2::denseRows(a, j0, j1, st);
  else
#endif
    scalar::denseRows(a, j0, j1, st);
  j.tight.fetch_add(st.tight);
  j.flagged.fetch_add(st.flagged);
}

struct BoundsJob {
  DenseKind kind;
  const void* w;
  const uint8_t* ws;
  int K, out;
  float* bounds;
};

void boundsJob(void* ctx, int share, int shares) {
  const BoundsJob& j = *static_cast<const BoundsJob*>(ctx);
  int r0, r1;
  split(j.out, 1, share, shares, r0, r1);
  if (r0 >= r1) return;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2() && j.kind == DenseKind::Bf16) return avx2::denseBoundsBf16(static_cast<const uint16_t*>(j.w), j.K, r0, r1, j.bounds);
#endif
  denseBounds(j.kind, j.w, j.ws, j.K, r0, r1, j.bounds);
}

// cumulative fallback counters (denseStats)
std::atomic<uint64_t> denseElements{0}, denseTight{0}, denseFlagged{0};

// ---------- indexer job ----------

struct IndexerJob {
  IndexerArgs a;
  int visible;
};

void indexerJob(void* ctx, int share, int shares) {
  const IndexerJob& j = *static_cast<const IndexerJob*>(ctx);
  int t0, t1;
  split(j.visible, 1, share, shares, t0, t1);
  if (t0 >= t1) return;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) return avx2::indexerScores(j.a, t0, t1);
#endif
  scalar::indexerScores(j.a, t0, t1);
}

// ---------- indexer job, compact FP4 keys ----------

struct IndexerFp4Job {
  IndexerFp4Args a;
  int visible;
};

void indexerFp4Job(void* ctx, int share, int shares) {
  const IndexerFp4Job& j = *static_cast<const IndexerFp4Job*>(ctx);
  int t0, t1;
  split(j.visible, 8, share, shares, t0, t1);  // whole groups of 8 interleaved keys
  if (t0 >= t1) return;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) return avx2::indexerScoresFp4(j.a, t0, t1);
#endif
  scalar::indexerScoresFp4(j.a, t0, t1);
}

// ---------- N-API glue ----------

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, nullptr, "dsv4 native: N-API call failed"); \
      return nullptr;                                                   \
    }                                                                   \
  } while (0)

bool typed(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return false;
  return t == want;
}

int32_t intArg(napi_env env, napi_value v) {
  int32_t r = 0;
  napi_get_value_int32(env, v, &r);
  return r;
}

napi_value boolean(napi_env env, bool b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}

// Reads exactly `n` call arguments into argv; throws a TypeError naming `fn` and returns false otherwise.
bool callArgs(napi_env env, napi_callback_info info, size_t n, napi_value* argv, const char* message) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) {
    napi_throw_error(env, nullptr, "dsv4 native: N-API call failed");
    return false;
  }
  if (argc < n) {
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  return true;
}

// gemm(fp4, xq, xs, rows, K, w, ws, out, y) -> boolean
napi_value Gemm(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!callArgs(env, info, 9, argv, "dsv4 native gemm: 9 arguments expected")) return nullptr;
  bool fp4 = false;
  napi_get_value_bool(env, argv[0], &fp4);
  GemmArgs a{};
  void *xq, *xs, *w, *ws, *y;
  size_t nxq, nxs, nw, nws, ny;
  const bool okTypes = typed(env, argv[1], napi_uint8_array, &xq, &nxq) &&
                       typed(env, argv[2], napi_float32_array, &xs, &nxs) &&
                       typed(env, argv[5], napi_uint8_array, &w, &nw) &&
                       typed(env, argv[6], napi_uint8_array, &ws, &nws) &&
                       typed(env, argv[8], napi_float32_array, &y, &ny);
  a.rows = intArg(env, argv[3]);
  a.K = intArg(env, argv[4]);
  a.out = intArg(env, argv[7]);
  const size_t R = size_t(a.rows), K = size_t(a.K), O = size_t(a.out);
  const size_t needW = fp4 ? O * K / 2 : O * K;
  const size_t needWs = fp4 ? O * (K / 32) : ((O + 127) / 128) * (K / 128);
  if (!okTypes || a.rows <= 0 || a.K <= 0 || a.out <= 0 || K % 128 != 0 || nxq < R * K || nxs < R * (K / 128) ||
      nw < needW || nws < needWs || ny < R * O) {
    napi_throw_range_error(env, nullptr, "dsv4 native gemm: bad argument types or sizes");
    return nullptr;
  }
  a.xq = static_cast<const uint8_t*>(xq);
  a.xs = static_cast<const float*>(xs);
  a.w = static_cast<const uint8_t*>(w);
  a.ws = static_cast<const uint8_t*>(ws);
  a.y = static_cast<float*>(y);
  return boolean(env, gemm(a, fp4));
}

/** Weight rows as DenseArgs fields: BF16 bits (Uint16Array) or e4m3 codes (Uint8Array) with ue8m0 scales. */
bool denseWeight(napi_env env, bool fp8, napi_value wv, napi_value wsv, int K, int rowsNeeded, const void** w, const uint8_t** ws) {
  void *wp, *sp;
  size_t nw, nws;
  const size_t nb = (size_t(K) + 127) / 128;
  if (!typed(env, wv, fp8 ? napi_uint8_array : napi_uint16_array, &wp, &nw) || !typed(env, wsv, napi_uint8_array, &sp, &nws)) return false;
  if (nw < size_t(rowsNeeded) * K || (fp8 && nws < (size_t(rowsNeeded) + 127) / 128 * nb)) return false;
  *w = wp;
  *ws = static_cast<const uint8_t*>(sp);
  return true;
}

// denseGemm(fp8, x, rows, K, w, ws, r0, n, bounds, y, amb) -> number of elements flagged in amb
napi_value DenseGemm(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!callArgs(env, info, 11, argv, "dsv4 native denseGemm: 11 arguments expected")) return nullptr;
  bool fp8 = false;
  napi_get_value_bool(env, argv[0], &fp8);
  DenseJob j;
  DenseArgs& a = j.a;
  a.kind = fp8 ? DenseKind::Fp8 : DenseKind::Bf16;
  a.rows = intArg(env, argv[2]);
  a.K = intArg(env, argv[3]);
  a.r0 = intArg(env, argv[6]);
  a.n = intArg(env, argv[7]);
  void *x, *bounds, *y, *amb;
  size_t nx, nbd, ny, namb;
  const size_t R = size_t(a.rows), K = size_t(a.K), N = size_t(a.n);
  const bool ok = a.rows > 0 && a.K > 0 && a.n > 0 && a.r0 >= 0 && typed(env, argv[1], napi_float32_array, &x, &nx) &&
                  denseWeight(env, fp8, argv[4], argv[5], a.K, a.r0 + a.n, &a.w, &a.ws) &&
                  typed(env, argv[8], napi_float32_array, &bounds, &nbd) && typed(env, argv[9], napi_float32_array, &y, &ny) &&
                  typed(env, argv[10], napi_uint8_array, &amb, &namb) && nx >= R * K && ny >= R * N && namb >= R * N &&
                  (nbd == 0 || nbd >= (size_t(a.r0) + N) * denseBoundsStride(a.K));
  if (!ok) {
    napi_throw_range_error(env, nullptr, "dsv4 native denseGemm: bad argument types or sizes");
    return nullptr;
  }
  a.x = static_cast<const float*>(x);
  a.bounds = nbd ? static_cast<const float*>(bounds) : nullptr;
  a.y = static_cast<float*>(y);
  a.amb = static_cast<uint8_t*>(amb);
  a.call = nextDenseCall();
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.callLock());
    const int shares = sharesFor(2.0 * a.rows * a.n * a.K, a.n);
    if (a.rows <= kChunkedRows) p.runChunks(denseJob, &j, chunksFor(p, shares));
    else p.run(denseJob, &j, shares);
  }
  denseElements += R * N;
  denseTight += j.tight.load();
  denseFlagged += j.flagged.load();
  napi_value r;
  napi_create_uint32(env, j.flagged.load(), &r);
  return r;
}

// denseBounds(fp8, w, ws, K, out, bounds): the per-weight block bounds denseGemm certifies with
napi_value DenseBounds(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!callArgs(env, info, 6, argv, "dsv4 native denseBounds: 6 arguments expected")) return nullptr;
  bool fp8 = false;
  napi_get_value_bool(env, argv[0], &fp8);
  BoundsJob j{};
  j.kind = fp8 ? DenseKind::Fp8 : DenseKind::Bf16;
  j.K = intArg(env, argv[3]);
  j.out = intArg(env, argv[4]);
  void* b;
  size_t nbd;
  if (j.K <= 0 || j.out <= 0 || !denseWeight(env, fp8, argv[1], argv[2], j.K, j.out, &j.w, &j.ws) ||
      !typed(env, argv[5], napi_float32_array, &b, &nbd) || nbd < size_t(j.out) * denseBoundsStride(j.K)) {
    napi_throw_range_error(env, nullptr, "dsv4 native denseBounds: bad argument types or sizes");
    return nullptr;
  }
  j.bounds = static_cast<float*>(b);
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.callLock());
    p.run(boundsJob, &j, sharesFor(double(j.out) * j.K, j.out));
  }
  return nullptr;
}

// denseStats() -> { elements, tight, flagged } since the process started
napi_value DenseStatsFn(napi_env env, napi_callback_info) {
  napi_value o, v;
  CHECK(napi_create_object(env, &o));
  const std::pair<const char*, uint64_t> fields[] = {{"elements", denseElements.load()}, {"tight", denseTight.load()}, {"flagged", denseFlagged.load()}};
  for (const auto& f : fields) {
    CHECK(napi_create_double(env, double(f.second), &v));
    CHECK(napi_set_named_property(env, o, f.first, v));
  }
  return o;
}

// indexerScores(q, hw, keys, H, d, visible, scores, amb) -> number of entries flagged in amb
napi_value IndexerScores(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!callArgs(env, info, 8, argv, "dsv4 native indexerScores: 8 arguments expected")) return nullptr;
  void *q, *hw, *keys, *scores, *amb;
  size_t nq, nhw, nk, ns, na;
  const bool okTypes = typed(env, argv[0], napi_float32_array, &q, &nq) && typed(env, argv[1], napi_float32_array, &hw, &nhw) &&
                       typed(env, argv[2], napi_float32_array, &keys, &nk) && typed(env, argv[6], napi_float32_array, &scores, &ns) &&
                       typed(env, argv[7], napi_uint8_array, &amb, &na);
  IndexerJob j{};
  j.a.H = intArg(env, argv[3]);
  j.a.d = intArg(env, argv[4]);
  j.visible = intArg(env, argv[5]);
  const size_t H = size_t(j.a.H), D = size_t(j.a.d), V = size_t(j.visible);
  if (!okTypes || j.a.H <= 0 || j.a.H > 512 || j.a.d <= 0 || j.visible < 0 || nq < H * D || nhw < H || nk < V * D || ns < V || na < V) {
    napi_throw_range_error(env, nullptr, "dsv4 native indexerScores: bad argument types or sizes");
    return nullptr;
  }
  j.a.q = static_cast<const float*>(q);
  j.a.hw = static_cast<const float*>(hw);
  j.a.keys = static_cast<const float*>(keys);
  j.a.scores = static_cast<float*>(scores);
  j.a.amb = static_cast<uint8_t*>(amb);
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.callLock());
    p.runChunks(indexerJob, &j, chunksFor(p, sharesFor(4.0 * H * D * V, j.visible)));  // a late worker leaves its part to the caller
  }
  uint32_t flagged = 0;
  for (size_t i = 0; i < V; i++) flagged += j.a.amb[i];
  napi_value r;
  napi_create_uint32(env, flagged, &r);
  return r;
}

napi_value HasNanE4m3(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* p;
  size_t n;
  if (argc < 1 || !typed(env, argv[0], napi_uint8_array, &p, &n)) {
    napi_throw_type_error(env, nullptr, "dsv4 native hasNanE4m3: Uint8Array expected");
    return nullptr;
  }
  const uint8_t* b = static_cast<const uint8_t*>(p);
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) return boolean(env, avx2::hasNanE4m3(b, n));
#endif
  for (size_t i = 0; i < n; i++)
    if ((b[i] & 0x7f) == 0x7f) return boolean(env, true);
  return boolean(env, false);
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value o, isa, th;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_string_utf8(env, hasVnni() ? "avx2-vnni" : hasAvx2() ? "avx2" : "scalar", NAPI_AUTO_LENGTH, &isa));
  CHECK(napi_create_int32(env, pool().threads(), &th));
  CHECK(napi_set_named_property(env, o, "isa", isa));
  CHECK(napi_set_named_property(env, o, "threads", th));
  return o;
}

// ---------- machine limits (bench) ----------

struct ReadJob {
  const uint8_t* p;
  size_t bytes;
  int reps;
  std::atomic<uint64_t> sink{0};
};

void readJob(void* ctx, int share, int shares) {
  ReadJob& j = *static_cast<ReadJob*>(ctx);
  const size_t per = (j.bytes / shares) & ~size_t(127);
  const uint8_t* p = j.p + per * share;
  double s = 0;
  for (int r = 0; r < j.reps; r++) {
#if defined(__x86_64__) || defined(_M_X64)
    if (hasAvx2()) {
      s += avx2::readSum(p, per);
      continue;
    }
#endif
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
    uint64_t t = 0;
    for (size_t i = 0; i < per / 8; i++) t += q[i];
    s += double(t);
  }
  j.sink.fetch_add(uint64_t(s));
}

struct FmaJob {
  long iters;
  std::atomic<uint64_t> sink{0};
};

void fmaJob(void* ctx, int, int) {
  FmaJob& j = *static_cast<FmaJob*>(ctx);
  double r = 0;
#if defined(__x86_64__) || defined(_M_X64)
  if (hasAvx2()) r = avx2::fmaLoop(j.iters);
#endif
  j.sink.fetch_add(uint64_t(r));
}

/** Runs fn on `threads` threads of a temporary pool (the shared pool may have another size). */
template <class J>
double timed(int threads, Pool::Fn fn, J& job) {
  Pool p(threads);
  p.run(fn, &job, threads);  // warm-up (page faults, clocks)
  const auto t0 = std::chrono::steady_clock::now();
  p.run(fn, &job, threads);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// readBandwidth(bytes | Uint8Array, threads, reps) -> GB/s: a buffer of `bytes` made for the probe, or the
// 64-byte-aligned part of the given one (the bench's probes between decode steps reuse one buffer)
napi_value ReadBandwidth(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const int threads = intArg(env, argv[1]) > 0 ? intArg(env, argv[1]) : 1;
  ReadJob j;
  j.reps = intArg(env, argv[2]) > 0 ? intArg(env, argv[2]) : 1;
  std::vector<uint8_t> buf;
  void* given = nullptr;
  size_t givenLen = 0;
  size_t bytes;
  uint8_t* p;
  if (typed(env, argv[0], napi_uint8_array, &given, &givenLen)) {
    const size_t lead = size_t(-reinterpret_cast<uintptr_t>(given) & 63);
    p = static_cast<uint8_t*>(given) + lead;
    bytes = givenLen > lead ? givenLen - lead : 0;
  } else {
    bytes = size_t(intArg(env, argv[0]));
    buf.resize(bytes + 128);
    p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
    for (size_t i = 0; i < bytes; i++) p[i] = uint8_t(i * 131 + 7);
  }
  j.p = p;
  j.bytes = bytes;
  const double s = timed(threads, readJob, j);
  napi_value r;
  napi_create_double(env, double((bytes / threads) & ~size_t(127)) * threads * j.reps / s / 1e9, &r);
  return r;
}

// fmaPeak(threads, iters) -> fp32 GFLOP/s of independent 8-wide FMA chains
napi_value FmaPeak(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const int threads = intArg(env, argv[0]) > 0 ? intArg(env, argv[0]) : 1;
  FmaJob j;
  j.iters = intArg(env, argv[1]);
  const double s = timed(threads, fmaJob, j);
  napi_value r;
  napi_create_double(env, hasAvx2() ? double(j.iters) * 10 * 8 * 2 * threads / s / 1e9 : 0.0, &r);
  return r;
}

// indexerScoresFp4(q, hw, codes, units, exact, H, d, visible, scores, amb) -> number of entries
// flagged in amb, or -1 when the query is not fake-FP4 (nothing computed)
napi_value IndexerScoresFp4(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!callArgs(env, info, 10, argv, "dsv4 native indexerScoresFp4: 10 arguments expected")) return nullptr;
  void *q, *hw, *codes, *units, *exact, *scores, *amb;
  size_t nq, nhw, nc, nu, ne, ns, na;
  const bool okTypes = typed(env, argv[0], napi_float32_array, &q, &nq) && typed(env, argv[1], napi_float32_array, &hw, &nhw) &&
                       typed(env, argv[2], napi_uint8_array, &codes, &nc) && typed(env, argv[3], napi_float32_array, &units, &nu) &&
                       typed(env, argv[4], napi_uint8_array, &exact, &ne) && typed(env, argv[8], napi_float32_array, &scores, &ns) &&
                       typed(env, argv[9], napi_uint8_array, &amb, &na);
  IndexerFp4Job j{};
  j.a.H = intArg(env, argv[5]);
  j.a.d = intArg(env, argv[6]);
  j.visible = intArg(env, argv[7]);
  const size_t H = size_t(j.a.H), D = size_t(j.a.d), V = size_t(j.visible);
  if (!okTypes || j.a.H <= 0 || j.a.H > 512 || j.a.d <= 0 || j.a.d % 32 != 0 || j.visible < 0 || nq < H * D || nhw < H || nc < (V + 7) / 8 * 8 * D ||
      nu < V * D / 32 || ne < V || ns < V || na < V) {
    napi_throw_range_error(env, nullptr, "dsv4 native indexerScoresFp4: bad argument types or sizes");
    return nullptr;
  }
  std::vector<int8_t> qc(H * D);
  std::vector<double> qu(H * D / 32);
  std::vector<int32_t> qcorr(H * D / 32);
  napi_value r;
  if (!indexerFp4PrepareQuery(static_cast<const float*>(q), static_cast<const float*>(hw), j.a.H, j.a.d, qc.data(), qu.data(), qcorr.data(),
                              &j.a.qRange)) {
    napi_create_int32(env, -1, &r);
    return r;
  }
  j.a.qc = qc.data();
  j.a.qu = qu.data();
  j.a.qcorr = qcorr.data();
  j.a.rangeLimit = indexerFp4RangeLimit(j.a.d);
  j.a.hw = static_cast<const float*>(hw);
  j.a.codes = static_cast<const uint8_t*>(codes);
  j.a.units = static_cast<const float*>(units);
  j.a.exact = static_cast<const uint8_t*>(exact);
  j.a.scores = static_cast<float*>(scores);
  j.a.amb = static_cast<uint8_t*>(amb);
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.callLock());
    p.runChunks(indexerFp4Job, &j, chunksFor(p, sharesFor(2.0 * H * D * V, j.visible)));  // a late worker leaves its part to the caller
  }
  int32_t flagged = 0;
  for (size_t i = 0; i < V; i++) flagged += j.a.amb[i];
  napi_create_int32(env, flagged, &r);
  return r;
}

napi_value Init(napi_env env, napi_value exports) {
  const Method methods[] = {
      {"gemm", Gemm},
      {"denseGemm", DenseGemm},
      {"denseBounds", DenseBounds},
      {"denseStats", DenseStatsFn},
      {"indexerScores", IndexerScores},
      {"indexerScoresFp4", IndexerScoresFp4},
      {"hasNanE4m3", HasNanE4m3},
      {"info", Info},
      {"readBandwidth", ReadBandwidth},
      {"fmaPeak", FmaPeak},
  };
  defineMethods(env, exports, methods);
  registerOps(env, exports);
  registerBatch(env, exports);
  registerOps2(env, exports);
  registerFast(env, exports);
  registerMem(env, exports);
  return exports;
}

}  // namespace

// for ops_addon.cc (decode-path operations)
Pool& sharedPool() { return pool(); }
bool cpuAvx2() { return hasAvx2(); }
bool cpuVnni() { return hasVnni(); }
// for batch.cc: the gemm scratch (64-byte aligned), only under the pool's call lock
uint8_t* gemmScratch(size_t bytes) { return scratch.get(bytes); }
// for batch.cc: dense products it computed, into the denseStats counters
void countDense(uint64_t elements, uint32_t tight, uint32_t flagged) {
  denseElements += elements;
  denseTight += tight;
  denseFlagged += flagged;
}
}  // namespace dsv4

NAPI_MODULE_INIT() { return dsv4::Init(env, exports); }
