// safetensors read/write, atomic writes, and `graft inspect`. Malformed files are
// written byte by byte here, so the reader is tested independently of the writer.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "graft/error.h"
#include "graft/tensor.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using graft::DType;
using graft::Tensor;
using graft::io::SafetensorsFile;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (text)

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// [u64 length][header][data], the header taken verbatim (no padding).
std::string raw_file(const std::string& header, const std::string& data = {}) {
  std::uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

template <class T>
std::string as_bytes(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("graft-safetensors-{}-{}", ::getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file named after the test, so that each message must name its own file.
  fs::path file(const std::string& suffix = ".safetensors") const {
    return dir_ / (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + suffix);
  }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Writes `bytes`, opens it, and returns the FormatError's message (which must name
  // the file and end with a hint).
  std::string open_error(const std::string& bytes) {
    write_bytes(file(), bytes);
    try {
      SafetensorsFile::open(file());
    } catch (const graft::FormatError& e) {
      std::string msg = e.what();
      EXPECT_HAS(msg, file().filename().string());
      EXPECT_HAS(msg, "\n  hint: ");
      return msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected graft::FormatError, got: " << e.what();
      return {};
    }
    ADD_FAILURE() << "expected graft::FormatError, opened fine";
    return {};
  }
  std::string header_error(const std::string& header, const std::string& data = std::string(64, '\0')) {
    return open_error(raw_file(header, data));
  }

  fs::path dir_;
};

// ---- round trips --------------------------------------------------------------------

TEST_F(Safetensors, RoundTripIsBitIdentical) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"f32", Tensor::from_floats({1.5f, -0.0f, nan, inf, -inf, 1e-40f}, {2, 3})},
      {"bf16", Tensor::from_floats({1.0f, -2.5f, 3.140625f, 0.0f}, {4}, DType::bf16)},
      {"i32", Tensor::from_ints({-1, 0, 2147483647, -2147483648LL}, {2, 2}, DType::i32)},
      {"i64", Tensor::from_ints({std::numeric_limits<std::int64_t>::min(), 42, std::numeric_limits<std::int64_t>::max()}, {3, 1, 1}, DType::i64)},
      {"scalar", Tensor::from_floats({7.0f}, {})},
      {"empty", Tensor::zeros({0, 5})},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"graft.note", "ünïcode ✓"}};
  graft::io::save_safetensors(file(), tensors, metadata);

  auto st = SafetensorsFile::open(file());
  EXPECT_EQ(st.metadata(), metadata);
  ASSERT_EQ(st.tensors().size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    EXPECT_EQ(st.tensors()[i].name, name) << "tensors() must follow the data order, which is the order given";
    ASSERT_TRUE(st.contains(name));
    EXPECT_TRUE(same_bytes(st.get(name), expected)) << name;
  }
  EXPECT_EQ(st.info("bf16").file_dtype, "BF16");
  EXPECT_EQ(st.info("i64").nbytes, 24u);
  EXPECT_FALSE(st.contains("nope"));
}

TEST_F(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  graft::io::save_safetensors(file(), {{"a", Tensor::from_floats({1, 2, 3}, {3})}});
  const std::string bytes = read_all(file());
  std::uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 12);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  EXPECT_EQ(header.substr(0, header.find_last_of('}') + 1),
            R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})");
}

TEST_F(Safetensors, ZeroTensorsIsValid) {
  graft::io::save_safetensors(file(), {});
  auto st = SafetensorsFile::open(file());
  EXPECT_TRUE(st.tensors().empty());
  EXPECT_TRUE(st.metadata().empty());
  write_bytes(file(), raw_file("{}"));
  EXPECT_TRUE(SafetensorsFile::open(file()).tensors().empty());
}

// ---- hand-written files: the format itself --------------------------------------------

