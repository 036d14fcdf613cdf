// N-API entry points of the decode-path operations (ops.h), registered by
// addon.cc's Init. Each returns whether (or for which heads) it decided the
// result; src/tensor/native.ts recomputes the rest with the TypeScript reference.
#include <node_api.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "kernels.h"  // roundBf16
#include "ops.h"
#include "pool.h"
#include "methods.h"
#include "napi_call.h"

namespace dsv4 {

Pool& sharedPool();  // addon.cc
bool cpuAvx2();      // addon.cc

namespace {

size_t sz(int v) { return v > 0 ? size_t(v) : 0; }

/** hcCombine (ops.h) with the portable loops where AVX2 is absent or declines. */
bool hcCombine(const double* coef, int cs, const float* x, int dim, int hc, const float* addend, double pk, float* y) {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpuAvx2() && double(float(pk)) == pk && ops::avx2::hcCombine(coef, cs, x, dim, hc, addend, float(pk), y)) return true;
#endif
  if (!ops::streamSums(coef, cs, x, dim, hc, y)) return false;
  for (int d = 0; d < dim; d++) y[d] = roundBf16(addend ? float(double(float(pk * addend[d])) + double(y[d])) : y[d]);
  return true;
}

bool rmsNormRow(const float* x, int n, const float* w, float eps, float* y) {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpuAvx2()) return ops::avx2::rmsNormRow(x, n, w, eps, y);
#endif
  return ops::rmsNormRow(x, n, w, eps, y);
}

struct RowsJob {
  size_t R;
  const std::function<bool(size_t)>* row;
  std::atomic<bool> ok{true};
};

void rowsJob(void* ctx, int share, int shares) {
  RowsJob& j = *static_cast<RowsJob*>(ctx);
  const size_t r0 = j.R * share / shares, r1 = j.R * (share + 1) / shares;
  for (size_t r = r0; r < r1 && j.ok.load(std::memory_order_relaxed); r++)
    if (!(*j.row)(r)) j.ok.store(false);
}

struct RangesJob {
  size_t R;
  const std::function<bool(size_t, size_t)>* range;
  std::atomic<bool> ok{true};
};

void rangesJob(void* ctx, int share, int shares) {
  RangesJob& j = *static_cast<RangesJob*>(ctx);
  const size_t r0 = j.R * share / shares, r1 = j.R * (share + 1) / shares;
  if (r0 < r1 && !(*j.range)(r0, r1)) j.ok.store(false);
}

/** range(r0, r1) over [0, R) in one contiguous range per thread (when the call touches >= 1M elements), or
 *  in `chunks` ranges claimed by whichever thread is free (Pool::runChunks) when chunks > 0. */
bool forRanges(size_t R, double elements, const std::function<bool(size_t, size_t)>& range, int chunks = 0) {
  if (R < 2 || elements < double(1 << 20)) return range(0, R);
  RangesJob j;
  j.R = R;
  j.range = &range;
  Pool& p = sharedPool();
  std::lock_guard<std::mutex> g(p.callLock());
  if (chunks > 0) p.runChunks(rangesJob, &j, chunksFor(p, chunks < int(R) ? chunks : int(R)));
  else p.run(rangesJob, &j, p.threads());
  return j.ok.load();
}

/** row(r) for r < R; the rows are split over the pool when there are several and the call
 *  touches >= 1M elements (prefill), a handoff being cheap next to that. */
bool forRows(size_t R, double elements, const std::function<bool(size_t)>& row) {
  if (R < 2 || elements < double(1 << 20)) {
    for (size_t r = 0; r < R; r++)
      if (!row(r)) return false;
    return true;
  }
  RowsJob j;
  j.R = R;
  j.row = &row;
  Pool& p = sharedPool();
  std::lock_guard<std::mutex> g(p.callLock());
  p.run(rowsJob, &j, R > 64 ? 64 : int(R));
  return j.ok.load();
}

