// Data readers: the real GLUE files parse to the published row counts, and malformed
// files fail with an error naming the file and the line.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/conll.h"
#include "data/glue.h"
#include "data/tabular.h"
#include "graft/error.h"

namespace graft::data {
namespace {

namespace fs = std::filesystem;
const fs::path kGlue = fs::path(GRAFT_SHARED_DIR) / "data" / "glue";

TEST(Glue, RealFilesHaveThePublishedRowCounts) {
  const std::vector<std::tuple<std::string, std::string, std::size_t>> expected = {
      {"cola", "train", 8551}, {"cola", "dev", 1043}, {"sst2", "train", 67349}, {"sst2", "dev", 872},
      {"mrpc", "train", 3668}, {"mrpc", "dev", 408},  {"stsb", "train", 5749},  {"stsb", "dev", 1500},
      {"rte", "train", 2490},  {"rte", "dev", 277},   {"qnli", "dev", 5463},    {"wnli", "train", 635},
      {"wnli", "dev", 71}};
  for (const auto& [task, split, rows] : expected) {
    const Dataset ds = read_glue(kGlue, task, split);
    EXPECT_EQ(ds.examples.size(), rows) << task << " " << split;
  }
  const Dataset rte = read_glue(kGlue, "RTE", "dev");
  EXPECT_TRUE(rte.examples[0].has_pair);
  EXPECT_EQ(rte.label_names, (std::vector<std::string>{"entailment", "not_entailment"}));
  const Dataset stsb = read_glue(kGlue, "STS-B", "dev");
  EXPECT_EQ(stsb.kind, TaskKind::regression);
  EXPECT_GE(stsb.examples[0].label, 0.0);
  EXPECT_LE(stsb.examples[0].label, 5.0);
}

class BadFile : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() / fmt::format("graft_data_{}", ::getpid());
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  }
  template <class F>
  void expect_error(F&& read, const fs::path& file, const std::string& where, const std::string& what) {
    try {
      read();
      FAIL() << "no error for " << file;
    } catch (const FormatError& e) {
      const std::string text = e.what();
      EXPECT_NE(text.find(file.string() + where), std::string::npos) << text;
      EXPECT_NE(text.find(what), std::string::npos) << text;
      EXPECT_FALSE(e.hint().empty()) << text;
    }
  }
};

TEST_F(BadFile, GlueMissingColumn) {
  const auto f = write("rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tentailment\n1\tOnly one\n");
  expect_error([&] { read_glue_file(f, "rte"); }, f, ":3", "row has 2 columns");
}

TEST_F(BadFile, GlueUnknownLabel) {
  const auto f = write("rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tmaybe\n");
  expect_error([&] { read_glue_file(f, "rte"); }, f, ":2", "unknown label 'maybe'");
}

TEST_F(BadFile, GlueEmptyFile) {
  const auto f = write("sst.tsv", "");
  expect_error([&] { read_glue_file(f, "sst2"); }, f, "", "holds no rows");
}

TEST_F(BadFile, GlueInvalidUtf8) {
  const auto f = write("sst.tsv", "sentence\tlabel\ngood film\t1\nbad \xC3\x28 film\t0\n");
  expect_error([&] { read_glue_file(f, "sst2"); }, f, ":3", "invalid UTF-8");
}

TEST_F(BadFile, GlueWrongDelimiter) {
  const auto f = write("sst.tsv", "sentence,label\ngood film,1\n");
  expect_error([&] { read_glue_file(f, "sst2"); }, f, ":1", "header has no column 'sentence'");
}

TEST_F(BadFile, StsbScoreThatIsNotANumber) {
  const auto f = write("stsb.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\thigh\n");
  expect_error([&] { read_glue_file(f, "stsb"); }, f, ":2", "label 'high'");
}

TEST_F(BadFile, NonFiniteRegressionLabelsAreRefused) {
  // std::stod reads "nan" and "inf": they would poison every loss and metric silently.
  for (const std::string label : {"nan", "inf", "-inf", "NaN", "1e999"}) {
    SCOPED_TRACE(label);
    const auto tsv = write("stsb.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\t3.5\n1\ta\tb\t" + label + "\n");
    expect_error([&] { read_glue_file(tsv, "stsb"); }, tsv, ":3", "'" + label + "'");
    const auto csv = write("r.csv", "text,label\nfine,1.5\nbad," + label + "\n");
    expect_error([&] { read_csv(csv, true); }, csv, ":3", "'" + label + "'");
    const auto jsonl = write("r.jsonl", "{\"text\": \"fine\", \"label\": 1.5}\n{\"text\": \"bad\", \"label\": \"" + label + "\"}\n");
    expect_error([&] { read_jsonl(jsonl, true); }, jsonl, ":2", "'" + label + "'");
  }
}