TEST_F(Safetensors, ReadsHandWrittenFile) {
  // Header order differs from data order; a 4-byte gap at the end belongs to nobody.
  const std::string header =
      R"({"b": {"dtype": "I64", "shape": [2], "data_offsets": [8, 24]},)"
      R"( "a": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},)"
      R"( "__metadata__": {"format": "pt"}})";
  write_bytes(file(), raw_file(header, as_bytes<float>({0.25f, -8.0f}) + as_bytes<std::int64_t>({5, -6}) + "gap!"));
  auto st = SafetensorsFile::open(file());
  ASSERT_EQ(st.tensors().size(), 2u);
  EXPECT_EQ(st.tensors()[0].name, "a");
  EXPECT_EQ(st.tensors()[1].offset, 8u);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  Tensor a = st.get("a"), b = st.get("b");
  EXPECT_EQ(a.shape(), (graft::Shape{1, 2}));
  EXPECT_EQ(a.to_floats(), (std::vector<float>{0.25f, -8.0f}));
  EXPECT_EQ(b.dtype(), DType::i64);
  EXPECT_EQ(b.to_ints(), (std::vector<std::int64_t>{5, -6}));
}

TEST_F(Safetensors, TensorsAreZeroCopyAndOutliveTheFile) {
  graft::io::save_safetensors(file(), {{"w", Tensor::from_floats({1, 2, 3, 4}, {2, 2})}});
  Tensor w;
  {
    auto st = SafetensorsFile::open(file());
    w = st.get("w");
    EXPECT_EQ(st.get("w").raw(), w.raw()) << "both views must point into the one mapping";
  }
  EXPECT_EQ(w.to_floats(), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(Safetensors, F16IsWidenedToF32) {
  // 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), +inf
  const std::string data = as_bytes<std::uint16_t>({0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00});
  write_bytes(file(), raw_file(R"({"h": {"dtype": "F16", "shape": [6], "data_offsets": [0, 12]}})", data));
  auto st = SafetensorsFile::open(file());
  EXPECT_EQ(st.info("h").file_dtype, "F16");
  EXPECT_EQ(st.info("h").nbytes, 12u);
  Tensor h = st.get("h");
  EXPECT_EQ(h.dtype(), DType::f32);
  EXPECT_EQ(h.to_floats(),
            (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), std::numeric_limits<float>::infinity()}));
}

