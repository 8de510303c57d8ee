#include "model/generation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"

namespace graft::model {

std::int64_t pick_next(const std::vector<float>& logits, const GenerationConfig& config, double uniform01) {
  if (config.temperature <= 0.f)
    return std::max_element(logits.begin(), logits.end()) - logits.begin();
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  double total = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) total += probs[i] = std::exp((logits[i] - top) / config.temperature);
  for (auto& p : probs) p /= total;
  std::vector<std::int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::size_t keep = order.size();
  if (config.top_p < 1.f) {
    // Smallest set of most likely tokens whose mass reaches top_p.
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return probs[a] > probs[b]; });
    double mass = 0;
    for (keep = 0; keep < order.size();) {
      mass += probs[order[keep++]];
      if (mass >= config.top_p) break;
    }
    total = mass;
  } else {
    total = 1.0;
  }
  double target = uniform01 * total, cumulative = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    cumulative += probs[order[i]];
    if (target < cumulative) return order[i];
  }
  return order[keep - 1];
}

std::vector<std::int64_t> generate(const Backbone& model, const std::vector<std::int64_t>& prompt, const GenerationConfig& config,
                                   ForwardHooks* hooks, const std::function<void(std::int64_t)>& on_token) {
  if (prompt.empty()) throw ConfigError("generate", "the prompt is empty", "start it with the BOS id (1)");
  if (config.temperature < 0.f) throw ConfigError("generate", fmt::format("temperature {} is negative", config.temperature));
  if (config.top_p <= 0.f || config.top_p > 1.f)
    throw ConfigError("generate", fmt::format("top_p {} is outside (0, 1]", config.top_p));
  NoGradGuard no_grad;
  std::mt19937_64 rng(config.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const std::unique_ptr<DecodingCache> cache = model.new_decoding_cache();
  std::vector<std::int64_t> out;
  Tensor input = Tensor::from_ints(prompt, {1, static_cast<std::int64_t>(prompt.size())});
  const std::int64_t budget = std::min<std::int64_t>(config.max_new_tokens, model.info().max_positions - static_cast<std::int64_t>(prompt.size()));
  for (std::int64_t step = 0; step < budget; ++step) {
    Tensor hidden = model.forward_cached(input, *cache, hooks);
    Tensor last = ops::slice(hidden, 1, hidden.dim(1) - 1, 1);
    const std::int64_t next = pick_next(model.lm_logits(last).to_floats(), config, uniform(rng));
    if (std::find(config.stop_ids.begin(), config.stop_ids.end(), next) != config.stop_ids.end()) break;
    out.push_back(next);
    if (on_token) on_token(next);
    input = Tensor::from_ints({next}, {1, 1});
  }
  return out;
}

}  // namespace graft::model
