// `graft compare` end to end on a tiny backbone: every method trains in its own
// process, a method that fails becomes a "failed" row (the others still report), the
// command exits non-zero, and results.json / results.md / chart.svg are all written;
// --lr-scales and --seeds keep every run, --lr-extend grows the grid past a winning edge,
// a compare started again resumes, and --patience stops a run that no longer improves.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "integration/cli_harness.h"

namespace {

namespace fs = std::filesystem;

using graft::testing::read_file;

// `graft compare` on the tiny BERT and a few SST-2 rows, writing into `out`; returns the
// exit status (-1 when it did not exit) and what it printed.
std::pair<int, std::string> run_compare(const fs::path& out, const std::string& args, const std::string& seed = "--seed 3") {
  const std::string cmd = fmt::format(
      "OMP_NUM_THREADS=1 \"{}\" compare --backbone \"{}/tests/golden/backbones/tiny_bert\" --task sst2 --data \"{}/data/glue\" "
      "--train-rows 32 --dev-rows 16 --batch-size 8 {} --no-progress {} --output \"{}\"",
      GRAFT_CLI, GRAFT_SOURCE_DIR, GRAFT_SHARED_DIR, seed, args, out.string());
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

// --lr-extend: with two scales the best is always at an edge, so the grid grows past it,
// one step at a time (the ratio of the two), for as long as the new edge wins.
TEST(CompareCli, LrExtendStepsPastTheEdgeWhileTheEdgeWins) {
  const fs::path out = fs::temp_directory_path() / "graft_compare_extend";
  fs::remove_all(out);
  const auto [status, log] = run_compare(out, "--max-steps 4 --methods head --lr-scales 0.1,1 --lr-extend 2");
  ASSERT_EQ(status, 0) << log;
  const auto runs = nlohmann::json::parse(read_file(out / "results.json"));
  ASSERT_EQ(runs.size(), 1u);
  const auto& sweep = runs[0].at("lr_sweep");
  ASSERT_GE(sweep.size(), 3u) << sweep;
  ASSERT_LE(sweep.size(), 4u) << sweep;
  auto scale = [&](std::size_t i) { return sweep[i].at("lr_scale").get<double>(); };
  auto score = [&](std::size_t i) { return sweep[i].at("score").get<double>(); };
  // The first step goes past whichever of 0.1 and 1 won (ties keep the first tried, 0.1).
  const bool up = score(1) > score(0);
  EXPECT_NEAR(scale(2), up ? 10.0 : 0.01, 1e-12) << sweep;
  // A second step exactly when the first one won, in the same direction.
  EXPECT_EQ(sweep.size() == 4, score(2) > std::max(score(0), score(1))) << sweep;
  if (sweep.size() == 4) EXPECT_NEAR(scale(3), up ? 100.0 : 0.001, 1e-12) << sweep;
  double best = -1;
  for (const auto& tried : sweep) {
    EXPECT_TRUE(fs::exists(fs::path(tried.at("output").get<std::string>()) / "results.json")) << tried;
    best = std::max(best, tried.at("score").get<double>());
  }
  EXPECT_DOUBLE_EQ(runs[0].at("best").at("accuracy").get<double>(), best);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");

  const auto refused = graft::testing::run_graft("compare --backbone x --task sst2 --lr-scales 1 --lr-extend 1", out.string() + ".log");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("--lr-extend needs at least two"), std::string::npos) << refused.output;
  const auto too_far = graft::testing::run_graft("compare --backbone x --task sst2 --lr-scales 1,3 --lr-extend 11", out.string() + ".log");
  EXPECT_NE(too_far.status, 0);
  EXPECT_NE(too_far.output.find("--lr-extend"), std::string::npos) << too_far.output;
  fs::remove(out.string() + ".log");
}

// The mean and standard deviation of a row, computed here from each seed's own run.
std::pair<double, double> mean_std(const std::vector<double>& v) {
  double m = 0, ss = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) ss += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

// --seeds: every run is kept in its own folder, the row reports mean ± std over them, and
// the same compare started again reads the finished runs instead of training them again.
TEST(CompareCli, SeedsReportMeanAndStdAndKeepEveryRun) {
  const fs::path out = fs::temp_directory_path() / "graft_compare_seeds";
  fs::remove_all(out);
  const std::string args = "--max-steps 6 --methods head,lora --seeds 11,12,13 --seeds-for lora --lr-scales 0.3,1";
  const auto [status, log] = run_compare(out, args, "");
  ASSERT_EQ(status, 0) << log;
  const auto runs = nlohmann::json::parse(read_file(out / "results.json"));
  ASSERT_EQ(runs.size(), 2u);

  // lora: the rate searched at seed 11, then that rate at 12 and 13.
  const auto& lora = runs[1];
  ASSERT_TRUE(lora.contains("seeds")) << lora;
  ASSERT_EQ(lora["seeds"].size(), 3u);
  const std::string chosen = fs::path(lora["seeds"][0]["output"].get<std::string>()).parent_path().filename().string();
  std::vector<double> scores;
  std::vector<std::string> adapters;
  for (int i = 0; i < 3; ++i) {
    const fs::path dir = out / "lora" / chosen / fmt::format("seed-{}", 11 + i);
    EXPECT_EQ(lora["seeds"][i]["output"].get<std::string>(), dir.string());
    const auto run = nlohmann::json::parse(read_file(dir / "results.json"));
    EXPECT_EQ(run.at("seed").get<int>(), 11 + i);
    scores.push_back(run.at("best").at(run.at("headline").get<std::string>()).get<double>());
    adapters.push_back(read_file(dir / "best" / "adapter_model.safetensors"));
  }
  // Different seeds are different runs: their initialisations differ, so their weights do.
  EXPECT_NE(adapters[0], adapters[1]);
  EXPECT_NE(adapters[1], adapters[2]);
  const auto [mean, std] = mean_std(scores);
  const std::string headline = lora.at("headline");
  EXPECT_EQ(lora.at("seed_summary").at("n").get<int>(), 3);
  EXPECT_NEAR(lora["seed_summary"]["mean"][headline].get<double>(), mean, 1e-12);
  EXPECT_NEAR(lora["seed_summary"]["std"][headline].get<double>(), std, 1e-12);
  // The other lr was tried at the first seed only.
  ASSERT_EQ(lora.at("lr_sweep").size(), 2u);
  for (const auto& tried : lora["lr_sweep"])
    EXPECT_EQ(fs::path(tried.at("output").get<std::string>()).filename(), "seed-11") << tried;

  // head: not in --seeds-for, so one seed, marked so.
  EXPECT_EQ(runs[0].at("seed_summary").at("n").get<int>(), 1);
  EXPECT_EQ(runs[0].at("seeds").size(), 1u);
  const std::string table = read_file(out / "results.md");
  EXPECT_NE(table.find(fmt::format("{:.4f} ± {:.4f} (3 seeds)", mean, std)), std::string::npos) << table;
  EXPECT_NE(table.find("(1 seed)"), std::string::npos) << table;

  // Started again: every run is read back, none trains again, the report is the same.
  const std::string lines_before = read_file(out / "lora" / chosen / "seed-12" / "log.jsonl");
  const auto [again, again_log] = run_compare(out, args, "");
  ASSERT_EQ(again, 0) << again_log;
  std::size_t finished = 0;
  for (std::size_t at = 0; (at = again_log.find("already finished", at)) != std::string::npos; ++at) ++finished;
  EXPECT_EQ(finished, 6u) << again_log;  // head: 2 rates; lora: 2 rates + 2 more seeds
  EXPECT_EQ(read_file(out / "lora" / chosen / "seed-12" / "log.jsonl"), lines_before);
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "results.json")), runs);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");

  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"--seeds 1,x", "--seeds: 'x' is not a whole number"},
           {"--seeds 1,2,1", "--seeds: 1 appears twice"},
           {"--seeds 1,2 --seed 4", "--seed and --seeds both given"},
           {"--seeds 1,2 --methods head --seeds-for lora", "--seeds-for: 'lora' is not one of --methods"},
           {"--seeds-for head --methods head", "--seeds-for without --seeds"}}) {
    const std::string cmd = fmt::format("\"{}\" compare --backbone x --task sst2 {} > \"{}.log\" 2>&1", GRAFT_CLI, bad, out.string());
    EXPECT_NE(WEXITSTATUS(std::system(cmd.c_str())), 0) << bad;
    EXPECT_NE(read_file(out.string() + ".log").find(says), std::string::npos) << bad << "\n" << read_file(out.string() + ".log");
  }
  fs::remove(out.string() + ".log");
}

