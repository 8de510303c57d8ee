// What the LoRA and DoRA tests share: the tiny backbones' fixture inputs, random lora_B,
// backbone snapshots, and comparisons against PEFT's recorded outputs.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "golden/fixture.h"
#include "graft/autograd.h"
#include "integration/peft_harness.h"
#include "train/adapter_io.h"
#include "unit/gradcheck.h"

namespace graft::testing {

inline const std::filesystem::path kGolden = std::filesystem::path(GRAFT_SOURCE_DIR) / "tests" / "golden";

inline Tensor hidden(Backbone& backbone, AdapterSet* set, const Batch& batch, const Selection* selection = nullptr) {
  NoGradGuard no_grad;
  return forward_with(backbone, set, batch, false, nullptr, selection);
}

// The inputs of a tiny backbone's reference.json; `tokens` > 0 keeps row 0's first ones.
inline Batch fixture_batch(const std::string& name, std::int64_t tokens = 0) {
  const json ref = load_fixture((kGolden / "backbones" / name / "reference.json").string());
  Batch b;
  b.input_ids = tensor_of(ref.at("input_ids"));
  b.attention_mask = ref.contains("attention_mask") ? tensor_of(ref.at("attention_mask"))
                                                    : Tensor::from_ints(std::vector<std::int64_t>(b.input_ids.numel(), 1), b.input_ids.shape());
  if (ref.contains("token_type_ids")) b.token_type_ids = tensor_of(ref.at("token_type_ids"));
  if (tokens > 0) {
    auto head = [&](const Tensor& t) {
      if (!t.defined()) return t;
      auto v = t.to_ints();
      return Tensor::from_ints(std::vector<std::int64_t>(v.begin(), v.begin() + tokens), {1, tokens});
    };
    b = {head(b.input_ids), head(b.attention_mask), head(b.token_type_ids)};
  }
  return b;
}

inline std::vector<float> floats(const Tensor& t) { return t.to_floats(); }

// Fills every lora_B with deterministic random values: at init B = 0 and the adapter
// would be the identity, which proves nothing about the B·A path.
inline void randomize_b(AdapterSet& set, const std::string& name, std::uint64_t seed, float scale = 0.2f,
                        const std::string& which = "lora_B") {
  for (const auto& p : set.method(name).parameters()) {
    if (p.name.find(which) == std::string::npos) continue;
    const Tensor r = random_tensor(p.tensor.shape(), seed++, -scale, scale);
    std::memcpy(p.tensor.raw(), r.raw(), p.tensor.nbytes());
  }
}

inline std::vector<Tensor> snapshot(const Backbone& backbone) {
  std::vector<Tensor> out;
  for (const auto& p : backbone.parameters()) out.push_back(p.tensor.clone());
  return out;
}

inline bool bit_identical(const Backbone& backbone, const std::vector<Tensor>& before) {
  const auto now = backbone.parameters();
  if (now.size() != before.size()) return false;
  for (std::size_t i = 0; i < now.size(); ++i)
    if (now[i].tensor.nbytes() != before[i].nbytes() || std::memcmp(now[i].tensor.raw(), before[i].raw(), before[i].nbytes()) != 0)
      return false;
  return true;
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i) m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
  return m;
}

// Compares where attention_mask is 1 (padded rows are not defined by the reference).
inline double compare_masked(const std::string& what, const Tensor& got, const json& want, const Tensor& mask, double tol) {
  const auto g = got.to_floats();
  const auto w = want.at("data").get<std::vector<float>>();
  EXPECT_EQ(got.shape(), want.at("shape").get<Shape>()) << what;
  const auto m = mask.to_ints();
  const std::size_t per_token = g.size() / m.size();
  double max_diff = 0;
  for (std::size_t i = 0; i < std::min(g.size(), w.size()); ++i)
    if (m[i / per_token]) max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - w[i]));
  std::printf("  %-40s max |graft - PEFT| %.3g\n", what.c_str(), max_diff);
  EXPECT_LE(max_diff, tol) << what;
  return max_diff;
}

inline Tensor outputs_of(Backbone& b, AdapterSet* set, const Batch& batch) {
  const Tensor h = hidden(b, set, batch);
  if (!b.info().causal) return h;
  NoGradGuard no_grad;
  return b.lm_logits(h);
}

// An adapter saved by graft for a fixture script to load in PEFT (its --verify-only).
// With GRAFT_WRITE_PEFT_FIXTURES=1 attaches `method` with `config` on tiny backbone
// `name`, randomises it and saves it into `dir` with graft_outputs.json (graft's
// outputs for the backbone's reference inputs); always checks that `dir` still loads
// in graft to the recorded outputs.
inline void check_graft_saved(const std::filesystem::path& dir, const std::string& name, const std::string& method,
                              const std::string& config, const std::function<void(AdapterSet&)>& randomize) {
  Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
  const Batch batch = fixture_batch(name);
  const std::string key = b.info().causal ? "logits" : "last_hidden_state";
  if (std::getenv("GRAFT_WRITE_PEFT_FIXTURES")) {
    auto set = attach(b, method, config, 77);
    randomize(*set);
    save_adapter(dir, *set, "task", b, nullptr);
    auto enc = [](const Tensor& t) {
      json j = {{"dtype", t.dtype() == DType::i64 ? "i64" : "f32"}, {"shape", t.shape()}};
      if (t.dtype() == DType::i64) j["data"] = t.to_ints();
      else j["data"] = t.to_floats();
      return j;
    };
    json out = {{"description", "graft's outputs with this adapter, for the inputs of the backbone's reference.json"},
                {"input_ids", enc(batch.input_ids)}, {key, enc(outputs_of(b, set.get(), batch))}};
    if (!b.info().causal) {
      out["attention_mask"] = enc(batch.attention_mask);
      out["token_type_ids"] = enc(batch.token_type_ids);
    }
    std::ofstream(dir / "graft_outputs.json") << out.dump() << "\n";
    std::printf("  wrote %s\n", dir.c_str());
  }
  AdapterSet set(b);
  load_adapter(dir, set, "saved", plugins(), b, nullptr);
  const json recorded = load_fixture((dir / "graft_outputs.json").string());
  // 1e-5: the outputs were recorded on some CPU, and oneDNN's kernels for another ISA
  // (AVX2 against AVX512) sum in another order (seen: 1.2e-6). A wrong load is off by far more.
  expect_close(name + " graft-saved " + key, outputs_of(b, &set, batch), recorded.at(key), {1e-5, 0});
}

}  // namespace graft::testing
