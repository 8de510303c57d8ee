// What the libFuzzer targets share: a per-process scratch folder for the inputs (every
// reader here takes a path), the committed fixtures, and the rule that a graft::Error is
// the expected outcome for bad input while anything else is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "graft/error.h"

namespace graft::fuzz {

inline const std::filesystem::path& source_dir() {
  static const std::filesystem::path dir = GRAFT_SOURCE_DIR;
  return dir;
}

// /dev/shm/graft-fuzz-PID (or $TMPDIR, /tmp), removed when the process exits normally.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = "/dev/shm";
    if (!std::filesystem::is_directory(base)) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    auto d = base / ("graft-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d;
  }();
  return dir;
}

// A folder under scratch() (created once).
inline std::filesystem::path folder(const std::string& name) {
  auto d = scratch() / name;
  std::filesystem::create_directories(d);
  return d;
}

inline std::filesystem::path write_file(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();  // the harness itself failed: not a finding in graft
  return path;
}

inline std::filesystem::path write_file(const std::filesystem::path& path, std::string_view text) {
  return write_file(path, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

// Runs `f`; a graft::Error is the documented answer to bad input (GRAFT_FUZZ_VERBOSE=1
// prints it). Any other exception
// escapes to libFuzzer, which reports it (uncaught exception -> abort) as a finding.
template <class F>
bool expect_errors(F&& f) {
  try {
    f();
    return true;
  } catch (const graft::Error& e) {
    static const bool verbose = std::getenv("GRAFT_FUZZ_VERBOSE") != nullptr;  // to check a harness by hand
    if (verbose) std::fprintf(stderr, "graft::Error: %s\n", e.what());
    return false;
  }
}

// Keeps the optimiser from dropping reads done only to let ASan check them.
inline void consume(const void* p, std::size_t n) {
  static volatile unsigned char sink;
  const auto* b = static_cast<const unsigned char*>(p);
  unsigned char x = 0;
  for (std::size_t i = 0; i < n; ++i) x ^= b[i];
  sink = x;
}

}  // namespace graft::fuzz
