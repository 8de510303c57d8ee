#include "io/output_folder.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <vector>

#include "graft/error.h"

namespace graft::io {
namespace fs = std::filesystem;

namespace {

// A few of the entries of `dir`, for a message: "notes.txt, data/, …".
std::string some_entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end && names.size() < 10000; it.increment(ec)) {
    std::error_code type_ec;
    names.push_back(it->path().filename().string() + (it->is_directory(type_ec) ? "/" : ""));
  }
  std::sort(names.begin(), names.end());
  const std::size_t shown = std::min<std::size_t>(names.size(), 3);
  std::string out = fmt::format("{}", fmt::join(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(shown), ", "));
  if (names.size() > shown) out += fmt::format(" and {} more", names.size() - shown);
  return out;
}

bool is_empty_folder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_empty(dir, ec) && !ec;
}

}  // namespace

bool process_alive(long pid) {
  if (pid <= 0) return false;
  if (pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

void require_graft_folder(const fs::path& folder, const std::string& marker, const std::string& what,
                          const std::string& component) {
  std::error_code ec;
  const auto status = fs::symlink_status(folder, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(fs::status(folder, ec)))
    throw IoError(component, fmt::format("'{}' is in the way: it is not a folder graft wrote, so graft will not replace it",
                                         folder.string()),
                  "move it elsewhere, or choose another output folder");
  if (is_empty_folder(folder) || fs::exists(folder / marker, ec)) return;
  throw IoError(component,
                fmt::format("'{}' holds files graft did not write ({}; no {}): refusing to replace this {}", folder.string(),
                            some_entries(folder), marker, what),
                "graft replaces only folders it wrote itself; move those files elsewhere, or choose another output folder");
}

void prepare_run_folder(const fs::path& folder, const std::string& component,
                        const std::function<bool(const fs::path&)>& legacy) {
  std::error_code ec;
  if (fs::exists(folder, ec) && !fs::is_directory(folder, ec))
    throw IoError(component, fmt::format("'{}' is a file, not a folder", folder.string()),
                  "the output is a folder graft writes the run into (created when missing); choose another path");
  const bool existed = fs::exists(folder, ec);
  if (!existed) {
    fs::create_directories(folder, ec);
    if (ec)
      throw IoError(component, fmt::format("cannot create the folder '{}': {}", folder.string(), ec.message()),
                    "check that the path is right and that its parent folder is writable");
  } else if (!is_empty_folder(folder) && !fs::exists(folder / kRunFolderMarker, ec) && !(legacy && legacy(folder))) {
    throw IoError(component,
                  fmt::format("'{}' already holds files graft did not write ({}): refusing to write a run into it",
                              folder.string(), some_entries(folder)),
                  fmt::format("give a new folder (graft creates it) or an empty one; graft writes only into folders it "
                              "created, which hold a '{}' file",
                              kRunFolderMarker));
  }
  // The marker, written every time: also the proof that the folder is writable.
  const fs::path marker = folder / kRunFolderMarker;
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    throw IoError(component, fmt::format("cannot write into the folder '{}': {}", folder.string(), std::strerror(errno)),
                  "check that the folder is writable and its disk has space, or choose another output folder");
  const std::string text = fmt::format(
      "{{\"written_by\": \"graft\", \"note\": \"graft writes into and replaces files in this folder only while this file "
      "is here\", \"command\": \"{}\"}}\n",
      component);
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int err = errno;
  ::close(fd);
  if (!ok)
    throw IoError(component, fmt::format("cannot write into the folder '{}': {}", folder.string(), std::strerror(err)),
                  "check that the folder is writable and its disk has space, or choose another output folder");
}

void publish_folder(const fs::path& staged, const fs::path& folder) {
  const fs::path old = folder.string() + fmt::format(".old.{}", ::getpid());
  try {
    const bool existed = fs::exists(fs::symlink_status(folder));
    if (existed) fs::rename(folder, old);
    // A kill here leaves `old` and no `folder`: clean_stale_staging() puts `old` back.
    fs::rename(staged, folder);
    if (existed) fs::remove_all(old);
  } catch (const fs::filesystem_error& e) {
    throw IoError("io", fmt::format("cannot put '{}' in place of '{}': {}", staged.string(), folder.string(), e.code().message()),
                  "check that the folder is writable and its disk has space");
  }
}

void clean_stale_staging(const fs::path& dir, const std::string& component, const std::vector<std::string>& names) {
  static const std::regex pattern(R"((.+)\.(tmp|old)\.([0-9]{1,9}))");
  struct Stale {
    fs::path path;
    std::string base;
    bool old;
    long pid;
  };
  std::vector<Stale> stale;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, pattern)) continue;
    if (std::find(names.begin(), names.end(), m[1].str()) == names.end()) continue;
    const long pid = std::stol(m[3].str());
    if (process_alive(pid)) continue;
    stale.push_back({it->path(), m[1].str(), m[2].str() == "old", pid});
  }
  // Newest first: when several `.old` copies of one missing folder remain, the newest
  // is the one put back.
  auto mtime = [](const fs::path& p) {
    std::error_code e;
    return fs::last_write_time(p, e);
  };
  std::sort(stale.begin(), stale.end(), [&](const Stale& a, const Stale& b) { return mtime(a.path) > mtime(b.path); });
  for (const Stale& s : stale) {
    const fs::path base = dir / s.base;
    if (s.old && !fs::exists(fs::symlink_status(base, ec))) {
      fs::rename(s.path, base, ec);
      if (!ec) {
        fmt::print(stderr, "graft: {}: recovered '{}' from '{}' (process {} was stopped while replacing it)\n", component,
                   base.string(), s.path.filename().string(), s.pid);
        continue;
      }
    }
    fs::remove_all(s.path, ec);
    if (ec)
      fmt::print(stderr, "graft: {}: cannot remove the stale '{}': {}\n", component, s.path.string(), ec.message());
    else
      fmt::print(stderr, "graft: {}: removed the stale '{}' (left by process {}, which is no longer running)\n", component,
                 s.path.string(), s.pid);
  }
}

}  // namespace graft::io