// Stored bytes (what a merged export writes for F16 and for tensors copied unchanged):
// every half value survives f32 -> F16 -> f32, ties round to even, and what F16 cannot
// hold becomes inf.
TEST_F(Safetensors, StoredF16RoundTripsEveryHalfAndRoundsTiesToEven) {
  std::vector<std::uint16_t> halves(65536);
  for (std::size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<std::uint16_t>(i);
  graft::io::save_safetensors_bytes(file(), std::vector<graft::io::StoredTensor>{{"h", "F16", {65536}, halves.data(), 65536 * 2}});
  const auto st = SafetensorsFile::open(file());
  EXPECT_EQ(st.info("h").file_dtype, "F16");
  EXPECT_EQ(std::memcmp(st.bytes("h"), halves.data(), 65536 * 2), 0) << "stored bytes are written as given";
  const std::vector<float> wide = st.get("h").to_floats();
  int mismatches = 0;
  for (std::size_t i = 0; i < halves.size(); ++i) {
    if (std::isnan(wide[i])) {
      const std::uint16_t back = graft::io::f32_to_f16(wide[i]);
      EXPECT_TRUE((back & 0x7C00) == 0x7C00 && (back & 0x03FF) != 0) << i << ": NaN must stay NaN";
      continue;
    }
    mismatches += graft::io::f32_to_f16(wide[i]) != halves[i];
  }
  EXPECT_EQ(mismatches, 0);
  // Halfway between two neighbours: the one with an even mantissa.
  for (std::uint16_t h : {std::uint16_t{0x0001}, std::uint16_t{0x03FF}, std::uint16_t{0x3C00}, std::uint16_t{0x3C01}, std::uint16_t{0x7BFE}}) {
    const float mid = (wide[h] + wide[h + 1]) / 2;
    EXPECT_EQ(graft::io::f32_to_f16(mid), (h & 1) ? h + 1 : h) << h;
    EXPECT_EQ(graft::io::f32_to_f16(-mid), 0x8000 | ((h & 1) ? h + 1 : h)) << h;
  }
  EXPECT_EQ(graft::io::f32_to_f16(65519.f), 0x7BFF);  // rounds down to the largest half
  EXPECT_EQ(graft::io::f32_to_f16(65520.f), 0x7C00);  // rounds past it: inf
  EXPECT_EQ(graft::io::f32_to_f16(1e30f), 0x7C00);
  EXPECT_EQ(graft::io::f32_to_f16(1e-10f), 0x0000);
}

TEST_F(Safetensors, StoredTensorsOfTheWrongSizeOrDtypeAreRefused) {
  const float values[4] = {1, 2, 3, 4};
  EXPECT_THROW(graft::io::save_safetensors_bytes(file(), std::vector<graft::io::StoredTensor>{{"w", "F32", {3}, values, 16}}),
               graft::FormatError);
  EXPECT_THROW(graft::io::save_safetensors_bytes(file(), std::vector<graft::io::StoredTensor>{{"w", "F8", {4}, values, 4}}),
               graft::FormatError);
  EXPECT_TRUE(listing().empty());
}

TEST_F(Safetensors, MisalignedTensorIsReadCorrectly) {
  const std::string data = "xx" + as_bytes<std::int32_t>({7, -9});
  write_bytes(file(), raw_file(R"({"t": {"dtype": "I32", "shape": [2], "data_offsets": [2, 10]}})", data));
  EXPECT_EQ(SafetensorsFile::open(file()).get("t").to_ints(), (std::vector<std::int64_t>{7, -9}));
}

TEST_F(Safetensors, MissingTensorNamesFileTensorAndAlternatives) {
  graft::io::save_safetensors(file(), {{"encoder.query.weight", Tensor::zeros({1})}, {"encoder.key.bias", Tensor::zeros({1})}});
  auto st = SafetensorsFile::open(file());
  try {
    st.info("encoder.value.weight");
    FAIL() << "expected FormatError";
  } catch (const graft::FormatError& e) {
    std::string msg = e.what();
    EXPECT_HAS(msg, file().filename().string());
    EXPECT_HAS(msg, "encoder.value.weight");
    EXPECT_HAS(msg, "hint:");
    EXPECT_HAS(msg, "encoder.query.weight");
  }
  EXPECT_THROW(st.get("nope"), graft::FormatError);
}

// ---- malformed files: each failure has its own message ---------------------------------

TEST_F(Safetensors, RejectsTruncatedFile) {
  EXPECT_HAS(open_error(std::string("\x10\0\0", 3)), "truncated");
}

TEST_F(Safetensors, RejectsHeaderLengthPastEnd) {
  std::string bytes = raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})");
  EXPECT_HAS(open_error(bytes.substr(0, 20)), "past the end");
}

TEST_F(Safetensors, RejectsAbsurdHeaderLength) {
  std::string bytes = raw_file("{}");
  std::uint64_t huge = 1ull << 40;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_HAS(open_error(bytes), "absurd");
}

TEST_F(Safetensors, RejectsHeaderThatIsNotJson) {
  std::string msg = header_error(R"({"a": {"dtype": "F32",)");
  EXPECT_HAS(msg, "not valid JSON");
  EXPECT_HAS(msg, "at byte");
}

TEST_F(Safetensors, RejectsHeaderThatIsNotAnObject) { EXPECT_HAS(header_error("[1, 2]"), "not an object"); }

TEST_F(Safetensors, RejectsEntryThatIsNotAnObject) {
  std::string msg = header_error(R"({"layer.w": [0, 4]})");
  EXPECT_HAS(msg, "'layer.w'");
  EXPECT_HAS(msg, "not an object");
}

TEST_F(Safetensors, RejectsMissingDtype) {
  std::string msg = header_error(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "missing key 'dtype'");
}

