// Autoregressive generation with a KV cache: greedy (temperature 0), temperature
// sampling, and nucleus (top-p) sampling with a seeded generator.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "graft/backbone.h"

namespace graft::model {

struct GenerationConfig {
  std::int64_t max_new_tokens = 64;
  float temperature = 0.f;  // 0: greedy
  float top_p = 1.f;        // 1: no nucleus truncation
  std::uint64_t seed = 0;
  std::vector<std::int64_t> stop_ids = {1, 2};  // llama2.c: BOS delimits stories; EOS ends them
};

// Continues `prompt` (which should start with BOS); calls `on_token` for each new id as
// it is produced. Returns the new ids (a stop id is not included).
// `hooks`: the adapters of this call (null: the bare backbone).
std::vector<std::int64_t> generate(const Backbone& model, const std::vector<std::int64_t>& prompt, const GenerationConfig& config,
                                   ForwardHooks* hooks = nullptr, const std::function<void(std::int64_t)>& on_token = {});

// The next id from logits [vocab] under `config`, drawing from `uniform01` when sampling.
std::int64_t pick_next(const std::vector<float>& logits, const GenerationConfig& config, double uniform01);

}  // namespace graft::model
