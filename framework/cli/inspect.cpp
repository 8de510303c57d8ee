// graft inspect FILE.safetensors — what a weight file holds, without loading it: the
// header is validated and the data stays mapped, untouched.
#include <fmt/format.h>

#include <algorithm>

#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"
#include "graft/tensor.h"
#include "io/safetensors.h"

namespace graft::cli {

namespace {

std::string human_bytes(std::size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) value /= 1024, ++unit;
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

}  // namespace

int cmd_inspect(const std::vector<std::string>& argv) {
  const Args args("inspect", argv, {});
  if (args.positional().size() != 1)
    throw ConfigError("inspect", "expected exactly one file", "usage: graft inspect FILE.safetensors");
  const auto file = io::SafetensorsFile::open(args.positional()[0]);
  const auto& tensors = file.tensors();

  std::size_t name_w = 4, dtype_w = 5, shape_w = 5, total = 0;
  for (const auto& t : tensors) {
    name_w = std::max(name_w, t.name.size());
    dtype_w = std::max(dtype_w, t.file_dtype.size());
    shape_w = std::max(shape_w, shape_str(t.shape).size());
    total += t.nbytes;
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}\n", "name", name_w, "dtype", dtype_w, "shape", shape_w, "bytes");
  for (const auto& t : tensors)
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}\n", t.name, name_w, t.file_dtype, dtype_w, shape_str(t.shape), shape_w,
               t.nbytes);
  fmt::print("{} tensor{}, {} bytes ({})\n", tensors.size(), tensors.size() == 1 ? "" : "s", total, human_bytes(total));
  for (const auto& [key, value] : file.metadata()) fmt::print("metadata {}: {}\n", key, value);
  return 0;
}

}  // namespace graft::cli
