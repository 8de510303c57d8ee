// What graft writes, and what it must never destroy (issue 10): `graft train` and
// `graft compare` write only into folders they created (a `.graft` marker) and replace
// only checkpoint/ and best/ folders they wrote (trainer_state.json, graft_adapter.json);
// saving an adapter refuses a folder of someone else's files; staging folders left by a
// killed run are cleaned up at the next start, and a save interrupted between its two
// renames is recovered from the `.old` copy; compare labels cannot leave --output;
// an output path that is a file, or a folder that cannot be written, is a clear error.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "graft/error.h"
#include "integration/cli_harness.h"
#include "integration/peft_harness.h"
#include "train/adapter_io.h"

namespace {

namespace fs = std::filesystem;

using graft::testing::read_file;
using graft::testing::run_command;
using Root = graft::testing::TempFolder;

const std::string kTinyBert = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/backbones/tiny_bert";

// `graft train` of LoRA on a few SST-2 rows of the tiny BERT: under a second.
std::string train_command(const fs::path& output, const std::string& prefix = "") {
  return fmt::format(
      "OMP_NUM_THREADS=1 {}\"{}\" train --backbone \"{}\" --task sst2 --data \"{}/data/glue\" --train-rows 32 --dev-rows 16 "
      "--batch-size 8 --max-steps 4 --save-every 2 --seed 3 --no-progress --method lora --output \"{}\"",
      prefix, GRAFT_CLI, kTinyBert, GRAFT_SHARED_DIR, output.string());
}

// A process id no process has now, starting from `from`.
long dead_pid(long from) {
  for (long pid = from;; ++pid)
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return pid;
}

TEST(OutputFolders, UserFilesInTheRunFolderAreNeverReplaced) {
  const Root root("user_files");
  const fs::path log = root.path / "out.txt";

  // A folder of the user's, with a best/ of theirs: refused before anything is written.
  const fs::path mine = root.path / "mine";
  fs::create_directories(mine / "best");
  std::ofstream(mine / "best" / "notes.txt") << "my notes";
  auto [status, out] = run_command(train_command(mine), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("'{}' already holds files graft did not write (best/): refusing to write a run into it", mine.string()));
  EXPECT_HAS(out, "hint: give a new folder (graft creates it) or an empty one");
  EXPECT_EQ(read_file(mine / "best" / "notes.txt"), "my notes");
  EXPECT_FALSE(fs::exists(mine / "log.jsonl"));

  // A run folder of graft's whose best/ now holds someone else's files.
  const fs::path run_dir = root.path / "run";
  std::tie(status, out) = run_command(train_command(run_dir), log);
  ASSERT_EQ(status, 0) << out;
  EXPECT_TRUE(fs::exists(run_dir / ".graft"));
  fs::remove(run_dir / "best" / "graft_adapter.json");
  std::ofstream(run_dir / "best" / "notes.txt") << "my notes";
  std::tie(status, out) = run_command(train_command(run_dir), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("'{}' holds files graft did not write", (run_dir / "best").string()));
  EXPECT_HAS(out, "no graft_adapter.json): refusing to replace this adapter folder");
  EXPECT_EQ(read_file(run_dir / "best" / "notes.txt"), "my notes");

  // ...or whose checkpoint/ does.
  fs::remove_all(run_dir / "best");
  fs::remove_all(run_dir / "checkpoint");
  fs::create_directories(run_dir / "checkpoint");
  std::ofstream(run_dir / "checkpoint" / "weights.bin") << "mine";
  std::tie(status, out) = run_command(train_command(run_dir), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("'{}' holds files graft did not write (weights.bin; no trainer_state.json): refusing to replace "
                              "this checkpoint",
                              (run_dir / "checkpoint").string()));
  EXPECT_EQ(read_file(run_dir / "checkpoint" / "weights.bin"), "mine");

  // A file where best/ goes.
  fs::remove_all(run_dir / "checkpoint");
  std::ofstream(run_dir / "best") << "a file";
  std::tie(status, out) = run_command(train_command(run_dir), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("'{}' is in the way", (run_dir / "best").string()));
  EXPECT_EQ(read_file(run_dir / "best"), "a file");

  // An empty folder is the user's way of saying "here": accepted, then marked.
  const fs::path empty = root.path / "empty";
  fs::create_directories(empty);
  std::tie(status, out) = run_command(train_command(empty), log);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(fs::exists(empty / ".graft"));
  EXPECT_TRUE(fs::exists(empty / "best" / "graft_adapter.json"));
}

TEST(OutputFolders, SavingAnAdapterRefusesAFolderGraftDidNotWrite) {
  const Root root("save_refuses");
  const graft::Backbone& backbone = *graft::testing::tiny_bert().model;
  const graft::TaskHead head(graft::HeadConfig{}, backbone, 1);
  const fs::path folder = root.path / "adapter";
  fs::create_directories(folder);
  std::ofstream(folder / "adapter_config.json") << "{\"peft_type\": \"LORA\"}";  // say, a PEFT folder
  try {
    graft::save_baseline(folder, graft::kHeadOnly, backbone, head);
    ADD_FAILURE() << "save_baseline replaced a folder graft did not write";
  } catch (const graft::IoError& e) {
    EXPECT_HAS(std::string(e.what()), fmt::format("'{}' holds files graft did not write (adapter_config.json; no "
                                                  "graft_adapter.json): refusing to replace this adapter folder",
                                                  folder.string()));
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_EQ(read_file(folder / "adapter_config.json"), "{\"peft_type\": \"LORA\"}");
  for (const auto& e : fs::directory_iterator(root.path)) EXPECT_EQ(e.path(), folder) << "a staging folder was left behind";

  // Its own folder is replaced, and a stale staging folder of a dead process goes.
  const fs::path own = root.path / "own";
  graft::save_baseline(own, graft::kHeadOnly, backbone, head);
  const fs::path stale = root.path / fmt::format("own.tmp.{}", dead_pid(23456));
  fs::create_directories(stale);
  graft::save_baseline(own, graft::kHeadOnly, backbone, head);
  EXPECT_TRUE(fs::exists(own / "graft_adapter.json"));
  EXPECT_FALSE(fs::exists(stale));
}

TEST(OutputFolders, OutputThatIsAFileOrCannotBeWritten) {
  const Root root("not_writable");
  const fs::path log = root.path / "out.txt";
  const fs::path file = root.path / "a_file";
  std::ofstream(file) << "x";
  auto [status, out] = run_command(train_command(file), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: train: '{}' is a file, not a folder", file.string()));
  EXPECT_HAS(out, "hint: the output is a folder");
  std::tie(status, out) = run_command(train_command(file / "run"), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("cannot create the folder '{}': Not a directory", (file / "run").string()));
  std::tie(status, out) = run_command(fmt::format("\"{}\" compare --backbone \"{}\" --task sst2 --methods head --output \"{}\"", GRAFT_CLI,
                                          kTinyBert, file.string()),
                              log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: compare: '{}' is a file, not a folder", file.string()));
  EXPECT_EQ(read_file(file), "x");

  // A read-only folder. Root may write anywhere: run graft as nobody then.
  const fs::path readonly = root.path / "readonly";
  fs::create_directories(readonly);
  fs::permissions(readonly, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec);
  std::string prefix;
  if (::geteuid() == 0) {
    if (std::system("command -v setpriv > /dev/null") != 0) GTEST_SKIP() << "running as root without setpriv";
    prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  std::tie(status, out) = run_command(train_command(readonly, prefix), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: train: cannot write into the folder '{}': Permission denied", readonly.string()));
  EXPECT_HAS(out, "hint: check that the folder is writable");
  std::tie(status, out) = run_command(train_command(readonly / "run", prefix), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: train: cannot create the folder '{}': Permission denied", (readonly / "run").string()));
}

// A run killed between the two renames that publish a save leaves checkpoint.old.PID
// (and best.old.PID) and no checkpoint/: the rerun puts them back and resumes, and
// stale staging folders of dead processes are removed, each said on stderr.
TEST(OutputFolders, InterruptedSaveIsRecoveredAndStaleStagingRemoved) {
  const Root root("recover");
  const fs::path log = root.path / "out.txt", run_dir = root.path / "run";
  auto [status, out] = run_command(train_command(run_dir), log);
  ASSERT_EQ(status, 0) << out;
  const auto first = nlohmann::json::parse(read_file(run_dir / "results.json"));
  EXPECT_FALSE(first.at("resumed").get<bool>());

  // The state a kill between the renames leaves, by hand.
  const long dead = dead_pid(12345), dead2 = dead_pid(dead + 1), dead3 = dead_pid(dead2 + 1);
  const fs::path old_checkpoint = run_dir / fmt::format("checkpoint.old.{}", dead);
  const fs::path old_best = run_dir / fmt::format("best.old.{}", dead);
  fs::rename(run_dir / "checkpoint", old_checkpoint);
  fs::rename(run_dir / "best", old_best);
  // Staging of dead processes (up to 31 MB each in real runs)...
  const fs::path stale_tmp = run_dir / fmt::format("checkpoint.tmp.{}", dead2);
  const fs::path stale_best = run_dir / fmt::format("best.tmp.{}", dead3);
  const fs::path stale_file = run_dir / fmt::format("results.json.tmp.{}", dead2);
  fs::create_directories(stale_tmp);
  std::ofstream(stale_tmp / "trainable.safetensors") << "half written";
  fs::create_directories(stale_best);
  std::ofstream(stale_file) << "{";
  // ...and of a live one (this test): another graft may be writing there; left alone.
  const fs::path live = run_dir / fmt::format("best.old.{}", ::getpid());
  fs::create_directories(live);
  // A name graft does not stage under is not graft's to remove.
  const fs::path other = run_dir / fmt::format("notes.old.{}", dead);
  std::ofstream(other) << "mine";

  std::tie(status, out) = run_command(train_command(run_dir), log);
  ASSERT_EQ(status, 0) << out;
  EXPECT_HAS(out, fmt::format("graft: train: recovered '{}' from 'checkpoint.old.{}' (process {} was stopped while replacing it)",
                              (run_dir / "checkpoint").string(), dead, dead));
  EXPECT_HAS(out, fmt::format("recovered '{}' from 'best.old.{}'", (run_dir / "best").string(), dead));
  EXPECT_HAS(out, fmt::format("graft: train: removed the stale '{}' (left by process {}, which is no longer running)",
                              stale_tmp.string(), dead2));
  EXPECT_HAS(out, fmt::format("removed the stale '{}'", stale_best.string()));
  EXPECT_HAS(out, fmt::format("removed the stale '{}'", stale_file.string()));
  EXPECT_FALSE(fs::exists(old_checkpoint));
  EXPECT_FALSE(fs::exists(old_best));
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_FALSE(fs::exists(stale_best));
  EXPECT_FALSE(fs::exists(stale_file));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(read_file(other), "mine");
  EXPECT_TRUE(fs::exists(run_dir / "best" / "graft_adapter.json"));

  // The recovered checkpoint is of the finished run (its last step): the run is read
  // back as finished, not trained again from step 0, and its results stay as they were.
  EXPECT_HAS(out, "already finished");
  const auto again = nlohmann::json::parse(read_file(run_dir / "results.json"));
  EXPECT_EQ(again, first);
  std::ifstream events(run_dir / "log.jsonl");
  int steps_logged = 0;
  for (std::string line; std::getline(events, line);) steps_logged += nlohmann::json::parse(line).contains("event") ? 0 : 1;
  EXPECT_EQ(steps_logged, first.at("steps").get<int>());
}

TEST(CompareOutput, LabelsArePlainNames) {
  const Root root("compare_labels");
  const fs::path log = root.path / "out.txt", output = root.path / "report";
  for (const std::string label : {"../../x", "/abs/path", ".hidden", "a/b", "..", "sp ace"}) {
    SCOPED_TRACE(label);
    const auto [status, out] = run_command(fmt::format("\"{}\" compare --backbone \"{}\" --task sst2 --methods 'head,{}=lora' --output \"{}\"",
                                               GRAFT_CLI, kTinyBert, label, output.string()),
                                   log);
    EXPECT_EQ(status, 1) << out;
    EXPECT_HAS(out, fmt::format("graft: compare: --methods: label '{}' is not a plain name", label));
    EXPECT_HAS(out, "hint: a label names its run's folder inside --output");
    EXPECT_FALSE(fs::exists(output)) << "refused before anything is written";
  }
  // A bare METHOD is its own label.
  const auto [status, out] = run_command(fmt::format("\"{}\" compare --backbone \"{}\" --task sst2 --methods ../lora --output \"{}\"",
                                             GRAFT_CLI, kTinyBert, output.string()),
                                 log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, "label '../lora' is not a plain name");
  EXPECT_FALSE(fs::exists(root.path / "lora"));
}

TEST(CompareOutput, WritesOnlyIntoItsOwnFolders) {
  const Root root("compare_output");
  const fs::path log = root.path / "out.txt";
  auto compare = [&](const fs::path& output) {
    return run_command(fmt::format("OMP_NUM_THREADS=1 \"{}\" compare --backbone \"{}\" --task sst2 --data \"{}/data/glue\" --train-rows 16 "
                           "--dev-rows 8 --batch-size 8 --max-steps 2 --no-progress --methods head --output \"{}\"",
                           GRAFT_CLI, kTinyBert, GRAFT_SHARED_DIR, output.string()),
               log);
  };
  const fs::path mine = root.path / "mine";
  fs::create_directories(mine);
  std::ofstream(mine / "results.md") << "my results";
  auto [status, out] = compare(mine);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: compare: '{}' already holds files graft did not write (results.md)", mine.string()));
  EXPECT_EQ(read_file(mine / "results.md"), "my results");

  // A report of a graft that wrote no marker yet is recognised by its title.
  const fs::path older = root.path / "older";
  fs::create_directories(older);
  std::ofstream(older / "results.md") << "# graft compare: sst2 on tiny_bert\n\n| method |\n";
  std::tie(status, out) = compare(older);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(fs::exists(older / ".graft"));
  EXPECT_TRUE(fs::exists(older / "head" / ".graft"));
  std::tie(status, out) = compare(older);  // and again, resuming its runs
  EXPECT_EQ(status, 0) << out;
}

}  // namespace
