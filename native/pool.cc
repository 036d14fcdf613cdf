#include "pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define DSV4_PAUSE() _mm_pause()
#else
#define DSV4_PAUSE() std::this_thread::yield()
#endif

namespace dsv4 {

namespace {
// Workers poll this long after a job before sleeping: decode issues hundreds
// of kernel calls per token with short TypeScript work in between.
constexpr auto kSpin = std::chrono::microseconds(200);

/** Polls `done` with PAUSE, yielding the core now and then (other processes may need it). */
template <class F>
bool spinUntil(F done, std::chrono::steady_clock::time_point deadline) {
  for (unsigned i = 1;; i++) {
    if (done()) return true;
    DSV4_PAUSE();
    if ((i & 255) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if ((i & 4095) == 0) std::this_thread::yield();
    }
  }
}
}  // namespace

Pool::Pool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker(i); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
    gen_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void Pool::run(Fn fn, void* ctx, int shares) {
  const int n = shares < threads() ? shares : threads();
  if (n <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  shares_ = n;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> g(m_);
    gen_.fetch_add(1, std::memory_order_release);
  }
  if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
  fn(ctx, 0, n);
  while (!spinUntil([&] { return pending_.load(std::memory_order_acquire) == 0; },
                    std::chrono::steady_clock::now() + std::chrono::milliseconds(1)))
    std::this_thread::yield();
}

void Pool::worker(int id) {
  unsigned seen = 0;
  for (;;) {
    const bool woke = spinUntil([&] { return gen_.load(std::memory_order_acquire) != seen; },
                                std::chrono::steady_clock::now() + kSpin);
    if (!woke) {
      std::unique_lock<std::mutex> l(m_);
      sleepers_.fetch_add(1);
      cv_.wait(l, [&] { return gen_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = gen_.load(std::memory_order_acquire);
    if (stop_) return;
    if (id < shares_) fn_(ctx_, id, shares_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace dsv4