TEST_F(Safetensors, RejectsMissingShape) {
  EXPECT_HAS(header_error(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})"), "missing key 'shape'");
}

TEST_F(Safetensors, RejectsMissingDataOffsets) {
  EXPECT_HAS(header_error(R"({"w": {"dtype": "F32", "shape": [1]}})"), "missing key 'data_offsets'");
}

TEST_F(Safetensors, RejectsDtypeOfWrongType) {
  std::string msg = header_error(R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "'dtype' must be a string");
}

TEST_F(Safetensors, RejectsShapeOfWrongType) {
  EXPECT_HAS(header_error(R"({"w": {"dtype": "F32", "shape": "1x1", "data_offsets": [0, 4]}})"),
             "'shape' must be an array");
}

TEST_F(Safetensors, RejectsDataOffsetsOfWrongType) {
  std::string msg = header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "'data_offsets' must be two non-negative integers");
}

TEST_F(Safetensors, RejectsUnknownDtype) {
  std::string msg = header_error(R"({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "unknown dtype 'F8_E4M3'");
  EXPECT_HAS(msg, "F32, F16, BF16, I32, I64");
}

TEST_F(Safetensors, RejectsNegativeDimension) {
  std::string msg = header_error(R"({"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "dimension 1 is -2");
  EXPECT_HAS(msg, "non-negative");
}

TEST_F(Safetensors, RejectsNonIntegerDimension) {
  std::string msg = header_error(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "integers");
}

TEST_F(Safetensors, RejectsDataOffsetsOutOfRange) {
  std::string msg = header_error(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [56, 72]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "out of range");
  EXPECT_HAS(msg, "64 bytes");
}

TEST_F(Safetensors, RejectsDataOffsetsBeginPastEnd) {
  std::string msg = header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "begin is past end");
}

TEST_F(Safetensors, RejectsSizeMismatch) {
  std::string msg = header_error(R"({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}})");
  EXPECT_HAS(msg, "'w'");
  EXPECT_HAS(msg, "size mismatch");
  EXPECT_HAS(msg, "needs 6 bytes");
}

TEST_F(Safetensors, RejectsSizeOverflow) {
  std::string msg =
      header_error(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})");
  EXPECT_HAS(msg, "size mismatch");
}

TEST_F(Safetensors, RejectsOverlappingTensors) {
  std::string msg = header_error(R"({"first": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                 R"( "second": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})");
  EXPECT_HAS(msg, "'first'");
  EXPECT_HAS(msg, "'second'");
  EXPECT_HAS(msg, "overlap");
}

TEST_F(Safetensors, EmptyTensorsOverlapNothing) {
  write_bytes(file(), raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                               R"( "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
                               std::string(8, '\0')));
  EXPECT_EQ(SafetensorsFile::open(file()).get("z").numel(), 0);
}

TEST_F(Safetensors, RejectsDuplicateTensorName) {
  std::string msg = header_error(R"({"dup": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                                 R"( "dup": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})");
  EXPECT_HAS(msg, "duplicate tensor name 'dup'");
}

TEST_F(Safetensors, RejectsDuplicateKeyInsideEntry) {
  EXPECT_HAS(header_error(R"({"w": {"dtype": "F32", "dtype": "I32", "shape": [1], "data_offsets": [0, 4]}})"),
             "duplicate key 'dtype'");
}

TEST_F(Safetensors, RejectsMetadataThatIsNotStrings) {
  std::string msg = header_error(R"({"__metadata__": {"epoch": 3}})");
  EXPECT_HAS(msg, "__metadata__");
  EXPECT_HAS(msg, "'epoch'");
}

TEST_F(Safetensors, MissingFileIsIoError) {
  try {
    SafetensorsFile::open(file());
    FAIL() << "expected IoError";
  } catch (const graft::IoError& e) {
    EXPECT_HAS(std::string(e.what()), file().string());
    EXPECT_HAS(std::string(e.what()), "No such file");
  }
  EXPECT_THROW(SafetensorsFile::open(dir_), graft::IoError);
}

