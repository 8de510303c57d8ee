#include "serve/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>

namespace graft::serve {

namespace {
const std::vector<double> kDurationBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

std::string number(double v) { return fmt::format("{}", v); }

// `labels` already formatted (`endpoint="/v1/classify"`), possibly empty.
void write_histogram(std::string& out, const std::string& name, const std::string& labels, const Histogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, number(h.bounds[i]), cumulative);
  }
  cumulative += h.counts.back();
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, cumulative);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, number(h.sum), name, braces, h.count);
}
}  // namespace

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

void Metrics::request(const std::string& endpoint, int code, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, code}];
  if (code >= 400) ++errors_;
  auto it = durations_.find(endpoint);
  if (it == durations_.end()) it = durations_.emplace(endpoint, Histogram(kDurationBounds)).first;
  it->second.observe(seconds);
}

void Metrics::batch(std::size_t rows) {
  std::lock_guard lock(mutex_);
  batch_rows_.observe(static_cast<double>(rows));
}

std::string Metrics::render(std::size_t adapters) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out += "# HELP graft_requests_total HTTP requests answered, by endpoint and status code.\n"
         "# TYPE graft_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("graft_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
  out += fmt::format("# HELP graft_request_errors_total HTTP requests answered with a 4xx or 5xx status.\n"
                     "# TYPE graft_request_errors_total counter\ngraft_request_errors_total {}\n", errors_);
  out += "# HELP graft_request_duration_seconds Time from routing a request to its last byte, by endpoint.\n"
         "# TYPE graft_request_duration_seconds histogram\n";
  for (const auto& [endpoint, h] : durations_)
    write_histogram(out, "graft_request_duration_seconds", fmt::format("endpoint=\"{}\"", endpoint), h);
  out += "# HELP graft_batch_rows Rows in each batched Session call (classify, embeddings).\n"
         "# TYPE graft_batch_rows histogram\n";
  write_histogram(out, "graft_batch_rows", "", batch_rows_);
  out += fmt::format("# HELP graft_inflight_requests Requests being served now.\n"
                     "# TYPE graft_inflight_requests gauge\ngraft_inflight_requests {}\n", inflight.load());
  out += fmt::format("# HELP graft_adapters_loaded Adapters the session holds.\n"
                     "# TYPE graft_adapters_loaded gauge\ngraft_adapters_loaded {}\n", adapters);
  out += fmt::format("# HELP graft_resident_memory_bytes Resident set size of the server process.\n"
                     "# TYPE graft_resident_memory_bytes gauge\ngraft_resident_memory_bytes {}\n", resident_memory_bytes());
  return out;
}

std::uint64_t resident_memory_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace graft::serve
