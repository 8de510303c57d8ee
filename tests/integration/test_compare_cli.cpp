// `graft compare` end to end on a tiny backbone: every method trains in its own
// process, a method that fails becomes a "failed" row (the others still report), the
// command exits non-zero, and results.json / results.md / chart.svg are all written.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "integration/cli_harness.h"

namespace {

namespace fs = std::filesystem;

using graft::testing::read_file;

// `graft compare` on the tiny BERT and a few SST-2 rows, writing into `out`; returns the
// exit status (-1 when it did not exit) and what it printed.
std::pair<int, std::string> run_compare(const fs::path& out, const std::string& args) {
  const std::string cmd = fmt::format(
      "OMP_NUM_THREADS=1 \"{}\" compare --backbone \"{}/tests/golden/backbones/tiny_bert\" --task sst2 --data \"{}/data/glue\" "
      "--train-rows 32 --dev-rows 16 --batch-size 8 --seed 3 --no-progress {} --output \"{}\"",
      GRAFT_CLI, GRAFT_SOURCE_DIR, GRAFT_SHARED_DIR, args, out.string());
  return graft::testing::run_command(cmd, out.string() + ".log");
}

TEST(CompareCli, AFailingMethodIsReportedBesideTheOthers) {
  const fs::path out = fs::temp_directory_path() / "graft_compare_cli";
  fs::remove_all(out);
  const auto [status, log] = run_compare(out, "--max-steps 4 --methods head,lora,no_such_method");
  ASSERT_NE(status, -1) << log;
  EXPECT_EQ(status, 1) << "a failed method must fail the command\n" << log;
  EXPECT_NE(log.find("no_such_method"), std::string::npos) << "the failing run's own error is shown\n" << log;

  const auto runs = nlohmann::json::parse(read_file(out / "results.json"));
  ASSERT_EQ(runs.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(runs[i].contains("error")) << runs[i];
    EXPECT_TRUE(runs[i].contains("best")) << runs[i];
  }
  EXPECT_EQ(runs[2].value("method", ""), "no_such_method");
  EXPECT_TRUE(runs[2].contains("error"));

  const std::string table = read_file(out / "results.md");
  EXPECT_NE(table.find("| no_such_method"), std::string::npos) << table;
  EXPECT_NE(table.find("failed: exit status"), std::string::npos) << table;
  EXPECT_NE(table.find("| lora"), std::string::npos) << table;
  const std::string svg = read_file(out / "chart.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("lora"), std::string::npos);
  EXPECT_EQ(svg.find("no_such_method"), std::string::npos) << "failed runs have no point on the chart";
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

// --lr-scales: each method at several learning rates, reported at its best on dev.
TEST(CompareCli, LrSweepReportsEachMethodAtItsBestRate) {
  const fs::path out = fs::temp_directory_path() / "graft_compare_sweep";
  fs::remove_all(out);
  std::ofstream(out.string() + ".configs.json") << R"({"lora4": {"r": 4}})";
  const auto [status, log] = run_compare(
      out, fmt::format("--max-steps 6 --methods head,lora4=lora --configs \"{}.configs.json\" --lr-scales 0.01,3", out.string()));
  ASSERT_EQ(status, 0) << log;
  const auto runs = nlohmann::json::parse(read_file(out / "results.json"));
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& run : runs) {
    SCOPED_TRACE(run.value("method", ""));
    ASSERT_TRUE(run.contains("lr_sweep")) << run;
    ASSERT_EQ(run["lr_sweep"].size(), 2u);
    double best = -1, chosen_lr = 0;
    for (const auto& tried : run["lr_sweep"]) {
      EXPECT_TRUE(fs::exists(fs::path(tried.at("output").get<std::string>()) / "results.json"));
      if (tried.at("score").get<double>() > best) best = tried["score"], chosen_lr = tried["lr"];
    }
    const std::string headline = run.at("headline");
    EXPECT_DOUBLE_EQ(run.at("best").at(headline).get<double>(), best);
    EXPECT_NEAR(run.at("lr").get<double>(), chosen_lr, 1e-6 * chosen_lr);
    // The two rates are 300x apart: their runs must differ.
    EXPECT_NE(run["lr_sweep"][0]["lr"], run["lr_sweep"][1]["lr"]);
  }
  EXPECT_NE(read_file(out / "results.md").find("(best of 2)"), std::string::npos);
  // The labelled run: its own row and folder, the config given under its label.
  EXPECT_EQ(runs[1].value("method", ""), "lora4");
  EXPECT_EQ(runs[1].value("plugin", ""), "lora");
  EXPECT_EQ(runs[1].at("config").value("r", 0), 4) << runs[1];
  EXPECT_TRUE(fs::is_directory(out / "lora4"));
  fs::remove_all(out);
  fs::remove(out.string() + ".configs.json");
  fs::remove(out.string() + ".log");

  const std::string bad = fmt::format("\"{}\" compare --backbone x --task sst2 --lr-scales 1,abc > \"{}.log\" 2>&1", GRAFT_CLI,
                                      out.string());
  const int bad_status = std::system(bad.c_str());
  EXPECT_NE(WEXITSTATUS(bad_status), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("--lr-scales: 'abc'"), std::string::npos) << read_file(out.string() + ".log");
  const std::string twice = fmt::format("\"{}\" compare --backbone x --task sst2 --methods lora,head,lora > \"{}.log\" 2>&1",
                                        GRAFT_CLI, out.string());
  EXPECT_NE(WEXITSTATUS(std::system(twice.c_str())), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("'lora' appears twice"), std::string::npos) << read_file(out.string() + ".log");
  fs::remove(out.string() + ".log");
}

}  // namespace