// ---- atomic writes -------------------------------------------------------------------

TEST_F(Safetensors, AtomicWriteLeavesNoTempFile) {
  graft::io::write_file_atomic(file(".txt"), "hello");
  EXPECT_EQ(listing(), std::vector<std::string>{file(".txt").filename().string()});
  EXPECT_EQ(read_all(file(".txt")), "hello");
}

TEST_F(Safetensors, AtomicWriteReplacesExistingTargetWhole) {
  write_bytes(file(".txt"), std::string(1000, 'x'));
  graft::io::write_file_atomic(file(".txt"), "short");
  EXPECT_EQ(read_all(file(".txt")), "short");

  graft::io::save_safetensors(file(), {{"old", Tensor::zeros({100})}});
  graft::io::save_safetensors(file(), {{"new", Tensor::from_floats({1}, {1})}});
  auto st = SafetensorsFile::open(file());
  ASSERT_EQ(st.tensors().size(), 1u);
  EXPECT_EQ(st.tensors()[0].name, "new");
  EXPECT_EQ(listing().size(), 2u);
}

TEST_F(Safetensors, UncommittedWriterLeavesTargetUntouched) {
  write_bytes(file(".txt"), "original");
  {
    graft::io::AtomicFileWriter writer(file(".txt"));
    writer.write("partial");
    EXPECT_TRUE(fs::exists(writer.temp_path()));
  }  // e.g. an exception between write and commit
  EXPECT_EQ(read_all(file(".txt")), "original");
  EXPECT_EQ(listing().size(), 1u);
}

TEST_F(Safetensors, FailedSaveLeavesNothingBehind) {
  const fs::path target = dir_ / "missing-folder" / "adapter.safetensors";
  try {
    graft::io::save_safetensors(target, {{"w", Tensor::zeros({2})}});
    FAIL() << "expected IoError";
  } catch (const graft::IoError& e) {
    EXPECT_HAS(std::string(e.what()), "missing-folder");
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(Safetensors, SaveRejectsDuplicateNames) {
  EXPECT_THROW(graft::io::save_safetensors(file(), {{"w", Tensor::zeros({1})}, {"w", Tensor::zeros({1})}}),
               graft::FormatError);
  EXPECT_TRUE(listing().empty());
}

// ---- graft inspect ---------------------------------------------------------------------

struct CliResult {
  int status;
  std::string output;
};

CliResult run_cli(const std::string& args, const fs::path& out) {
  const std::string cmd = fmt::format("\"{}\" {} > \"{}\" 2>&1", GRAFT_CLI, args, out.string());
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_all(out)};
}

TEST_F(Safetensors, InspectListsTensors) {
  graft::io::save_safetensors(file(), {{"encoder.weight", Tensor::zeros({4, 8})}, {"ids", Tensor::zeros({3}, DType::i64)}});
  CliResult r = run_cli(fmt::format("inspect \"{}\"", file().string()), dir_ / "out.txt");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_HAS(r.output, "encoder.weight");
  EXPECT_HAS(r.output, "[4, 8]");
  EXPECT_HAS(r.output, "I64");
  EXPECT_HAS(r.output, "2 tensors, 152 bytes");
}

TEST_F(Safetensors, InspectReportsMalformedFile) {
  write_bytes(file(), raw_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}})", "tiny"));
  CliResult r = run_cli(fmt::format("inspect \"{}\"", file().string()), dir_ / "out.txt");
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "graft: ");
  EXPECT_HAS(r.output, file().filename().string());
  EXPECT_HAS(r.output, "out of range");
}

TEST_F(Safetensors, CliUnknownCommandExitsTwo) {
  CliResult r = run_cli("frobnicate", dir_ / "out.txt");
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "usage:");
  EXPECT_EQ(run_cli("--version", dir_ / "out.txt").status, 0);
  EXPECT_EQ(run_cli("inspect", dir_ / "out.txt").status, 1) << "a missing argument is an error, not a crash";
}

}  // namespace
