// A persistent thread pool: the caller's thread runs share 0 of every job and
// workers the others (run), or every thread claims chunks of it (runChunks).
// Calls are synchronous and serialized (one job at a time per process); workers
// spin briefly after a job (decode issues hundreds of back-to-back calls per
// token), then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv4 {

class Pool {
 public:
  using Fn = void (*)(void* ctx, int share, int shares);
  explicit Pool(int threads);
  ~Pool();
  int threads() const { return int(workers_.size()) + 1; }
  /** Runs fn(ctx, i, n) for i in [0, n) with n = min(shares, threads()), share 0 on this thread. */
  void run(Fn fn, void* ctx, int shares);
  /**
   * Runs fn(ctx, i, chunks) for i in [0, chunks) (at most 32767), each chunk claimed by whichever
   * thread is free: a late or descheduled worker takes fewer, and the caller waits only for the
   * chunks in progress, never for a worker to wake. fn must not assume chunks run concurrently.
   */
  void runChunks(Fn fn, void* ctx, int chunks);
  /** Serializes whole multi-phase calls. */
  std::mutex& callLock() { return call_; }

 private:
  void worker(int id);
  void publish(uint64_t claim);
  void claimLoop(unsigned gen);
  std::vector<std::thread> workers_;
  std::mutex call_, m_;
  std::condition_variable cv_;
  std::atomic<unsigned> gen_{0};
  // the current job: generation (32 bits) | chunked (1) | next chunk (15) | chunks or shares (16)
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> pending_{0};  // run(): workers yet to check in
  std::atomic<int> done_{0};     // runChunks(): chunks finished
  std::atomic<int> sleepers_{0};
  std::atomic<Fn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  bool stop_ = false;
};

/** Products with at most this many activation rows (decode) run as chunks (runChunks). */
constexpr int kChunkedRows = 3;

/**
 * Chunks for a product worth `shares` static shares: up to 8 per thread, so a worker that wakes late
 * or loses its core to another process costs little (bench-2g decode, same process: 8 per thread
 * ahead of 4 and of one share per thread).
 */
inline int chunksFor(const Pool& p, int shares) {
  const int cap = 8 * p.threads();
  return shares < cap ? shares : cap;
}

}  // namespace dsv4
