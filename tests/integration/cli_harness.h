// What the tests that run the `graft` command share: reading what it wrote, and running
// a command line with its output captured and its exit status (never a signal) told.
#pragma once
#include <filesystem>
#include <string>
#include <utility>

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (text)

namespace graft::testing {

// The bytes of `file` ("" when it cannot be read).
std::string read_file(const std::filesystem::path& file);
void write_file(const std::filesystem::path& file, const std::string& bytes);

// A fresh folder of its own for one test, removed afterwards (parts a test made
// read-only included).
struct TempFolder {
  std::filesystem::path path;
  explicit TempFolder(const std::string& name);
  ~TempFolder();
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
};

struct ShellRun {
  int status = -1;  // the exit status; -1 when killed by a signal or by the watchdog
  std::string output;  // stdout and stderr
};
// Runs `command` (a shell command line) with OMP_NUM_THREADS=1, stdout and stderr going
// to `log`; the command is killed after `timeout_s` seconds, so a hang fails the test.
ShellRun run_shell(const std::string& command, const std::filesystem::path& log, int timeout_s = 300);
// run_shell as (exit status, output), for std::tie.
std::pair<int, std::string> run_command(const std::string& command, const std::filesystem::path& log);
// `graft ARGS` (the build tree's command) the same way.
ShellRun run_graft(const std::string& args, const std::filesystem::path& log, int timeout_s = 300);

}  // namespace graft::testing
