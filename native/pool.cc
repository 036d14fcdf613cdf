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

// claim_ fields
constexpr uint64_t kChunked = uint64_t(1) << 31;
constexpr uint64_t kNextOne = uint64_t(1) << 16;
constexpr int kMaxChunks = 32767;
inline unsigned genOf(uint64_t c) { return unsigned(c >> 32); }
inline int nextOf(uint64_t c) { return int((c >> 16) & 0x7fff); }
inline int countOf(uint64_t c) { return int(c & 0xffff); }

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

/** Waits (spinning, yielding every millisecond) until done(). */
template <class F>
void join(F done) {
  while (!spinUntil(done, std::chrono::steady_clock::now() + std::chrono::milliseconds(1))) std::this_thread::yield();
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

/** Makes `job` (flags and counts of claim_) the next generation and wakes the workers. */
void Pool::publish(uint64_t job) {
  const unsigned g = gen_.load(std::memory_order_relaxed) + 1;
  claim_.store(uint64_t(g) << 32 | job, std::memory_order_release);
  {
    std::lock_guard<std::mutex> l(m_);
    gen_.store(g, std::memory_order_release);
  }
  if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
}

void Pool::run(Fn fn, void* ctx, int shares) {
  const int n = shares < threads() ? shares : threads();
  if (n <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  publish(uint64_t(n));
  fn(ctx, 0, n);
  join([&] { return pending_.load(std::memory_order_acquire) == 0; });
}

void Pool::runChunks(Fn fn, void* ctx, int chunks) {
  const int n = chunks < 1 ? 1 : chunks > kMaxChunks ? kMaxChunks : chunks;
  if (n == 1 || workers_.empty()) {
    for (int i = 0; i < n; i++) fn(ctx, i, n);
    return;
  }
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  publish(kChunked | uint64_t(n));
  claimLoop(gen_.load(std::memory_order_relaxed));
  join([&] { return done_.load(std::memory_order_acquire) == n; });
}

/** Runs chunks of generation `gen` until none is left (or a newer job replaced it). */
void Pool::claimLoop(unsigned gen) {
  uint64_t c = claim_.load(std::memory_order_acquire);
  while (genOf(c) == gen && nextOf(c) < countOf(c)) {
    // a successful claim keeps the job alive (the caller waits for it), so fn_ / ctx_ are this job's
    if (!claim_.compare_exchange_weak(c, c + kNextOne, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), nextOf(c), countOf(c));
    done_.fetch_add(1, std::memory_order_release);
    c = claim_.load(std::memory_order_acquire);
  }
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
    if (stop_) return;
    // the newest job: a run() job cannot have been replaced (its caller waits for every worker), a
    // finished runChunks() job may have been, which only means there is nothing left of it to do
    const uint64_t c = claim_.load(std::memory_order_acquire);
    seen = genOf(c);
    if (c & kChunked) {
      claimLoop(seen);
    } else {
      if (id < countOf(c)) fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), id, countOf(c));
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace dsv4
