#include "train/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace graft::train {

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string label, std::int64_t first_step, std::int64_t total_steps, bool enabled, std::FILE* out)
    : label_(std::move(label)), first_(first_step), total_(std::max<std::int64_t>(total_steps, 1)), enabled_(enabled),
      tty_(::isatty(::fileno(out)) != 0), out_(out), start_(std::chrono::steady_clock::now()) {}

void Progress::update(std::int64_t step, double loss, double lr, double tokens_per_second) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(step - first_);
  const double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - step) : 0;
  const int width = 24, filled = static_cast<int>(width * step / total_);
  last_line_ = fmt::format("{} {:>6}/{} [{}{}] loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {}", label_, step, total_,
                           std::string(filled, '='), std::string(width - filled, ' '), loss, lr, tokens_per_second,
                           format_duration(eta));
  if (tty_) {
    fmt::print(out_, "\r{}\x1b[K", last_line_);
    std::fflush(out_);
  } else if (step == total_ || (step * 20 / total_) != (last_printed_ * 20 / total_)) {
    fmt::print(out_, "{}\n", last_line_);
    last_printed_ = step;
  }
}

void Progress::note(const std::string& line) {
  if (!enabled_) return;
  if (tty_) fmt::print(out_, "\r\x1b[K{}\n{}", line, last_line_);
  else fmt::print(out_, "{}\n", line);
  std::fflush(out_);
}

void Progress::finish() {
  if (enabled_ && tty_) fmt::print(out_, "\n");
}

}  // namespace graft::train