// actQuant(x, rows, cols, q, scale) -> false on non-finite input
napi_value ActQuant(napi_env env, napi_callback_info info) {
  Call a(env, info, "actQuant", 5);
  const int rows = a.integer(1), cols = a.integer(2);
  const size_t R = sz(rows), C = sz(cols);
  const float* x = a.array<float>(0, napi_float32_array, R * C);
  uint8_t* q = a.array<uint8_t>(3, napi_uint8_array, R * C);
  float* s = a.array<float>(4, napi_float32_array, R * (C / 128));
  if (!a.ok() || rows < 0 || cols <= 0 || cols % 128) return a.fail("dsv4 native actQuant: bad argument types or sizes");
  const bool avx = cpuAvx2();
  (void)avx;
  return a.result(forRows(R, double(R) * C, [&](size_t r) {
#if defined(__x86_64__) || defined(_M_X64)
    if (avx) return ops::avx2::actQuantRow(x + r * C, cols, q + r * C, s + r * (C / 128));
#endif
    return ops::actQuantRow(x + r * C, cols, q + r * C, s + r * (C / 128));
  }));
}

// rmsNorm(x, rows, n, weight, eps, y) -> false when a row is left to the reference
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  Call a(env, info, "rmsNorm", 6);
  const int rows = a.integer(1), n = a.integer(2);
  const float eps = float(a.number(4));
  const size_t R = sz(rows), N = sz(n);
  const float* x = a.array<float>(0, napi_float32_array, R * N);
  const float* w = a.array<float>(3, napi_float32_array, N);
  float* y = a.array<float>(5, napi_float32_array, R * N);
  if (!a.ok() || rows < 0 || n <= 0) return a.fail("dsv4 native rmsNorm: bad argument types or sizes");
  return a.result(forRows(R, double(R) * N, [&](size_t r) { return rmsNormRow(x + r * N, n, w, eps, y + r * N); }));
}

/** hc mixes of one row (decode): out[j] = fl32(RN32(x·fn_j) * rmsFactor(x)); fn (nOut x flat fp32, ~0.8 MB on
 *  bench-2g) streams from memory, so its outputs are split over the pool from 128K products. */
bool mixesOne(const float* x, int flat, const float* fn, int nOut, float eps, double* out) {
  const size_t F = sz(flat), O = sz(nOut);
  float rs;
  const bool avx = cpuAvx2();
  (void)avx;
#if defined(__x86_64__) || defined(_M_X64)
  // 4 outputs per pass over x (rmsDotsOne): chunks of 4 outputs
  if (avx && F % 8 == 0 && F <= (1 << 18)) {
    const double nx = ops::avx2::normBound(x, flat);
    return ops::avx2::rmsFactor(x, flat, eps, &rs) && forRanges(O, double(O) * F * 8, [&](size_t j0, size_t j1) {
             return ops::avx2::rmsDotsOne(x, flat, nx, fn, int(j0), int(j1), rs, out);
           }, int((O + 3) / 4));
  }
  if (avx ? !ops::avx2::rmsFactor(x, flat, eps, &rs) : !ops::rmsFactor(x, flat, eps, &rs)) return false;
#else
  if (!ops::rmsFactor(x, flat, eps, &rs)) return false;
#endif
  return forRanges(O, double(O) * F * 8, [&](size_t j0, size_t j1) {
           for (size_t j = j0; j < j1; j++) {
             double s, t;
#if defined(__x86_64__) || defined(_M_X64)
             if (avx) ops::avx2::dotF64(x, fn + j * F, flat, &s, &t);
             else
#endif
               ops::dotF64(x, fn + j * F, flat, &s, &t);
             float dot;
             if (!ops::finishDot(x, fn + j * F, flat, s, t, &dot)) return false;
             out[j] = float(double(dot) * double(rs));
           }
           return true;
         }, int(O));
}

