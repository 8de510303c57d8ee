// Mixed-adapter batches: one frozen pass for the whole batch, each adapter on its own
// rows gathered (per-row selection). Every shipped method, rows with prefixes and
// prompts of different lengths, bare rows and padded rows in one batch: each row's
// output equals the row run alone with its adapter. And a new adapter never disturbs
// the outputs of the adapters already serving.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "graft/autograd.h"
#include "graft/ops.h"
#include "graft/session.h"
#include "peft_harness.h"
#include "train/adapter_io.h"
#include "unit/gradcheck.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

struct Spec {
  const char* name;
  const char* method;
  const char* config;
};
// Every shipped method; prefixes and prompts of two lengths, so rows need aligning.
const std::vector<Spec> kSpecs = {
    {"lora", "lora", R"({"r": 4, "target_modules": "all-linear"})"},
    {"dora", "lora", R"({"r": 4, "use_dora": true})"},
    {"houlsby", "houlsby", R"({"reduction_factor": 16})"},
    {"parallel", "houlsby", R"({"reduction_factor": 16, "is_parallel": true})"},
    {"prefix4", "prefix_tuning", R"({"num_virtual_tokens": 4})"},
    {"prefix9", "prefix_tuning", R"({"num_virtual_tokens": 9})"},
    {"prompt3", "prompt_tuning", R"({"num_virtual_tokens": 3})"},
    {"prompt8", "prompt_tuning", R"({"num_virtual_tokens": 8})"},
};
// Row b's adapter ("" = the bare backbone): every method, one twice, two bare rows.
const std::vector<std::string> kRows = {"lora",     "",        "prefix4", "prompt8", "dora",    "prompt3",
                                        "houlsby", "prefix9", "parallel", "lora",    "",        "prompt8"};

std::unique_ptr<AdapterSet> all_methods(const Backbone& bb) {
  auto set = std::make_unique<AdapterSet>(bb);
  std::uint64_t seed = 1;
  for (const Spec& s : kSpecs) attach_method(*set, plugins(), s.name, s.method, s.config, "test config", seed++);
  randomize(*set, 0.2f, 7);  // no identity inits: every adapter changes its rows
  return set;
}

// Row b: 3 + (5b mod 11) tokens, ids spread over the vocabulary.
std::vector<std::int64_t> row_ids(std::int64_t b, std::int64_t vocab) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(3 + (5 * b) % 11));
  for (std::size_t t = 0; t < ids.size(); ++t) ids[t] = 1 + static_cast<std::int64_t>((b * 37 + t * 101) % (vocab - 1));
  return ids;
}

Batch batch_of(const std::vector<std::vector<std::int64_t>>& rows) {
  std::size_t T = 0;
  for (const auto& r : rows) T = std::max(T, r.size());
  std::vector<std::int64_t> ids, mask;
  for (const auto& r : rows)
    for (std::size_t t = 0; t < T; ++t) {
      ids.push_back(t < r.size() ? r[t] : 0);
      mask.push_back(t < r.size() ? 1 : 0);
    }
  const auto B = static_cast<std::int64_t>(rows.size()), L = static_cast<std::int64_t>(T);
  return {Tensor::from_ints(ids, {B, L}), Tensor::from_ints(mask, {B, L}), Tensor()};
}

// The real tokens of row b: columns [width − T + 0, width − T + length) of hidden
// [B, width, H] (virtual columns and padding come first).
std::vector<float> real_tokens(const Tensor& hidden, std::int64_t b, std::int64_t T, std::int64_t length) {
  const std::int64_t width = hidden.dim(1), H = hidden.dim(2);
  const std::vector<float> all = hidden.to_floats();
  const auto first = all.begin() + (b * width + width - T) * H;
  return {first, first + length * H};
}

double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

TEST(MixedBatch, EveryRowEqualsItsAdapterRunAlone) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const auto set = all_methods(bb);
    std::vector<std::vector<std::int64_t>> rows;
    for (std::size_t b = 0; b < kRows.size(); ++b) rows.push_back(row_ids(static_cast<std::int64_t>(b), bb.info().vocab_size));
    const Batch mixed_batch = batch_of(rows);
    const std::int64_t T = mixed_batch.input_ids.dim(1);
    NoGradGuard no_grad;
    const Selection per_row = Selection::per_row(kRows);
    const Tensor mixed = forward_with(bb, set.get(), mixed_batch, false, nullptr, &per_row);
    double worst = 0, changed = 0;
    for (std::size_t b = 0; b < kRows.size(); ++b) {
      const Batch alone_batch = batch_of({rows[b]});
      const Selection alone = kRows[b].empty() ? Selection::none() : Selection::one(kRows[b]);
      const auto length = static_cast<std::int64_t>(rows[b].size());
      const std::vector<float> expected = real_tokens(forward_with(bb, set.get(), alone_batch, false, nullptr, &alone), 0, length, length);
      const std::vector<float> got = real_tokens(mixed, static_cast<std::int64_t>(b), T, length);
      const double diff = max_abs(got, expected);
      worst = std::max(worst, diff);
      EXPECT_LT(diff, 2e-4) << bb.info().architecture << " row " << b << " (" << (kRows[b].empty() ? "bare" : kRows[b])
                            << ") differs from the row run alone";
      if (!kRows[b].empty()) {  // the adapter really acts on its row
        const Selection none = Selection::none();
        changed = std::max(changed, max_abs(expected, real_tokens(forward_with(bb, set.get(), alone_batch, false, nullptr, &none), 0, length, length)));
      }
    }
    std::printf("%s: %zu rows, %zu adapters of %zu methods: max |mixed - alone| %.3g (adapters move rows by up to %.3g)\n",
                bb.info().architecture.c_str(), kRows.size(), kSpecs.size(), std::size_t{6}, worst, changed);
    EXPECT_GT(changed, 1e-2);
  }
}

