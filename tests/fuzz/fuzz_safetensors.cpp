// The safetensors reader (framework/io/safetensors.h) on arbitrary files: open, read
// every tensor (ASan checks each byte read lies in the mapping), look up a missing name,
// and write what was read back out: a file the reader accepts must round-trip.
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"

using namespace graft;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto dir = fuzz::folder("safetensors");
  const auto path = fuzz::write_file(dir / "input.safetensors", data, size);
  fuzz::expect_errors([&] {
    const auto file = io::SafetensorsFile::open(path);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& info : file.tensors()) {
      if (!file.contains(info.name) || &file.info(info.name) == nullptr) __builtin_trap();
      Tensor t = file.get(info.name);
      if (t.shape() != info.shape || t.dtype() != info.dtype) __builtin_trap();
      fuzz::consume(t.raw(), t.nbytes());
      tensors.emplace_back(info.name, t);
    }
    fuzz::expect_errors([&] { (void)file.info("no such tensor.weight"); });

    // Round trip: the writer takes what the reader gave, or refuses it with an Error.
    const auto copy = dir / "copy.safetensors";
    if (!fuzz::expect_errors([&] { io::save_safetensors(copy, tensors, file.metadata()); })) return;
    // What graft wrote, graft must read: an Error here is a finding too.
    if (!fuzz::expect_errors([&] { (void)io::SafetensorsFile::open(copy); })) __builtin_trap();
    const auto again = io::SafetensorsFile::open(copy);
    if (again.tensors().size() != tensors.size() || again.metadata() != file.metadata()) __builtin_trap();
    for (const auto& [name, t] : tensors) {
      const Tensor u = again.get(name);
      if (u.shape() != t.shape() || u.dtype() != t.dtype() || std::memcmp(u.raw(), t.raw(), t.nbytes()) != 0)
        __builtin_trap();
    }
  });
  return 0;
}