// rmsDots(x, rows, flat, fn, nOut, eps, out) -> out[r*nOut+j] = fl32(RN32(x_r·fn_j) * rmsFactor(x_r)); false when undecided
napi_value RmsDots(napi_env env, napi_callback_info info) {
  Call a(env, info, "rmsDots", 7);
  const int rows = a.integer(1), flat = a.integer(2), nOut = a.integer(4);
  const float eps = float(a.number(5));
  const size_t R = sz(rows), F = sz(flat), O = sz(nOut);
  const float* x = a.array<float>(0, napi_float32_array, R * F);
  const float* fn = a.array<float>(3, napi_float32_array, O * F);
  double* out = a.array<double>(6, napi_float64_array, R * O);
  if (!a.ok() || rows < 0 || flat <= 0 || nOut < 0) return a.fail("dsv4 native rmsDots: bad argument types or sizes");
  const bool avx = cpuAvx2();
  (void)avx;
#if defined(__x86_64__) || defined(_M_X64)
  // several rows: the register-tiled product, one contiguous range of rows per thread
  if (avx && R >= 2 && F % 4 == 0 && O <= 64)
    return a.result(forRanges(R, double(R) * O * F, [&](size_t r0, size_t r1) {
      return ops::avx2::rmsDotsRows(x + r0 * F, int(r1 - r0), flat, fn, nOut, eps, out + r0 * O);
    }));
#endif
  auto outputs = [&](size_t r, float rs, size_t j0, size_t j1) {
    const float* xr = x + r * F;
    for (size_t j = j0; j < j1; j++) {
      double s, t;
#if defined(__x86_64__) || defined(_M_X64)
      if (avx) ops::avx2::dotF64(xr, fn + j * F, flat, &s, &t);
      else
#endif
        ops::dotF64(xr, fn + j * F, flat, &s, &t);
      float dot;
      if (!ops::finishDot(xr, fn + j * F, flat, s, t, &dot)) return false;
      out[r * O + j] = float(double(dot) * double(rs));
    }
    return true;
  };
  auto factor = [&](size_t r, float* rs) {
#if defined(__x86_64__) || defined(_M_X64)
    if (avx) return ops::avx2::rmsFactor(x + r * F, flat, eps, rs);
#endif
    return ops::rmsFactor(x + r * F, flat, eps, rs);
  };
  if (R == 1) return a.result(mixesOne(x, flat, fn, nOut, eps, out));
  return a.result(forRows(R, double(R) * O * F, [&](size_t r) {
    float rs;
    return factor(r, &rs) && outputs(r, rs, 0, O);
  }));
}

// hcSplit(m, rows, hc, base, scale, iters, eps, pre, post, comb): hc.ts splitSinkhorn per row; false when a row is undecided
napi_value HcSplit(napi_env env, napi_callback_info info) {
  Call a(env, info, "hcSplit", 10);
  const int rows = a.integer(1), hc = a.integer(2), iters = a.integer(5);
  const float eps = float(a.number(6));
  const size_t R = sz(rows), H = sz(hc), M = (2 + H) * H;
  const double* m = a.array<double>(0, napi_float64_array, R * M);
  const float* base = a.array<float>(3, napi_float32_array, M);
  const float* scale = a.array<float>(4, napi_float32_array, 3);
  double* pre = a.array<double>(7, napi_float64_array, R * H);
  double* post = a.array<double>(8, napi_float64_array, R * H);
  double* comb = a.array<double>(9, napi_float64_array, R * H * H);
  if (!a.ok() || rows < 0 || hc <= 0 || hc > 16 || iters < 0) return a.fail("dsv4 native hcSplit: bad argument types or sizes");
  // ~1 us per row: the pool only for long prefills
  return a.result(forRows(R, double(R) * 64 * H * H, [&](size_t r) {
    return ops::splitSinkhorn(m + r * M, base, scale, hc, iters, eps, pre + r * H, post + r * H, comb + r * H * H);
  }));
}