// Gradients through a mixed batch reach each adapter from its own rows only: the loss
// over the mixed batch gives every adapter the gradient that the loss over its rows
// alone gives it.
TEST(MixedBatch, GradientsReachEachAdapterFromItsOwnRows) {
  const Backbone& bb = *stories260k().model;
  const auto set = all_methods(bb);
  std::vector<std::vector<std::int64_t>> rows;
  for (std::size_t b = 0; b < kRows.size(); ++b) rows.push_back(row_ids(static_cast<std::int64_t>(b), bb.info().vocab_size));
  const Selection per_row = Selection::per_row(kRows);
  const Batch batch = batch_of(rows);
  const std::int64_t T = batch.input_ids.dim(1);
  // Σ over each row's real tokens of hidden · w (a fixed weighting), as one scalar.
  // Row `row` of the batch is row `b` of `hidden`.
  auto loss_of = [&](const Tensor& hidden, std::int64_t b, std::size_t row, std::int64_t width_t, std::int64_t length) {
    const std::int64_t width = hidden.dim(1);
    Tensor h = ops::slice(ops::slice(hidden, 0, b, 1), 1, width - width_t, length);
    return ops::sum(ops::mul(h, random_tensor(h.shape(), 50 + row)));
  };
  const auto params = parameters_of(*set);
  for (const auto& p : params) p.tensor.zero_grad();
  const Tensor hidden = forward_with(bb, set.get(), batch, false, nullptr, &per_row);
  Tensor total;
  for (std::size_t b = 0; b < kRows.size(); ++b) {
    const Tensor l = loss_of(hidden, static_cast<std::int64_t>(b), b, T, static_cast<std::int64_t>(rows[b].size()));
    total = total.defined() ? ops::add(total, l) : l;
  }
  total.backward();
  std::map<std::string, std::vector<float>> mixed_grads;
  for (const auto& p : params) mixed_grads[p.name] = p.tensor.grad().defined() ? p.tensor.grad().to_floats() : std::vector<float>{};

  for (const auto& p : params) p.tensor.zero_grad();
  for (std::size_t b = 0; b < kRows.size(); ++b) {
    if (kRows[b].empty()) continue;
    const Selection alone = Selection::one(kRows[b]);
    const auto length = static_cast<std::int64_t>(rows[b].size());
    loss_of(forward_with(bb, set.get(), batch_of({rows[b]}), false, nullptr, &alone), 0, b, length, length).backward();
  }
  std::size_t compared = 0;
  for (const auto& p : params) {
    const std::vector<float> alone = p.tensor.grad().defined() ? p.tensor.grad().to_floats() : std::vector<float>{};
    const std::vector<float>& mixed = mixed_grads[p.name];
    ASSERT_EQ(alone.size(), mixed.size()) << p.name;
    double scale = 1e-6;
    for (float g : alone) scale = std::max(scale, std::fabs(double(g)));
    EXPECT_LT(max_abs(mixed, alone) / scale, 1e-3) << p.name;
    compared += !alone.empty();
  }
  EXPECT_GE(compared, kSpecs.size()) << "every adapter should have received a gradient";
}

// A new task never disturbs the old ones: loading (and unloading) an adapter leaves
// every other adapter's outputs bit-identical, alone and in a mixed batch.
TEST(MixedBatch, LoadingAnAdapterLeavesTheOthersBitIdentical) {
  const std::vector<std::string> texts = {"a gripping, beautifully shot film", "the plot never comes together",
                                          "an ordinary evening", "worth every minute"};
  Session s(minilm_path());
  s.add_adapter("a", "lora", R"({"r": 4, "init_lora_weights": false})", 1);
  s.add_adapter("b", "prefix_tuning", R"({"num_virtual_tokens": 5})", 2);
  const fs::path folder = fs::temp_directory_path() / fmt::format("graft_mixed_new_{}", ::getpid());
  {
    Session other(minilm_path());
    other.add_adapter("new", "prompt_tuning", R"({"num_virtual_tokens": 6})", 3);
    other.add_head("new", sst2_rows("train", 0, 8));
    other.save_adapter("new", folder);
  }
  const Selection mixed = Selection::per_row({"a", "b", "", "a"});
  const auto before_a = s.embed(texts, Selection::one("a")), before_b = s.embed(texts, Selection::one("b"));
  const auto before_mixed = s.embed(texts, mixed);
  s.load_adapter("new", folder);
  EXPECT_EQ(s.embed(texts, Selection::one("a")), before_a);
  EXPECT_EQ(s.embed(texts, Selection::one("b")), before_b);
  EXPECT_EQ(s.embed(texts, mixed), before_mixed);
  // The new one serves beside them in the same batch; the others' rows stay put to rounding.
  const auto with_new = s.embed(texts, Selection::per_row({"a", "b", "new", "a"}));
  EXPECT_NE(with_new[2], before_mixed[2]);
  s.unload_adapter("new");
  EXPECT_EQ(s.embed(texts, Selection::one("a")), before_a);
  EXPECT_EQ(s.embed(texts, mixed), before_mixed);
  fs::remove_all(folder);
}

}  // namespace
}  // namespace graft::testing
