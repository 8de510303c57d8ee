// Hostile inputs that used to end in a raw or misleading message (issue 10): each now
// names the file, key or folder at fault and says what to do, with exit status 1.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "graft/error.h"
#include "integration/cli_harness.h"
#include "graft/tensor.h"

namespace {

namespace fs = std::filesystem;

using graft::testing::read_file;
using graft::testing::run_command;
using Root = graft::testing::TempFolder;

const std::string kTinyBert = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/backbones/tiny_bert";
const std::string kGlue = std::string(GRAFT_SHARED_DIR) + "/data/glue";

// A classification adapter evaluated on a regression task, or on a task with other
// labels: refused up front, naming the adapter's head and the task, instead of failing
// deep inside the loss.
TEST(ErrorMessages, EvalRefusesAHeadThatDoesNotFitTheTask) {
  const Root root("eval_head");
  const fs::path log = root.path / "out.txt", run_dir = root.path / "run";
  auto [status, out] = run_command(fmt::format("\"{}\" train --backbone \"{}\" --task sst2 --data \"{}\" --train-rows 16 --dev-rows 8 "
                                       "--batch-size 8 --max-steps 2 --no-progress --method head --output \"{}\"",
                                       GRAFT_CLI, kTinyBert, kGlue, run_dir.string()),
                           log);
  ASSERT_EQ(status, 0) << out;
  const fs::path adapter = run_dir / "best";
  const std::string eval = fmt::format("\"{}\" eval --backbone \"{}\" --adapter \"{}\" --dev-rows 8", GRAFT_CLI, kTinyBert, adapter.string());

  std::tie(status, out) = run_command(fmt::format("{} --task sst2 --data \"{}\"", eval, kGlue), log);
  EXPECT_EQ(status, 0) << out;  // the task it was trained for

  std::tie(status, out) = run_command(fmt::format("{} --task stsb --data \"{}\"", eval, kGlue), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("graft: eval: '{}' holds a classification head (2 labels), but task 'stsb' is regression",
                              adapter.string()));
  EXPECT_HAS(out, "hint: evaluate an adapter on the kind of task it was trained for");

  std::ofstream(root.path / "train.txt") << "once upon a time\nthere was a cat\n";
  std::tie(status, out) = run_command(fmt::format("{} --task text --train-file \"{}\" --dev-file \"{}\"", eval,
                                          (root.path / "train.txt").string(), (root.path / "train.txt").string()),
                              log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, "holds a classification head (2 labels), but task 'text' is causal_lm");

  std::ofstream(root.path / "three.csv") << "text,label\ngood,pos\nbad,neg\nmeh,neutral\n";
  std::tie(status, out) = run_command(fmt::format("{} --task csv --train-file \"{}\" --dev-file \"{}\"", eval,
                                          (root.path / "three.csv").string(), (root.path / "three.csv").string()),
                              log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("'{}' holds a head with 2 labels, but task 'three' has 3 (", adapter.string()));
  EXPECT_EQ(out.find("cross_entropy"), std::string::npos) << out;
}

// A tensor too large to allocate names its shape and says where such sizes come from;
// a shape whose byte count overflows is refused before any allocation.
TEST(ErrorMessages, OutOfMemoryNamesTheTensorAndTheLikelyCause) {
  try {
    graft::Tensor::empty({std::int64_t{1} << 30, std::int64_t{1} << 20});  // 4 PiB
    ADD_FAILURE() << "allocated 4 PiB";
  } catch (const graft::Error& e) {
    const std::string text = e.what();
    EXPECT_HAS(text, "out of memory allocating a f32 tensor of shape [1073741824, 1048576]: 4503599627370496 bytes");
    EXPECT_HAS(text, "num_labels");
    EXPECT_FALSE(e.hint().empty());
  }
  try {
    graft::Tensor::empty({std::int64_t{1} << 40, std::int64_t{1} << 40});
    ADD_FAILURE() << "an overflowing shape was accepted";
  } catch (const graft::ShapeError& e) {
    EXPECT_HAS(std::string(e.what()), "shape [1099511627776, 1099511627776] is too large to allocate");
  }
}

// A model folder whose tokenizer files are folders: the message names the file.
TEST(ErrorMessages, TokenizerFileThatIsAFolder) {
  const Root root("tokenizer_folder");
  const fs::path log = root.path / "out.txt", model = root.path / "model";
  fs::copy(kTinyBert, model, fs::copy_options::recursive);
  fs::remove(model / "vocab.txt");
  fs::create_directories(model / "vocab.txt");
  auto [status, out] = run_command(fmt::format("\"{}\" embed --backbone \"{}\" hello", GRAFT_CLI, model.string()), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("cannot read '{}': it is a folder, not a file", (model / "vocab.txt").string()));

  fs::create_directories(model / "tokenizer.json");  // read before vocab.txt
  std::tie(status, out) = run_command(fmt::format("\"{}\" embed --backbone \"{}\" hello", GRAFT_CLI, model.string()), log);
  EXPECT_EQ(status, 1) << out;
  EXPECT_HAS(out, fmt::format("cannot read '{}': it is a folder, not a file", (model / "tokenizer.json").string()));
}

}  // namespace
