// A persistent thread pool: the caller's thread runs share 0 of every job,
// workers run the others. Calls are synchronous and serialized (one job at a
// time per process); workers spin briefly after a job (decode issues hundreds
// of back-to-back calls per token), then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
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
  /** Serializes whole multi-phase calls. */
  std::mutex& callLock() { return call_; }

 private:
  void worker(int id);
  std::vector<std::thread> workers_;
  std::mutex call_, m_;
  std::condition_variable cv_;
  std::atomic<unsigned> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;
  int shares_ = 0;
  bool stop_ = false;
};

}  // namespace dsv4