// streams(x, rows, hc, dim, coef, y): y[r, d] = bf16(Σ_j fl32(coef[r*hc+j] * x[r, j, d])); false when undecided
napi_value Streams(napi_env env, napi_callback_info info) {
  Call a(env, info, "streams", 6);
  const int rows = a.integer(1), hc = a.integer(2), dim = a.integer(3);
  const size_t R = sz(rows), H = sz(hc), D = sz(dim);
  const float* x = a.array<float>(0, napi_float32_array, R * H * D);
  const double* coef = a.array<double>(4, napi_float64_array, R * H);
  float* y = a.array<float>(5, napi_float32_array, R * D);
  if (!a.ok() || rows < 0 || hc <= 0 || hc > 16 || dim <= 0) return a.fail("dsv4 native streams: bad argument types or sizes");
  return a.result(forRows(R, double(R) * H * D, [&](size_t r) {
    return hcCombine(coef + r * H, 1, x + r * H * D, dim, hc, nullptr, 0, y + r * D);
  }));
}

// hcPost(out, residual, rows, hc, dim, post, comb, y):
// y[r,k,d] = bf16(fl32(fl32(post[r,k]*out[r,d]) + RN32(Σ_j fl32(comb[r,j,k]*residual[r,j,d])))); false when undecided
napi_value HcPost(napi_env env, napi_callback_info info) {
  Call a(env, info, "hcPost", 8);
  const int rows = a.integer(2), hc = a.integer(3), dim = a.integer(4);
  const size_t R = sz(rows), H = sz(hc), D = sz(dim);
  const float* out = a.array<float>(0, napi_float32_array, R * D);
  const float* res = a.array<float>(1, napi_float32_array, R * H * D);
  const double* post = a.array<double>(5, napi_float64_array, R * H);
  const double* comb = a.array<double>(6, napi_float64_array, R * H * H);
  float* y = a.array<float>(7, napi_float32_array, R * H * D);
  if (!a.ok() || rows < 0 || hc <= 0 || hc > 16 || dim <= 0) return a.fail("dsv4 native hcPost: bad argument types or sizes");
  return a.result(forRows(R, double(R) * H * H * D, [&](size_t r) {
    for (size_t k = 0; k < H; k++) {
      if (!hcCombine(comb + r * H * H + k, hc, res + r * H * D, dim, hc, out + r * D, post[r * H + k], y + (r * H + k) * D)) return false;
    }
    return true;
  }));
}

/**
 * hcChain: one decode row's hc_post of the sub-layer output (when `out` is given), then hc_pre of the next
 * sub-layer (mixes, split Sinkhorn, stream combine) and its RMSNorm: the steps of HcPost, RmsDots, HcSplit,
 * Streams and RmsNorm in one call. While this thread runs hc_post, a free pool thread reads the mixes'
 * fn (~0.8 MB on bench-2g, not touched since the previous token) into the caches.
 */
struct ChainPost {
  const float *out, *res, *fn;
  const double *post, *comb;
  float* y;
  int hc, dim;
  size_t fnBytes;
  std::thread::id caller;
  std::atomic<bool> postDone{false}, ok{true};
};

void chainPostJob(void* v, int chunk, int) {
  ChainPost& c = *static_cast<ChainPost*>(v);
  if (chunk == 0) {
    const size_t D = size_t(c.dim);
    for (int k = 0; k < c.hc; k++)
      if (!hcCombine(c.comb + k, c.hc, c.res, c.dim, c.hc, c.out, c.post[k], c.y + k * D)) c.ok.store(false, std::memory_order_relaxed);
    c.postDone.store(true, std::memory_order_release);
    return;
  }
  if (std::this_thread::get_id() == c.caller) return;  // hc_post is done: the mixes read fn anyway
  // one load per cache line, until hc_post is done
  const volatile char* p = reinterpret_cast<const volatile char*>(c.fn);
  char sink = 0;
  for (size_t o = 0; o < c.fnBytes && !c.postDone.load(std::memory_order_acquire); o += 64 * 32)
    for (size_t l = o; l < o + 64 * 32 && l < c.fnBytes; l += 64) sink ^= p[l];
  (void)sink;
}

