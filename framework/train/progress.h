// A live progress line for long runs: step, loss, learning rate, tokens/s and ETA,
// redrawn in place on a terminal; on a pipe or log file, a plain line every ~5%.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace graft::train {

class Progress {
 public:
  Progress(std::string label, std::int64_t first_step, std::int64_t total_steps, bool enabled, std::FILE* out = stderr);
  void update(std::int64_t step, double loss, double lr, double tokens_per_second);
  // Prints a line (an evaluation, a checkpoint) without breaking the bar.
  void note(const std::string& line);
  void finish();

 private:
  std::string label_;
  std::int64_t first_, total_, last_printed_ = -1;
  bool enabled_, tty_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  std::string last_line_;
};

std::string format_duration(double seconds);

}  // namespace graft::train
