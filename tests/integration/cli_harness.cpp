#include "integration/cli_harness.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace graft::testing {

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary) << bytes;
}

TempFolder::TempFolder(const std::string& name)
    : path(std::filesystem::temp_directory_path() / fmt::format("graft_{}_{}", name, ::getpid())) {
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempFolder::~TempFolder() {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec); !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_directory(ec)) std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path, ec);
}

ShellRun run_shell(const std::string& command, const std::filesystem::path& log, int timeout_s) {
  // The watchdog kills the whole command line (a shell, so that prefixes and
  // redirections inside `command` work) with SIGKILL: exit status 137.
  const std::string line = fmt::format("OMP_NUM_THREADS=1 timeout -s KILL {} sh -c '{}' > \"{}\" 2>&1", timeout_s,
                                       [&] {
                                         std::string quoted;
                                         for (char c : command) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
                                         return quoted;
                                       }(),
                                       log.string());
  const int raw = std::system(line.c_str());
  ShellRun r;
  r.output = read_file(log);
  if (WIFEXITED(raw) && WEXITSTATUS(raw) != 137) r.status = WEXITSTATUS(raw);
  return r;
}

std::pair<int, std::string> run_command(const std::string& command, const std::filesystem::path& log) {
  ShellRun r = run_shell(command, log);
  return {r.status, std::move(r.output)};
}

ShellRun run_graft(const std::string& args, const std::filesystem::path& log, int timeout_s) {
  return run_shell(fmt::format("\"{}\" {}", GRAFT_CLI, args), log, timeout_s);
}

}  // namespace graft::testing
