// The `graft` command: dispatch to one function per subcommand (see commands.h) and
// turn every failure into one line on stderr and an exit code, never a crash.
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"

#ifndef GRAFT_VERSION
#define GRAFT_VERSION "0.1.0"
#endif

namespace {

void print_usage(std::FILE* out) {
  fmt::print(out, "usage: graft <command> [options]\n\ncommands:\n");
  for (const auto& c : graft::cli::command_table()) fmt::print(out, "  {:<10} {}\n  {:<10} graft {}\n", c.name, c.summary, "", c.usage);
  fmt::print(out, "  {:<10} {}\n  {:<10} {}\n", "help", "this message; `graft help COMMAND`: the command's options", "--version",
             "print the version");
  fmt::print(out, "\n`graft COMMAND --help` lists a command's options with their defaults.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "help" && graft::cli::find_command(args[1])) args = {args[1], "--help"};
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    print_usage(stdout);
    return 0;
  }
  if (args[0] == "--version") {
    fmt::print("graft {}\n", GRAFT_VERSION);
    return 0;
  }
  const graft::cli::CommandInfo* command = graft::cli::find_command(args[0]);
  if (!command) {
    std::vector<std::string> names;
    for (const auto& c : graft::cli::command_table()) names.push_back(c.name);
    const std::string near = graft::cli::closest(args[0], names);
    fmt::print(stderr, "graft: unknown command '{}'{}\n\n", args[0], near.empty() ? "" : fmt::format("; did you mean {}?", near));
    print_usage(stderr);
    return 2;
  }
  try {
    return command->run({args.begin() + 1, args.end()});
  } catch (const graft::cli::HelpShown&) {
    return 0;
  } catch (const graft::cli::UsageError& e) {
    fmt::print(stderr, "graft: {}\n", e.what());
    return 2;
  } catch (const graft::Error& e) {
    fmt::print(stderr, "graft: {}\n", e.what());
  } catch (const std::filesystem::filesystem_error& e) {  // one graft did not wrap: still name the path
    fmt::print(stderr, "graft: file system: {}\n  hint: check that the path exists, is of the right kind and is writable\n",
               e.what());
  } catch (const std::exception& e) {
    fmt::print(stderr, "graft: internal error: {}\n", e.what());
  } catch (...) {
    fmt::print(stderr, "graft: internal error: unknown exception\n");
  }
  return 1;
}
