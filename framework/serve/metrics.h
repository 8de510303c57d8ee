// The server's Prometheus metrics: counters, gauges and histograms kept under one mutex
// and written in the text exposition format (version 0.0.4) by GET /metrics.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace graft::serve {

// Cumulative buckets (Prometheus `le`), their sum and count.
struct Histogram {
  std::vector<double> bounds;          // upper bounds, ascending; +Inf is implicit
  std::vector<std::uint64_t> counts;   // per bound, not cumulative (+Inf last)
  double sum = 0;
  std::uint64_t count = 0;
  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v);
};

class Metrics {
 public:
  // One finished request: its endpoint label ("/v1/classify", "other"), status and seconds.
  void request(const std::string& endpoint, int code, double seconds);
  // One Session call of the batcher over `rows` rows.
  void batch(std::size_t rows);
  std::atomic<std::int64_t> inflight{0};
  // The whole exposition; `adapters` is the gauge graft_adapters_loaded.
  std::string render(std::size_t adapters) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::uint64_t errors_ = 0;
  std::map<std::string, Histogram> durations_;
  Histogram batch_rows_{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
};

// This process's resident set in bytes (/proc/self/statm), 0 where it cannot be read.
std::uint64_t resident_memory_bytes();

}  // namespace graft::serve