// results/ in git keeps each run's results.json and graft's folder markers, not its
// checkpoint: in a fresh checkout a compare started again reads those runs back instead
// of training them again, but only when they are the runs asked for.
TEST(CompareCli, RunsWhoseCheckpointStayedBehindAreReadBackWhenTheyAreTheRunsAskedFor) {
  const fs::path out = fs::temp_directory_path() / "graft_compare_sittings";
  fs::remove_all(out);
  const std::string args = "--max-steps 4 --methods head,lora --seeds 11,12 --seeds-for lora";
  const auto [status, log] = run_compare(out, args, "");
  ASSERT_EQ(status, 0) << log;
  const auto runs = nlohmann::json::parse(read_file(out / "results.json"));
  // What a clone holds: every results.json and .graft, nothing else (git keeps no
  // folder without a file).
  std::vector<fs::path> stale;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() ? name == "checkpoint" || name == "best" : name != "results.json" && name != ".graft") stale.push_back(e.path());
  }
  for (const auto& f : stale) fs::remove_all(f);
  ASSERT_FALSE(fs::exists(out / "lora" / "seed-12" / "checkpoint"));
  ASSERT_FALSE(fs::exists(out / "lora" / "seed-12" / "log.jsonl"));

  const auto [again, again_log] = run_compare(out, args, "");
  ASSERT_EQ(again, 0) << again_log;
  std::size_t read_back = 0;
  for (std::size_t at = 0; (at = again_log.find("finished in an earlier sitting", at)) != std::string::npos; ++at) ++read_back;
  EXPECT_EQ(read_back, 3u) << again_log;  // head at seed 11, lora at 11 and 12
  EXPECT_FALSE(fs::exists(out / "lora" / "seed-12" / "log.jsonl")) << "a run read back was trained again";
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "results.json")), runs);

  // Another budget is another run: trained, not read back.
  const auto [longer, longer_log] = run_compare(out, "--max-steps 5 --methods head --seeds 11", "");
  ASSERT_EQ(longer, 0) << longer_log;
  EXPECT_EQ(longer_log.find("finished in an earlier sitting"), std::string::npos) << longer_log;
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "head" / "seed-11" / "results.json")).at("steps").get<int>(), 5);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}


