// safetensors: the weight format of Hugging Face checkpoints and adapters.
//
//   [u64 little-endian N][N bytes of JSON header][data buffer]
//   header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"key": "value"}}     (offsets relative to the data buffer)
//
// Reading maps the file and validates the whole header against the file before any
// tensor is handed out: every file read is untrusted. Tensors are zero-copy views of
// the mapping wherever the dtype allows it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graft/tensor.h"

namespace graft::io {

struct TensorInfo {
  std::string name;
  DType dtype;            // the dtype get() returns (F16 is widened to f32)
  Shape shape;
  std::size_t offset = 0; // bytes into the data buffer
  std::size_t nbytes = 0; // bytes in the file
  std::string file_dtype; // as written in the header: F32, F16, BF16, I32, I64
};

class SafetensorsFile {
 public:
  // Maps and validates; throws graft::IoError (cannot read) or graft::FormatError.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // by data offset
  bool contains(std::string_view name) const;
  // FormatError naming the file and the tensor, with a hint listing a few names.
  const TensorInfo& info(std::string_view name) const;
  // F32/BF16/I32/I64: a view of the mapping, which the tensor keeps alive (it may
  // outlive this object). F16: a fresh f32 tensor. The mapping is private
  // copy-on-write: writing into a view changes this process's copy, never the file.
  Tensor get(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor's bytes exactly as stored (info(name).nbytes of them, in its file dtype),
  // for copying a tensor into another file unchanged. Valid while this object lives.
  const std::byte* bytes(std::string_view name) const { return data_ + info(name).offset; }

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<void> mapping_;      // munmap when the last holder goes
  const std::byte* data_ = nullptr;    // start of the data buffer inside the mapping
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;  // name -> tensors_ index
  std::map<std::string, std::string> metadata_;
};

// Writes atomically (temporary file, fsync, rename). Tensors go in the given order;
// the header is padded with spaces so that the data buffer starts 8-byte aligned, as
// the reference implementation does.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// One tensor given as stored bytes: what save_safetensors writes for a Tensor, and what
// writing a dtype graft does not compute in (F16) or a tensor copied unchanged from
// another file needs. `data` holds `nbytes` bytes, which must be shape's element count
// times the size of `dtype` (F32, F16, BF16, I32, I64).
struct StoredTensor {
  std::string name;
  std::string dtype;  // as in the header: "F32", "F16", ...
  Shape shape;
  const void* data = nullptr;
  std::size_t nbytes = 0;
};
void save_safetensors_bytes(const std::filesystem::path& path, const std::vector<StoredTensor>& tensors,
                            const std::map<std::string, std::string>& metadata = {});

// f32 -> IEEE half, round to nearest even (as PyTorch's .half()); beyond ±65504 it
// gives ±inf, which a caller that must not write one checks for.
std::uint16_t f32_to_f16(float value);

}  // namespace graft::io