// hcChain(out (empty: no hc_post), x, post, comb, xOut, fn, base, scale, normW, mix, ya, hc, dim, iters, hcEps, normEps):
// xOut = hc_post(out, x) when out is given (else xOut is unused and hc_pre reads x); mix = [mixes | pre | post | comb]
// of hc_pre, ya = [its combined row y | rmsNorm(y)]. Returns 0 when all is done, 2 when only xOut is, 1 when nothing is.
napi_value HcChain(napi_env env, napi_callback_info info) {
  Call a(env, info, "hcChain", 16);
  const int hc = a.integer(11), dim = a.integer(12), iters = a.integer(13);
  const float hcEps = float(a.number(14)), normEps = float(a.number(15));
  const size_t H = sz(hc), D = sz(dim), M = (2 + H) * H;
  size_t outLen = 0;
  const float* out = a.array<float>(0, napi_float32_array, 0, &outLen);
  const bool hasPost = outLen > 0;
  const float* x = a.array<float>(1, napi_float32_array, H * D);
  const double* post = a.array<double>(2, napi_float64_array, hasPost ? H : 0);
  const double* comb = a.array<double>(3, napi_float64_array, hasPost ? H * H : 0);
  float* xOut = a.array<float>(4, napi_float32_array, hasPost ? H * D : 0);
  const float* fn = a.array<float>(5, napi_float32_array, M * H * D);
  const float* base = a.array<float>(6, napi_float32_array, M);
  const float* scale = a.array<float>(7, napi_float32_array, 3);
  const float* normW = a.array<float>(8, napi_float32_array, D);
  double* mix = a.array<double>(9, napi_float64_array, M + 2 * H + H * H);
  float* ya = a.array<float>(10, napi_float32_array, 2 * D);
  a.check(!hasPost || outLen >= D);
  if (!a.ok() || hc <= 0 || hc > 16 || dim <= 0 || iters < 0) return a.fail("dsv4 native hcChain: bad argument types or sizes");
  const float* X = x;
  if (hasPost) {
    ChainPost c;
    c.out = out;
    c.res = x;
    c.fn = fn;
    c.post = post;
    c.comb = comb;
    c.y = xOut;
    c.hc = hc;
    c.dim = dim;
    c.fnBytes = M * H * D * sizeof(float);
    c.caller = std::this_thread::get_id();
    {
      Pool& p = sharedPool();
      std::lock_guard<std::mutex> g(p.callLock());
      p.runChunks(chainPostJob, &c, p.threads() > 1 ? 2 : 1);
    }
    if (!c.ok.load()) return a.result(1.0);
    X = xOut;
  }
  double* m = mix;
  double *pre = mix + M, *postOut = pre + H, *combOut = postOut + H;
  const bool done = mixesOne(X, int(H * D), fn, int(M), normEps, m) &&
                    ops::splitSinkhorn(m, base, scale, hc, iters, hcEps, pre, postOut, combOut) &&
                    hcCombine(pre, 1, X, dim, hc, nullptr, 0, ya) && rmsNormRow(ya, dim, normW, normEps, ya + D);
  return a.result(done ? 0.0 : hasPost ? 2.0 : 1.0);
}

