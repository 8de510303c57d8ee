// The `graft` command: dispatch to one function per subcommand (see commands.h) and
// turn every failure into one line on stderr and an exit code, never a crash.
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "graft/error.h"

#ifndef GRAFT_VERSION
#define GRAFT_VERSION "0.1.0"
#endif

namespace {

struct Command {
  std::function<int(const std::vector<std::string>&)> run;
  const char* usage;
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"inspect", {graft::cli::cmd_inspect, "inspect FILE.safetensors", "list the tensors of a safetensors file"}},
      {"info", {graft::cli::cmd_info, "info --backbone PATH", "describe a backbone and its sites"}},
      {"embed", {graft::cli::cmd_embed, "embed --backbone DIR TEXT...", "sentence embeddings from an encoder"}},
      {"generate", {graft::cli::cmd_generate, "generate --backbone PATH --prompt TEXT", "continue a text with a decoder"}},
      {"train", {graft::cli::cmd_train, "train --backbone B --task T --method M --output DIR", "train one PEFT method on a task"}},
      {"compare", {graft::cli::cmd_compare, "compare --backbone B --task T --methods A,B,...", "train several methods alike and tabulate"}},
      {"eval", {graft::cli::cmd_eval, "eval --backbone B --adapter DIR --task T", "dev-set metrics of a saved adapter"}},
      {"predict", {graft::cli::cmd_predict, "predict --backbone B --adapter DIR TEXT...", "predictions of a saved adapter"}},
      {"plugins", {graft::cli::cmd_plugins, "plugins [--plugin-dir DIR]... [--json]", "list the plugins found and why others failed"}},
  };
  return table;
}

void print_usage(std::FILE* out) {
  fmt::print(out, "usage: graft <command> [args]\n\ncommands:\n");
  for (const auto& [name, command] : commands()) fmt::print(out, "  {:<32} {}\n", command.usage, command.summary);
  fmt::print(out, "  {:<32} {}\n  {:<32} {}\n", "help", "show this message", "--version", "print the version");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    print_usage(stdout);
    return 0;
  }
  if (args[0] == "--version") {
    fmt::print("graft {}\n", GRAFT_VERSION);
    return 0;
  }
  auto it = commands().find(args[0]);
  if (it == commands().end()) {
    fmt::print(stderr, "graft: unknown command '{}'\n\n", args[0]);
    print_usage(stderr);
    return 2;
  }
  try {
    return it->second.run({args.begin() + 1, args.end()});
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