TEST_F(BadFile, NullAndEmptyLabelsAreRefused) {
  const auto jsonl = write("n.jsonl", "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": null}\n");
  expect_error([&] { read_jsonl(jsonl, false); }, jsonl, ":2", "\"label\" is null");
  const auto nested = write("o.jsonl", "{\"text\": \"a\", \"label\": [1]}\n");
  expect_error([&] { read_jsonl(nested, false); }, nested, ":1", "not a string or number");
  const auto csv = write("e.csv", "text,label\na,pos\nb,\n");
  expect_error([&] { read_csv(csv, false); }, csv, ":3", "label is empty");
}

TEST_F(BadFile, DeeplyNestedJsonlRowIsAnErrorNotACrash) {
  const auto f = write("deep.jsonl", "{\"text\": \"a\", \"label\": " + std::string(100000, '[') + "\n");
  expect_error([&] { read_jsonl(f, false); }, f, ":1", "nests too deeply");
}

TEST_F(BadFile, CsvRowsAndErrors) {
  const auto good = write("good.csv", "text,text_pair,label\n\"Hello, world\",\"a \"\"quoted\"\" pair\",pos\nplain,other,neg\n");
  const Dataset ds = read_csv(good, false);
  ASSERT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.examples[0].text, "Hello, world");
  EXPECT_EQ(ds.examples[0].text_pair, "a \"quoted\" pair");
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"neg", "pos"}));
  const auto short_row = write("short.csv", "text,label\nfine,pos\nmissing\n");
  expect_error([&] { read_csv(short_row, false); }, short_row, ":3", "row has 1 columns");
  const auto tsv = write("tabs.csv", "text\tlabel\nfine\tpos\n");
  expect_error([&] { read_csv(tsv, false); }, tsv, ":1", "header has no column 'text'");
  const auto unknown = write("dev.csv", "text,label\nfine,neutral\n");
  expect_error([&] { read_csv(unknown, false, {"neg", "pos"}); }, unknown, ":2", "unknown label 'neutral'");
}

TEST_F(BadFile, JsonlRowsAndErrors) {
  const auto good = write("good.jsonl", "{\"text\": \"fine\", \"label\": 1}\n\n{\"text\": \"bad\", \"label\": 0}\n");
  EXPECT_EQ(read_jsonl(good, false).examples.size(), 2u);
  const auto broken = write("broken.jsonl", "{\"text\": \"fine\", \"label\": 1}\n{\"text\": \"oops\"\n");
  expect_error([&] { read_jsonl(broken, false); }, broken, ":2", "not a JSON object");
  const auto missing = write("missing.jsonl", "{\"sentence\": \"fine\", \"label\": 1}\n");
  expect_error([&] { read_jsonl(missing, false); }, missing, ":1", "needs a string \"text\"");
  const auto empty = write("empty.jsonl", "\n\n");
  expect_error([&] { read_jsonl(empty, false); }, empty, "", "holds no rows");
}

TEST(Conll, RealFilesHaveThePublishedCounts) {
  const Dataset train = read_conll(fs::path(GRAFT_SHARED_DIR) / "data" / "conll2003" / "train.txt");
  std::size_t tokens = 0;
  for (const auto& ex : train.examples) tokens += ex.words.size();
  EXPECT_EQ(train.examples.size(), 14041u);
  EXPECT_EQ(tokens, 203621u);
  EXPECT_EQ(read_conll(fs::path(GRAFT_SHARED_DIR) / "data" / "conll2003" / "dev.txt").examples.size(), 3250u);
  EXPECT_EQ(train.label_names.size(), 9u);
}

TEST_F(BadFile, ConllWrongColumnsAndTags) {
  const auto cols = write("a.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ\n");
  expect_error([&] { read_conll(cols); }, cols, ":4", "2 columns");
  const auto tag = write("b.txt", "EU NNP B-NP I-ORGANISATION\n");
  expect_error([&] { read_conll(tag); }, tag, ":1", "unknown NER tag 'I-ORGANISATION'");
}

TEST_F(BadFile, MissingFileIsAnIoError) { EXPECT_THROW(read_text_lines(dir / "nope.txt"), IoError); }

}  // namespace
}  // namespace graft::data
