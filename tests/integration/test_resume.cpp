// A training run killed with SIGKILL and started again resumes from its last checkpoint
// and ends exactly where the uninterrupted run ends: same steps, same dev scores.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

namespace {

namespace fs = std::filesystem;

struct TrainRun {
  fs::path output;
  std::vector<std::string> args() const {
    return {GRAFT_CLI, "train", "--backbone", std::string(GRAFT_SOURCE_DIR) + "/tests/golden/backbones/tiny_bert",
            "--task", "sst2", "--data", std::string(GRAFT_SHARED_DIR) + "/data/glue", "--train-rows", "160", "--dev-rows", "48",
            "--method", "full", "--max-steps", "240", "--batch-size", "8", "--eval-every", "60", "--save-every", "20",
            "--seed", "5", "--no-progress", "--output", output.string()};
  }
  pid_t start() const {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setenv("OMP_NUM_THREADS", "1", 1);
      auto a = args();
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      const int devnull = ::open("/dev/null", 1);
      ::dup2(devnull, 1), ::dup2(devnull, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }
  int wait(pid_t pid) const {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  nlohmann::json results() const { return nlohmann::json::parse(std::ifstream(output / "results.json")); }
};

// Runs args (stdout and stderr into log), expects a failure, and returns what it printed.
std::string expect_refused(const std::vector<std::string>& args, const fs::path& log) {
  const std::string command = fmt::format("OMP_NUM_THREADS=1 {} > {} 2>&1", fmt::join(args, " "), log.string());
  EXPECT_NE(std::system(command.c_str()), 0);
  std::ifstream out(log);
  return std::string((std::istreambuf_iterator<char>(out)), {});
}

TEST(Resume, KilledRunResumesToTheSameResult) {
  const fs::path root = fs::temp_directory_path() / fmt::format("graft_resume_{}", ::getpid());
  fs::remove_all(root);
  const TrainRun straight{root / "straight"}, killed{root / "killed"};

  ASSERT_EQ(straight.wait(straight.start()), 0);

  // Kill the second run as soon as it has written a checkpoint, well before its end.
  const pid_t pid = killed.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(killed.output / "checkpoint" / "trainer_state.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  ASSERT_EQ(killed.wait(pid), -SIGKILL);
  ASSERT_FALSE(fs::exists(killed.output / "results.json")) << "the run finished before it could be killed";
  const auto state = nlohmann::json::parse(std::ifstream(killed.output / "checkpoint" / "trainer_state.json"));
  EXPECT_LT(state.at("step").get<int>(), 240);

  ASSERT_EQ(killed.wait(killed.start()), 0);  // the same command again resumes
  const auto a = straight.results(), b = killed.results();
  EXPECT_TRUE(b.at("resumed").get<bool>());
  EXPECT_EQ(a.at("steps"), b.at("steps"));
  EXPECT_EQ(a.at("best_step"), b.at("best_step"));
  EXPECT_EQ(a.at("best"), b.at("best")) << a.at("best").dump() << " vs " << b.at("best").dump();
  EXPECT_EQ(a.at("last"), b.at("last"));
  // The learning curve survives the kill: every evaluation, the mean training loss since
  // the one before included (its window spans the checkpoint).
  ASSERT_EQ(a.at("evals").size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a.at("evals")[i].at("step"), 60 * (i + 1));
  EXPECT_EQ(a.at("evals").back().at("dev"), a.at("last"));
  EXPECT_GT(a.at("evals")[0].at("train_loss").get<double>(), 0);
  EXPECT_EQ(a.at("evals"), b.at("evals"));
  fs::remove_all(root);
}

TEST(Resume, CheckpointOfAnotherRunIsRefused) {
  const fs::path root = fs::temp_directory_path() / fmt::format("graft_resume_other_{}", ::getpid());
  fs::remove_all(root);
  TrainRun first{root};
  ASSERT_EQ(first.wait(first.start()), 0);
  // Same folder, another seed: the checkpoint there is not this run's.
  auto args = first.args();
  std::find(args.begin(), args.end(), "5")[0] = "6";
  const std::string text = expect_refused(args, root / "out.txt");
  EXPECT_NE(text.find("checkpoint of a different run"), std::string::npos) << text;
  fs::remove_all(root);
}

TEST(Resume, AMalformedCheckpointStateNamesTheFile) {
  const fs::path root = fs::temp_directory_path() / fmt::format("graft_resume_bad_{}", ::getpid());
  fs::remove_all(root);
  TrainRun run{root};
  ASSERT_EQ(run.wait(run.start()), 0);
  const fs::path state_file = root / "checkpoint" / "trainer_state.json";
  auto state = nlohmann::json::parse(std::ifstream(state_file));
  state["evals"][0].erase("train_loss");
  std::ofstream(state_file) << state.dump();
  const std::string text = expect_refused(run.args(), root / "out.txt");
  EXPECT_NE(text.find(state_file.string()), std::string::npos) << text;
  EXPECT_NE(text.find("train_loss"), std::string::npos) << text;
  EXPECT_NE(text.find("delete the checkpoint folder"), std::string::npos) << text;
  fs::remove_all(root);
}

}  // namespace
