#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "graft/error.h"

namespace graft::io {

namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw IoError("io", fmt::format("cannot {} '{}': {}", what, path.string(), std::strerror(err)),
                "check that the folder exists, is writable and has free space");
}

std::filesystem::path folder_of(const std::filesystem::path& path) {
  auto dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path) : path_(std::move(path)) {
  temp_ = path_;
  temp_ += fmt::format(".tmp.{}", ::getpid());
  // O_TRUNC rather than O_EXCL: a stale temp file left by a crashed process that had
  // the same pid is garbage and may be overwritten.
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("create", temp_, errno);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  if (fd_ < 0) throw IoError("io", fmt::format("write to '{}' after commit", path_.string()));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", temp_, errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw IoError("io", fmt::format("'{}' committed twice", path_.string()));
  if (::fsync(fd_) != 0) fail("fsync", temp_, errno);
  int fd = fd_;
  fd_ = -1;
  // close() can report a deferred write error (NFS, quota): it must not be ignored.
  if (::close(fd) != 0) fail("close", temp_, errno);
  if (::rename(temp_.c_str(), path_.c_str()) != 0) fail("rename onto", path_, errno);
  committed_ = true;
  auto dir = folder_of(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("open folder", dir, errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) fail("fsync folder", dir, err);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  AtomicFileWriter writer(path);
  writer.write(bytes);
  writer.commit();
}

}  // namespace graft::io
