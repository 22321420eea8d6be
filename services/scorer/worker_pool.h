#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nearnd {

// WorkerPool runs tasks on a fixed set of threads in submission order. The scorer uses it to keep
// image decoding and inference off gRPC's callback threads, which should not block.
// Thread-safety: Schedule may be called from any thread.
class WorkerPool {
 public:
  // Starts `threads` worker threads. REQUIRES: threads >= 1.
  explicit WorkerPool(int threads);

  // Runs every task already scheduled, then joins the threads.
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. A task must not throw. REQUIRES: the destructor has not started.
  void Schedule(std::function<void()> task);

 private:
  void RunWorker();

  std::mutex mutex_;
  std::condition_variable task_ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace nearnd
