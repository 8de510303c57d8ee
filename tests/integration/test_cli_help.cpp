// `graft COMMAND --help` for every command: exit 0, usage, and every option with its
// default (or "required" / "flag"); unknown options name the closest known one (exit 2,
// one line on stderr); a missing required option is named (exit 1).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "integration/cli_harness.h"
#include "ops/op_util.h"

namespace {

namespace fs = std::filesystem;
using graft::testing::run_graft;
using Root = graft::testing::TempFolder;

const std::string kTinyBert = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/backbones/tiny_bert";

const std::vector<std::string> kTaskOptions = {"task", "data", "train-file", "dev-file", "regression", "train-rows", "dev-rows", "pooling"};
const std::vector<std::string> kBudget = {"backbone", "dtype", "plugin-dir", "epochs", "max-steps", "batch-size", "grad-accum",
                                          "max-length", "lr", "weight-decay", "warmup", "schedule", "max-grad-norm", "seed",
                                          "eval-every", "save-every", "no-progress"};

std::vector<std::string> join(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Every option each command accepts (today's options, written out here rather than read
// from the binary).
const std::map<std::string, std::vector<std::string>>& known_options() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"inspect", {}},
      {"info", {"backbone", "dtype", "method", "config", "plugin-dir"}},
      {"embed", {"backbone", "adapter", "pooling", "no-normalize", "dtype", "plugin-dir"}},
      {"export", {"backbone", "adapter", "output", "merged", "plugin-dir"}},
      {"generate", {"backbone", "adapter", "prompt", "temperature", "top-p", "max-tokens", "seed", "dtype", "plugin-dir"}},
      {"train", join(join(kTaskOptions, kBudget), {"method", "config", "output", "lr-scale"})},
      {"compare", join(join(kTaskOptions, kBudget), {"methods", "configs", "output", "lr-scales"})},
      {"eval", join(kTaskOptions, {"backbone", "adapter", "dtype", "plugin-dir", "batch-size", "max-length", "json"})},
      {"predict", {"backbone", "adapter", "dtype", "plugin-dir", "batch-size", "max-length", "pair", "input"}},
      {"plugins", {"plugin-dir", "json"}},
      {"serve", {"backbone", "adapter", "host", "port", "max-batch", "max-wait-ms", "max-body-bytes", "max-input-tokens",
                 "max-concurrent", "max-adapters", "dtype", "plugin-dir"}},
  };
  return table;
}

// The help line of `--name` ("" when there is none).
std::string option_line(const std::string& help, const std::string& name) {
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find_first_not_of(' ');
    if (start != std::string::npos && line.compare(start, name.size() + 3, "--" + name + " ") == 0) return line;
  }
  return "";
}

class CliHelp : public ::testing::Test {
 protected:
  Root root{"cli_help"};
  graft::testing::ShellRun graft(const std::string& args) const { return run_graft(args, root.path / "cli.log", 60); }
  // Only what the command writes on stderr.
  graft::testing::ShellRun graft_stderr(const std::string& args) const { return graft(args + " 2>&1 >/dev/null"); }
};

TEST_F(CliHelp, EveryCommandListsEveryOptionWithItsDefault) {
  for (const auto& [command, options] : known_options()) {
    SCOPED_TRACE(command);
    const auto help = graft(command + " --help");
    ASSERT_EQ(help.status, 0) << help.output;
    EXPECT_HAS(help.output, "usage: graft " + command);
    EXPECT_HAS(help.output, "-h, --help");
    for (const auto& name : options) {
      const std::string line = option_line(help.output, name);
      ASSERT_FALSE(line.empty()) << "--" << name << " missing from:\n" << help.output;
      const bool told = line.find("default") != std::string::npos || line.find("required") != std::string::npos ||
                        line.find("(flag)") != std::string::npos;
      EXPECT_TRUE(told) << "no default, 'required' or 'flag' on: " << line;
      if (line.find("(flag)") == std::string::npos) EXPECT_HAS(line, "e.g. --" + name + " ");
    }
    EXPECT_EQ(graft(command + " -h").output, help.output);
    EXPECT_EQ(graft("help " + command).output, help.output);
  }
}

