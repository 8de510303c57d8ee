#include "serve/batcher.h"

#include <exception>
#include <utility>

namespace graft::serve {

Batcher::Batcher(const Session& session, std::size_t max_batch, std::chrono::milliseconds max_wait,
                 std::function<void(std::size_t)> on_batch)
    : session_(session), max_batch_(max_batch < 1 ? 1 : max_batch), max_wait_(max_wait), on_batch_(std::move(on_batch)) {
  worker_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

std::future<BatchResult> Batcher::submit(BatchKind kind, std::vector<TextInput> rows, std::vector<std::string> adapters) {
  auto job = std::make_unique<Job>();
  job->kind = kind;
  job->rows = std::move(rows);
  job->adapters = std::move(adapters);
  job->arrived = std::chrono::steady_clock::now();
  std::future<BatchResult> result = job->done.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw BatcherStopped();
    queue_.push_back(std::move(job));
  }
  wake_.notify_all();
  return result;
}

void Batcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::size_t Batcher::rows_waiting(BatchKind kind) const {
  std::size_t n = 0;
  for (const auto& j : queue_)
    if (j->kind == kind) n += j->rows.size();
  return n;
}

void Batcher::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left
    const BatchKind kind = queue_.front()->kind;
    const auto deadline = queue_.front()->arrived + max_wait_;
    wake_.wait_until(lock, deadline, [&] { return stopping_ || rows_waiting(kind) >= max_batch_; });
    // The oldest job first, then every later one of its kind that still fits.
    std::vector<std::unique_ptr<Job>> taken;
    std::size_t rows = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->kind == kind && (taken.empty() || rows + (*it)->rows.size() <= max_batch_)) {
        rows += (*it)->rows.size();
        taken.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    execute(taken);
    lock.lock();
  }
}

BatchResult Batcher::run(BatchKind kind, const std::vector<TextInput>& rows, const std::vector<std::string>& adapters) const {
  BatchResult out;
  if (on_batch_) on_batch_(rows.size());
  if (kind == BatchKind::classify) {
    out.predictions = session_.predict(rows, Selection::per_row(adapters));
  } else {
    std::vector<std::string> texts;
    texts.reserve(rows.size());
    for (const auto& r : rows) texts.push_back(r.text);
    out.embeddings = session_.embed(texts, Selection::per_row(adapters));
  }
  return out;
}

void Batcher::execute(std::vector<std::unique_ptr<Job>>& jobs) {
  std::vector<TextInput> rows;
  std::vector<std::string> adapters;
  for (const auto& j : jobs) {
    rows.insert(rows.end(), j->rows.begin(), j->rows.end());
    adapters.insert(adapters.end(), j->adapters.begin(), j->adapters.end());
  }
  BatchResult all;
  try {
    all = run(jobs.front()->kind, rows, adapters);
  } catch (...) {
    if (jobs.size() == 1) {
      jobs.front()->done.set_exception(std::current_exception());
      return;
    }
    // Alone, so that only the request that cannot run fails.
    for (auto& j : jobs) {
      try {
        j->done.set_value(run(j->kind, j->rows, j->adapters));
      } catch (...) {
        j->done.set_exception(std::current_exception());
      }
    }
    return;
  }
  std::size_t first = 0;
  for (auto& j : jobs) {
    const std::size_t n = j->rows.size();
    BatchResult mine;
    if (j->kind == BatchKind::classify)
      mine.predictions.assign(std::make_move_iterator(all.predictions.begin() + first),
                              std::make_move_iterator(all.predictions.begin() + first + n));
    else
      mine.embeddings.assign(std::make_move_iterator(all.embeddings.begin() + first),
                             std::make_move_iterator(all.embeddings.begin() + first + n));
    first += n;
    j->done.set_value(std::move(mine));
  }
}

}  // namespace graft::serve
