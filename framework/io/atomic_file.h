// Atomic file writes: a reader (or a crash) sees either the old file or the whole new
// one, never a half-written file. The bytes go to `path.tmp.<pid>` in the target's own
// folder (rename is only atomic within one file system), are fsync'd, renamed over the
// target, and the folder is fsync'd so that the rename itself survives a power cut.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string_view>

namespace graft::io {

class AtomicFileWriter {
 public:
  // Opens the temporary file; throws graft::IoError (path + strerror) on failure.
  explicit AtomicFileWriter(std::filesystem::path path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Streams bytes out, so large tensors are never copied into one big buffer.
  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync, close, rename over the target, fsync the folder.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace graft::io
