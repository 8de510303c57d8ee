// The batch worker of `graft serve`: classify and embeddings requests from many clients
// wait in one queue; the worker takes everything of one kind that is waiting, up to
// max_batch rows, waiting at most max_wait after the first arrived, and runs it as ONE
// Session call with Selection::per_row (one adapter name per row; "" = bare backbone),
// then hands each request its own rows. When a batch call throws (an adapter unloaded
// meanwhile, a row the model refuses), each request of it is run again alone, so only
// the bad request fails.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "graft/session.h"

namespace graft::serve {

// What one Session call can do for a batch; jobs of different kinds never share a call.
enum class BatchKind { classify, embed };

struct BatchResult {
  std::vector<Prediction> predictions;           // classify
  std::vector<std::vector<float>> embeddings;    // embed
};

// Submitted after stop(): the server is shutting down.
struct BatcherStopped : std::runtime_error {
  BatcherStopped() : std::runtime_error("the server is shutting down") {}
};

class Batcher {
 public:
  // `on_batch` is told the rows of every Session call (the graft_batch_rows metric).
  Batcher(const Session& session, std::size_t max_batch, std::chrono::milliseconds max_wait,
          std::function<void(std::size_t)> on_batch = {});
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `rows` (one adapter name per row); the future holds this request's rows, or
  // the exception its call threw. At most max_batch rows.
  std::future<BatchResult> submit(BatchKind kind, std::vector<TextInput> rows, std::vector<std::string> adapters);
  // Runs everything still queued, then joins the worker; submit() throws BatcherStopped after.
  void stop();

 private:
  struct Job {
    BatchKind kind;
    std::vector<TextInput> rows;
    std::vector<std::string> adapters;
    std::promise<BatchResult> done;
    std::chrono::steady_clock::time_point arrived;
  };
  void loop();
  void execute(std::vector<std::unique_ptr<Job>>& jobs);
  BatchResult run(BatchKind kind, const std::vector<TextInput>& rows, const std::vector<std::string>& adapters) const;
  std::size_t rows_waiting(BatchKind kind) const;  // under mutex_

  const Session& session_;
  const std::size_t max_batch_;
  const std::chrono::milliseconds max_wait_;
  std::function<void(std::size_t)> on_batch_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace graft::serve