// exactDotsBf16(x, rows, K, w, r0, n, amb, ambOff, y) -> entries left flagged. For every amb[ambOff + m*n + j] = 1:
// y[m*n + j] = exact.ts dotF32(x row m, BF16 weight row r0 + j) repeated step by step (two float64 lanes, its
// bound, then the TwoSum stage of sumToF32; the products are exact in float64), the flag cleared; entries the
// TwoSum stage leaves undecided (or with non-finite products) stay flagged for the TypeScript. The dense
// products' rare unsettled outputs (bench-2g: ~6 per token, mostly the head) took ~30 us each in TypeScript.
napi_value ExactDotsBf16(napi_env env, napi_callback_info info) {
  Call a(env, info, "exactDotsBf16", 9);
  const int rows = a.integer(1), K = a.integer(2), r0 = a.integer(4), n = a.integer(5), ambOff = a.integer(7);
  a.check(rows >= 0 && K > 0 && r0 >= 0 && n >= 0 && ambOff >= 0);
  const size_t R = sz(rows), Ks = sz(K), N = sz(n);
  const float* x = a.array<float>(0, napi_float32_array, R * Ks);
  const uint16_t* w = a.array<uint16_t>(3, napi_uint16_array, (sz(r0) + N) * Ks);
  uint8_t* amb = a.array<uint8_t>(6, napi_uint8_array, sz(ambOff) + R * N);
  float* y = a.array<float>(8, napi_float32_array, R * N);
  if (!a.ok()) return a.fail("dsv4 native exactDotsBf16: bad argument types or sizes");
  constexpr double U = 0x1p-53;
  thread_local std::vector<double> terms;
  terms.resize(Ks);
  int left = 0;
  for (size_t p = 0; p < R * N; p++) {
    uint8_t& f = amb[size_t(ambOff) + p];
    if (!f) continue;
    const size_t m = p / N, j = p % N;
    const float* xr = x + m * Ks;
    const uint16_t* wr = w + (size_t(r0) + j) * Ks;
    auto prod = [&](size_t k) {
      uint32_t b = uint32_t(wr[k]) << 16;
      float v;
      std::memcpy(&v, &b, 4);
      return double(xr[k]) * double(v);
    };
    double s0 = 0, s1 = 0, t0 = 0, t1 = 0;
    size_t k = 0;
    for (; k + 1 < Ks; k += 2) {
      const double p0 = prod(k), p1 = prod(k + 1);
      s0 += p0;
      s1 += p1;
      t0 += std::fabs(p0);
      t1 += std::fabs(p1);
    }
    if (k < Ks) {
      const double q = prod(k);
      s0 += q;
      t0 += std::fabs(q);
    }
    const double t = t0 + t1;
    float r;
    if (!std::isfinite(t)) {
      left++;
      continue;
    }
    if (t == 0) r = float(s0 + s1);
    else if (!ops::settle(s0 + s1, t * (K + 2) * U * 1.01, &r)) {
      for (size_t i = 0; i < Ks; i++) terms[i] = prod(i);
      if (!ops::sumToF32(terms.data(), K, 1, &r)) {
        left++;
        continue;
      }
    }
    y[p] = r;
    f = 0;
  }
  return a.result(double(left));
}

/** All heads of rows [0, R): one row of heads split over the pool (decode), or rows taken in turn by
 *  the pool's threads (prefill: rows differ in their slot counts). */
struct AttnJob {
  ops::AttnArgs a;  // row 0's arguments; row r's q, keys, n, out and flags are offset from them
  const int32_t* rowStart;
  int R;
  const ops::AttnLoops* loops;
  std::atomic<int> next{0};
  ops::AttnArgs row(int r) const {
    ops::AttnArgs x = a;
    const size_t hd = size_t(a.H) * a.d;
    x.q = a.q + r * hd;
    x.keys = a.keys + rowStart[r];
    x.n = rowStart[r + 1] - rowStart[r];
    x.out = a.out + r * hd;
    x.flag = a.flag + size_t(r) * a.H;
    return x;
  }
};

void attnJob(void* ctx, int share, int shares) {
  AttnJob& j = *static_cast<AttnJob*>(ctx);
  if (j.R == 1) {
    const int h0 = int(int64_t(j.a.H) * share / shares), h1 = int(int64_t(j.a.H) * (share + 1) / shares);
    ops::attnHeads(j.a, *j.loops, h0, h1);
    return;
  }
  for (int r; (r = j.next.fetch_add(1, std::memory_order_relaxed)) < j.R;) ops::attnHeads(j.row(r), *j.loops, 0, j.a.H);
}