TEST_F(CliHelp, DefaultsShownAreTheOnesUsed) {
  const std::string help = graft("train --help").output;
  EXPECT_HAS(option_line(help, "epochs"), "default: 3;");
  EXPECT_HAS(option_line(help, "batch-size"), "default: 32;");
  EXPECT_HAS(option_line(help, "max-length"), "default: 128;");
  EXPECT_HAS(option_line(help, "seed"), "default: 42;");
  EXPECT_HAS(option_line(help, "lr"), "default: the method's default_lr (its plugin's metadata, listed by graft plugins");
  EXPECT_HAS(option_line(help, "backbone"), "(required;");
  EXPECT_HAS(option_line(help, "no-progress"), "(flag)");
  EXPECT_HAS(option_line(graft("generate --help").output, "max-tokens"), "default: 128;");
  const std::string serve = graft("serve --help").output;
  EXPECT_HAS(option_line(serve, "port"), "default: 8080;");
  EXPECT_HAS(option_line(serve, "max-batch"), "default: 32;");
  EXPECT_HAS(option_line(serve, "max-input-tokens"), "default: the backbone's positions");
  // The spec's default is what runs: --max-length's default (128) is within tiny_bert's positions.
  const auto r = graft(fmt::format("info --backbone={} --dtype=bf16", kTinyBert));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_HAS(r.output, "frozen weights in bf16");
  EXPECT_HAS(r.output, graft::ops::bf16_matmul_native() ? "products in bf16" : "widened to f32 for each product");
  EXPECT_EQ(graft(fmt::format("info --backbone={}", kTinyBert)).output.find("products in"), std::string::npos);
}

TEST_F(CliHelp, TopLevelHelpListsEveryCommand) {
  for (const std::string args : {"--help", "help", "-h", ""}) {
    const auto r = graft(args);
    EXPECT_EQ(r.status, 0) << r.output;
    for (const auto& [command, options] : known_options()) EXPECT_HAS(r.output, "graft " + command);
    EXPECT_HAS(r.output, "graft COMMAND --help");
  }
}

TEST_F(CliHelp, UnknownOptionNamesTheClosestOne) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --epoch 3", "unknown option '--epoch'; did you mean --epochs?"},
      {"train --epoch=3", "unknown option '--epoch'; did you mean --epochs?"},
      {"train --batchsize 8", "did you mean --batch-size?"},
      {"compare --lr-scale 1,3", "did you mean --lr-scales?"},
      {"eval --adaptor x", "did you mean --adapter?"},
      {"generate --temprature 1", "did you mean --temperature?"},
      {"plugins --jsn", "did you mean --json?"},
      {"embed --zzzzzzzz", "unknown option '--zzzzzzzz'; graft embed --help lists the options"},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(args);
    const auto r = graft_stderr(args);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_HAS(r.output, message);
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "not one line:\n" << r.output;
  }
  const auto r = graft_stderr("trian --help");
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "unknown command 'trian'; did you mean train?");
}

TEST_F(CliHelp, MissingRequiredOptionOrValueIsNamed) {
  const fs::path out = root.path / "run";
  auto r = graft(fmt::format("train --task sst2 --method lora --output \"{}\"", out.string()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_HAS(r.output, "graft: train: option '--backbone' is required");
  EXPECT_FALSE(fs::exists(out));
  r = graft(fmt::format("eval --backbone \"{}\" --task sst2", kTinyBert));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_HAS(r.output, "option '--adapter' is required");
  r = graft(fmt::format("train --backbone \"{}\" --task sst2 --method lora --output \"{}\" --epochs", kTinyBert, out.string()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_HAS(r.output, "option '--epochs' needs a value");
  EXPECT_HAS(r.output, "e.g. --epochs 10");
}

}  // namespace