// keeps its best, and is finished when asked again; a larger patience resumes it.
TEST(CompareCli, PatienceStopsARunThatNoLongerImproves) {
  const fs::path out = fs::temp_directory_path() / "graft_train_patience";
  fs::remove_all(out);
  // A rate of 1e-12 leaves the weights as they start: every evaluation after the first
  // ties it, and a tie is no improvement.
  auto train = [&](int patience) {
    return graft::testing::run_command(
        fmt::format("OMP_NUM_THREADS=1 \"{}\" train --backbone \"{}/tests/golden/backbones/tiny_bert\" --task sst2 --data "
                    "\"{}/data/glue\" --train-rows 32 --dev-rows 16 --batch-size 8 --method lora --lr 1e-12 --max-steps 40 "
                    "--eval-every 2 --patience {} --no-progress --output \"{}\"",
                    GRAFT_CLI, GRAFT_SOURCE_DIR, GRAFT_SHARED_DIR, patience, out.string()),
        out.string() + ".log");
  };
  auto steps_logged = [&] {
    std::istringstream in(read_file(out / "log.jsonl"));
    int steps = 0;
    for (std::string line; std::getline(in, line);) steps += nlohmann::json::parse(line).value("event", "") == "" ? 1 : 0;
    return steps;
  };
  const auto [status, log] = train(3);
  ASSERT_EQ(status, 0) << log;
  auto results = nlohmann::json::parse(read_file(out / "results.json"));
  EXPECT_EQ(results.at("steps").get<int>(), 8) << "best at step 2, then 3 evaluations (4, 6, 8) without better";
  EXPECT_EQ(results.at("best_step").get<int>(), 2);
  EXPECT_TRUE(results.at("early_stopped").get<bool>());
  EXPECT_EQ(results.at("budget").at("patience").get<int>(), 3);
  EXPECT_EQ(steps_logged(), 8);
  EXPECT_NE(read_file(out / "log.jsonl").find("\"early_stop\""), std::string::npos);

  const auto [same, same_log] = train(3);
  ASSERT_EQ(same, 0) << same_log;
  EXPECT_NE(same_log.find("already finished"), std::string::npos) << same_log;
  EXPECT_EQ(steps_logged(), 8);

  const auto [more, more_log] = train(5);
  ASSERT_EQ(more, 0) << more_log;
  results = nlohmann::json::parse(read_file(out / "results.json"));
  EXPECT_EQ(results.at("steps").get<int>(), 12) << more_log;
  EXPECT_EQ(results.at("best_step").get<int>(), 2);
  EXPECT_EQ(steps_logged(), 12);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");

  const std::string bad = fmt::format(
      "\"{}\" train --backbone \"{}/tests/golden/backbones/tiny_bert\" --task sst2 --data \"{}/data/glue\" --train-rows 8 "
      "--dev-rows 8 --method lora --output \"{}\" --patience -1 > \"{}.log\" 2>&1",
      GRAFT_CLI, GRAFT_SOURCE_DIR, GRAFT_SHARED_DIR, out.string(), out.string());
  EXPECT_NE(WEXITSTATUS(std::system(bad.c_str())), 0);
  EXPECT_NE(read_file(out.string() + ".log").find("--patience"), std::string::npos) << read_file(out.string() + ".log");
  fs::remove(out.string() + ".log");
}

}  // namespace