// sparseAttnRows(q, R, H, d, src0, src1, src2, slotSrc, slotOff, rowStart, scale, sink, out, flags) -> heads flagged.
// Row r's slots are [rowStart[r], rowStart[r+1]); slot i's key is BF16 bits src[slotSrc[i]][slotOff[i] ..+d],
// slotSrc 255 = masked. q and out [R, H, d], flags [R, H].
napi_value SparseAttnRows(napi_env env, napi_callback_info info) {
  Call a(env, info, "sparseAttnRows", 14);
  const int R = a.integer(1), H = a.integer(2), d = a.integer(3);
  const size_t Rs = sz(R), Hs = sz(H), Ds = sz(d);
  ops::AttnArgs x{};
  x.q = a.array<float>(0, napi_float32_array, Rs * Hs * Ds);
  const uint16_t* src[3];
  size_t srcLen[3];
  for (int i = 0; i < 3; i++) {
    src[i] = a.array<uint16_t>(4 + i, napi_uint16_array, 0, &srcLen[i]);
    if (!a.ok()) srcLen[i] = 0;
  }
  const int32_t* rowStart = a.array<int32_t>(9, napi_int32_array, Rs + 1);
  const size_t N = a.ok() && R > 0 && rowStart[0] == 0 && rowStart[R] >= 0 ? size_t(rowStart[R]) : 0;
  const uint8_t* slotSrc = a.array<uint8_t>(7, napi_uint8_array, N);
  const int32_t* slotOff = a.array<int32_t>(8, napi_int32_array, N);
  x.scale = float(a.number(10));
  x.sink = a.array<float>(11, napi_float32_array, Hs);
  x.out = a.array<float>(12, napi_float32_array, Rs * Hs * Ds);
  x.flag = a.array<uint8_t>(13, napi_uint8_array, Rs * Hs);
  if (!a.ok() || R <= 0 || H <= 0 || d <= 0 || d > 1024 || rowStart[0] != 0)
    return a.fail("dsv4 native sparseAttnRows: bad argument types or sizes");
  for (int r = 0; r < R; r++)
    if (rowStart[r + 1] < rowStart[r]) return a.fail("dsv4 native sparseAttnRows: row starts must not decrease");
  thread_local std::vector<const uint16_t*> keys;
  keys.assign(N, nullptr);
  size_t active = 0;
  for (size_t i = 0; i < N; i++) {
    const uint8_t s = slotSrc[i];
    if (s == 255) continue;
    if (s > 2 || slotOff[i] < 0 || size_t(slotOff[i]) + Ds > srcLen[s]) return a.fail("dsv4 native sparseAttnRows: slot outside its source");
    keys[i] = src[s] + slotOff[i];
    active++;
  }
  x.H = H;
  x.d = d;
  x.n = rowStart[1];
  x.keys = keys.data();
  AttnJob j;
  j.a = x;
  j.rowStart = rowStart;
  j.R = R;
  j.loops = &ops::scalarAttnLoops();
#if defined(__x86_64__) || defined(_M_X64)
  if (cpuAvx2() && d % 16 == 0) j.loops = &ops::avx2::attnLoops();
#endif
  {
    Pool& p = sharedPool();
    std::lock_guard<std::mutex> g(p.callLock());
    // a handoff costs microseconds on a quiet machine and far more on a busy one: split the work
    // only when the call has ~1M multiply-adds (~0.3 ms on one core)
    const double work = 2.0 * double(active) * d * H;
    // as chunks (runChunks), one per thread: a worker that wakes late or lost its core leaves its part to
    // the caller instead of holding the call (a decode row's heads split as before, prefill rows claimed in turn)
    const int chunks = work < 1048576 ? 1 : R == 1 ? (H < p.threads() ? H : p.threads()) : p.threads();
    p.runChunks(attnJob, &j, chunks);
  }
  int flagged = 0;
  for (size_t i = 0; i < Rs * Hs; i++) flagged += x.flag[i];
  return a.result(double(flagged));
}

}  // namespace

void registerOps(napi_env env, napi_value exports) {
  const Method methods[] = {
      {"opsActQuant", ActQuant},
      {"opsRmsNorm", RmsNorm},
      {"opsRmsDots", RmsDots},
      {"opsStreams", Streams},
      {"opsHcPost", HcPost},
      {"opsHcSplit", HcSplit},
      {"opsSparseAttnRows", SparseAttnRows},
      {"opsHcChain", HcChain},
      {"opsExactDotsBf16", ExactDotsBf16},
  };
  defineMethods(env, exports, methods);
}

}  // namespace dsv4
