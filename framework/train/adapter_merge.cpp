#include "train/adapter_merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "graft/error.h"
#include "graft/init.h"

namespace graft {
using nlohmann::json;

const std::vector<std::string>& merge_combinations() {
  static const std::vector<std::string> names = {"linear",        "cat",           "svd",
                                                 "ties",          "ties_svd",      "dare_linear",
                                                 "dare_linear_svd", "dare_ties",   "dare_ties_svd",
                                                 "magnitude_prune", "magnitude_prune_svd", "average"};
  return names;
}

namespace {

constexpr const char* kA = ".lora_A.weight";
constexpr const char* kB = ".lora_B.weight";
constexpr const char* kMagnitude = ".lora_magnitude_vector";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What PEFT's merge_utils does to one set of task tensors (one per input), given as
// doubles: the combination without its "_svd" suffix.
enum class Family { linear, ties, dare_linear, dare_ties, magnitude_prune };

struct Plan {
  Family family = Family::linear;
  bool cat = false, svd = false;
  bool needs_density() const { return family != Family::linear; }
  bool dare() const { return family == Family::dare_linear || family == Family::dare_ties; }
  bool ties() const { return family == Family::ties || family == Family::dare_ties; }
};

Plan plan_of(const std::string& combination) {
  Plan p;
  std::string base = combination;
  if (combination == "cat") {
    p.cat = true;
    return p;
  }
  if (combination == "svd") {
    p.svd = true;
    return p;
  }
  if (ends_with(base, "_svd")) {
    p.svd = true;
    base = base.substr(0, base.size() - 4);
  }
  if (base == "linear") p.family = Family::linear;
  else if (base == "ties") p.family = Family::ties;
  else if (base == "dare_linear") p.family = Family::dare_linear;
  else if (base == "dare_ties") p.family = Family::dare_ties;
  else if (base == "magnitude_prune") p.family = Family::magnitude_prune;
  else throw std::logic_error("plan_of: " + combination);
  return p;
}

std::vector<double> doubles_of(const Tensor& t) {
  const std::vector<float> f = t.to_floats();
  return {f.begin(), f.end()};
}

Tensor tensor_of(const std::vector<double>& values, const Shape& shape) {
  return Tensor::from_floats(std::vector<float>(values.begin(), values.end()), shape);
}

// FNV-1a: a hash of the names that is the same on every platform (std::hash is not).
std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// graft's own DARE mask: Bernoulli(density) from a stream of the seed, the adapter and
// the tensor (so one input's masks do not depend on the order of the others).
std::vector<float> own_mask(std::uint64_t seed, const std::string& adapter, const std::string& tensor, std::size_t n,
                            double density) {
  std::mt19937_64 rng(init_stream(seed, fnv1a(tensor, fnv1a(adapter + '\0'))));
  std::vector<float> mask(n);
  for (float& m : mask) m = static_cast<double>(rng() >> 11) * 0x1.0p-53 < density ? 1.f : 0.f;
  return mask;
}

struct Task {
  const std::string* adapter;
  std::vector<double> values;
};

// merge_utils.prune: magnitude keeps the int(density·n) largest |values| (torch.topk);
// random multiplies by a Bernoulli mask (and divides by density when rescaling). A
// density of 1 (or more) leaves the tensor as it is, as PEFT does.
void prune(std::vector<double>& t, Family family, const std::string& adapter, const std::string& tensor,
           const MergeOptions& o) {
  const double density = *o.density;
  if (density >= 1) return;
  if (family == Family::ties || family == Family::magnitude_prune) {
    const std::size_t k = static_cast<std::size_t>(density * static_cast<double>(t.size()));
    std::vector<std::size_t> order(t.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return std::fabs(t[a]) > std::fabs(t[b]); });
    for (std::size_t i = k; i < order.size(); ++i) t[order[i]] = 0;
    return;
  }
  const std::vector<float> mask = o.dare_mask ? o.dare_mask(adapter, tensor, t.size()) : own_mask(o.seed, adapter, tensor, t.size(), density);
  if (mask.size() != t.size())
    throw ConfigError("merge", fmt::format("the DARE mask for '{}' of '{}' has {} values, the tensor {}", tensor, adapter,
                                           mask.size(), t.size()));
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = t[i] * mask[i] / (o.dare_rescale ? density : 1.0);
}

// task_arithmetic / ties / dare_linear / dare_ties / magnitude_prune of merge_utils.py.
std::vector<double> combine(Family family, std::vector<Task> tasks, const std::vector<double>& weights, const std::string& tensor,
                            const MergeOptions& o) {
  if (family != Family::linear)
    for (Task& t : tasks) prune(t.values, family, *t.adapter, tensor, o);
  const std::size_t n = tasks.front().values.size();
  std::vector<double> out(n, 0.0);
  if (family != Family::ties && family != Family::dare_ties) {
    for (std::size_t i = 0; i < tasks.size(); ++i)
      for (std::size_t j = 0; j < n; ++j) out[j] += weights[i] * tasks[i].values[j];
    return out;
  }
  // calculate_majority_sign_mask on the pruned (unweighted) tensors, then disjoint_merge
  // of the weighted ones: the mean over the inputs whose sign is the majority's.
  auto sign = [](double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); };
  const bool total = o.majority_sign == "total";
  for (std::size_t j = 0; j < n; ++j) {
    double magnitude = 0;
    for (const Task& t : tasks) magnitude += total ? t.values[j] : sign(t.values[j]);
    const double majority = magnitude >= 0 ? 1.0 : -1.0;
    double sum = 0, kept = 0;
    for (std::size_t i = 0; i < tasks.size(); ++i)
      if (sign(tasks[i].values[j]) == majority) {
        sum += weights[i] * tasks[i].values[j];
        kept += 1;
      }
    out[j] = sum / std::max(kept, 1.0);
  }
  return out;
}

json parse_config(const MergeSource& s) {
  try {
    return s.config_json.empty() ? json::object() : json::parse(s.config_json);
  } catch (const json::exception& e) {
    throw FormatError("merge", fmt::format("adapter '{}': its config is not JSON: {}", s.name, e.what()));
  }
}

bool is_lora(const MergeSource& s, const json& config) {
  if (!config.contains("r") || !config.contains("lora_alpha") || s.tensors.empty()) return false;
  for (const auto& [key, t] : s.tensors)
    if (!ends_with(key, kA) && !ends_with(key, kB) && !ends_with(key, kMagnitude)) return false;
  return true;
}

// The modules (tensor names less ".lora_A.weight") of a LoRA adapter.
std::set<std::string> modules_of(const MergeSource& s) {
  std::set<std::string> out;
  for (const auto& [key, t] : s.tensors)
    if (ends_with(key, kA)) out.insert(key.substr(0, key.size() - std::string(kA).size()));
  return out;
}

const Tensor& tensor_at(const MergeSource& s, const std::string& key) {
  auto it = s.tensors.find(key);
  if (it == s.tensors.end())
    throw FormatError("merge", fmt::format("adapter '{}' has no tensor '{}'", s.name, key),
                      "its folder is incomplete: save or train it again");
  return it->second;
}

// The first key where two configs differ ("" when equal), for the refusal's message.
std::string first_difference(const json& a, const json& b) {
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b.at(it.key()) != *it) return it.key();
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) return it.key();
  return "";
}

void check_same_tensors(const MergeSource& a, const MergeSource& b) {
  for (const auto& [key, t] : a.tensors) {
    auto it = b.tensors.find(key);
    if (it == b.tensors.end())
      throw ConfigError("merge", fmt::format("adapters '{}' and '{}' adapt different sites: '{}' has tensor '{}', '{}' has not",
                                             a.name, b.name, a.name, key, b.name),
                        "merge adapters trained with the same target_modules and layers_to_transform");
    if (it->second.shape() != t.shape())
      throw ConfigError("merge", fmt::format("adapters '{}' and '{}' differ in shape at tensor '{}': {} in '{}', {} in '{}'",
                                             a.name, b.name, key, shape_str(t.shape()), a.name, shape_str(it->second.shape()),
                                             b.name),
                        "only adapters of one shape (the same config) can be averaged");
  }
  for (const auto& [key, t] : b.tensors)
    if (!a.tensors.count(key))
      throw ConfigError("merge", fmt::format("adapters '{}' and '{}' adapt different sites: '{}' has tensor '{}', '{}' has not",
                                             a.name, b.name, b.name, key, a.name),
                        "merge adapters trained with the same target_modules and layers_to_transform");
}

// AdapterHub names its tensors after the adapter ("….adapters.NAME.adapter_down…"):
// `s` with its keys named after `name` instead, so the inputs' keys meet.
MergeSource renamed(const MergeSource& s, const std::string& name) {
  MergeSource out{s.name, s.method, s.config_json, {}, s.weight};
  const std::string from = ".adapters." + s.name + ".", to = ".adapters." + name + ".";
  for (const auto& [key, t] : s.tensors) {
    std::string k = key;
    if (const auto at = k.find(from); at != std::string::npos) k.replace(at, from.size(), to);
    out.tensors.emplace(std::move(k), t);
  }
  return out;
}

// AdapterHub's average_adapter: the weights normalised to sum 1.
MergeResult average(const std::vector<MergeSource>& given, const std::vector<json>& configs) {
  std::vector<MergeSource> sources;
  for (const auto& s : given) sources.push_back(renamed(s, given.front().name));
  const MergeSource& first = sources.front();
  for (std::size_t i = 1; i < sources.size(); ++i) {
    check_same_tensors(first, sources[i]);
    if (const std::string key = first_difference(configs[0], configs[i]); !key.empty())
      throw ConfigError("merge",
                        fmt::format("adapters '{}' and '{}' differ in their config at '{}': {} in '{}', {} in '{}'", first.name,
                                    sources[i].name, key, configs[0].value(key, json()).dump(), first.name,
                                    configs[i].value(key, json()).dump(), sources[i].name),
                        "averaging needs adapters of one shape: the same method and config");
  }
  double total = 0;
  for (const auto& s : sources) total += s.weight;
  if (std::fabs(total) < 1e-12)
    throw ConfigError("merge", "the weights sum to 0: averaging divides by their sum", "give weights such as 0.5,0.5");
  MergeResult out{first.method, first.config_json, {}, false};
  for (const auto& [key, t] : first.tensors) {
    std::vector<double> sum(static_cast<std::size_t>(t.numel()), 0.0);
    for (const auto& s : sources) {
      const std::vector<double> v = doubles_of(s.tensors.at(key));
      for (std::size_t j = 0; j < v.size(); ++j) sum[j] += s.weight / total * v[j];
    }
    out.tensors.emplace(key, tensor_of(sum, t.shape()));
  }
  return out;
}

double lora_scaling(const json& config) {
  const double r = config.at("r").get<double>(), alpha = config.at("lora_alpha").get<double>();
  return config.value("use_rslora", false) ? alpha / std::sqrt(r) : alpha / r;
}

MergeResult merge_lora(const std::vector<MergeSource>& sources, const std::vector<json>& configs, const MergeOptions& o) {
  const Plan plan = plan_of(o.combination);
  const MergeSource& first = sources.front();
  const bool dora = configs[0].value("use_dora", false);
  std::vector<std::int64_t> ranks;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (configs[i].value("use_dora", false) != dora)
      throw ConfigError("merge",
                        fmt::format("'{}' is a {} adapter and '{}' a {} adapter", first.name, dora ? "DoRA" : "LoRA",
                                    sources[i].name, dora ? "LoRA" : "DoRA"),
                        "merge LoRA adapters with LoRA adapters and DoRA with DoRA");
    ranks.push_back(configs[i].at("r").get<std::int64_t>());
    if (i > 0) {
      const auto a = modules_of(first), b = modules_of(sources[i]);
      if (a != b) {
        std::vector<std::string> only;
        std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only));
        throw ConfigError("merge",
                          fmt::format("adapters '{}' and '{}' adapt different sites: '{}' is in {} only", first.name, sources[i].name,
                                      only.front(), a.count(only.front()) ? first.name : sources[i].name),
                          "merge adapters trained with the same target_modules and layers_to_transform");
      }
    }
  }
  if (!plan.cat && !plan.svd)
    for (std::size_t i = 1; i < sources.size(); ++i)
      if (ranks[i] != ranks[0])
        throw ConfigError("merge",
                          fmt::format("{} needs adapters of one rank: '{}' has r={}, '{}' r={}", o.combination, first.name,
                                      ranks[0], sources[i].name, ranks[i]),
                          "combine adapters of different ranks with cat or svd");
  std::int64_t new_rank = ranks[0];
  if (plan.cat) new_rank = std::accumulate(ranks.begin(), ranks.end(), std::int64_t{0});
  if (plan.svd) new_rank = o.svd_rank > 0 ? o.svd_rank : *std::max_element(ranks.begin(), ranks.end());
  if (!plan.svd && o.svd_rank > 0)
    throw ConfigError("merge", fmt::format("svd_rank is for the *svd combinations, not {}", o.combination),
                      "leave it out, or use --combine svd");

  std::vector<double> scalings;
  for (const json& c : configs) scalings.push_back(lora_scaling(c));
  MergeResult out{first.method, "", {}, dora};
  for (const std::string& module : modules_of(first)) {
    const std::string a_key = module + kA, b_key = module + kB;
    const Shape a_shape = tensor_at(first, a_key).shape(), b_shape = tensor_at(first, b_key).shape();
    const std::int64_t in = a_shape.at(1), out_features = b_shape.at(0);
    if (plan.cat) {
      // A: the inputs' A·weight·scaling stacked by rows; B: their B side by side.
      std::vector<double> A, B(static_cast<std::size_t>(out_features * new_rank), 0.0);
      std::int64_t offset = 0;
      for (std::size_t i = 0; i < sources.size(); ++i) {
        const std::vector<double> a = doubles_of(tensor_at(sources[i], a_key)), b = doubles_of(tensor_at(sources[i], b_key));
        for (const double v : a) A.push_back(v * sources[i].weight * scalings[i]);
        for (std::int64_t row = 0; row < out_features; ++row)
          for (std::int64_t k = 0; k < ranks[i]; ++k)
            B[static_cast<std::size_t>(row * new_rank + offset + k)] = b[static_cast<std::size_t>(row * ranks[i] + k)];
        offset += ranks[i];
      }
      out.tensors.emplace(a_key, tensor_of(A, {new_rank, in}));
      out.tensors.emplace(b_key, tensor_of(B, {out_features, new_rank}));
    } else if (plan.svd) {
      // The inputs' delta weights B·A·scaling, combined with weight·scaling (PEFT 0.10.0
      // scales twice here), then the best rank-new_rank factors: B = U·S, A = Vh.
      if (new_rank > std::min(in, out_features))
        throw ConfigError("merge", fmt::format("svd rank {} exceeds what {} [{} x {}] can hold ({})", new_rank, module,
                                               out_features, in, std::min(in, out_features)),
                          "give --svd-rank at most the smaller side of the adapted weights");
      std::vector<Task> tasks;
      std::vector<double> weights;
      for (std::size_t i = 0; i < sources.size(); ++i) {
        const std::vector<double> a = doubles_of(tensor_at(sources[i], a_key)), b = doubles_of(tensor_at(sources[i], b_key));
        std::vector<double> delta(static_cast<std::size_t>(out_features * in), 0.0);
        for (std::int64_t row = 0; row < out_features; ++row)
          for (std::int64_t k = 0; k < ranks[i]; ++k) {
            const double bv = b[static_cast<std::size_t>(row * ranks[i] + k)] * scalings[i];
            for (std::int64_t col = 0; col < in; ++col)
              delta[static_cast<std::size_t>(row * in + col)] += bv * a[static_cast<std::size_t>(k * in + col)];
          }
        tasks.push_back({&sources[i].name, std::move(delta)});
        weights.push_back(sources[i].weight * scalings[i]);
      }
      const std::vector<double> merged = combine(plan.family, std::move(tasks), weights, module + ".delta_weight", o);
      std::vector<double> us, vh;
      truncated_svd(merged, out_features, in, new_rank, us, vh);
      out.tensors.emplace(a_key, tensor_of(vh, {new_rank, in}));
      out.tensors.emplace(b_key, tensor_of(us, {out_features, new_rank}));
    } else {
      // A and B each combined with the weights √(weight·scaling).
      std::vector<double> weights;
      for (std::size_t i = 0; i < sources.size(); ++i) weights.push_back(std::sqrt(sources[i].weight * scalings[i]));
      for (const std::string& key : {a_key, b_key}) {
        std::vector<Task> tasks;
        for (const auto& s : sources) tasks.push_back({&s.name, doubles_of(tensor_at(s, key))});
        out.tensors.emplace(key, tensor_of(combine(plan.family, std::move(tasks), weights, key, o), tensor_at(first, key).shape()));
      }
    }
  }
  // PEFT: the first input's config with r = lora_alpha = the new rank. graft also writes
  // use_rslora false (scaling 1: the inputs' scalings are in the tensors) and the
  // default init (so DoRA's fresh magnitudes are the frozen rows' norms, as PEFT's).
  json config = configs[0];
  config["r"] = new_rank;
  config["lora_alpha"] = new_rank;
  config["use_rslora"] = false;
  config["init_lora_weights"] = true;
  out.config_json = config.dump();
  return out;
}

}  // namespace

MergeResult merge_adapter_tensors(const std::vector<MergeSource>& sources, const MergeOptions& o) {
  const auto& known = merge_combinations();
  if (std::find(known.begin(), known.end(), o.combination) == known.end())
    throw ConfigError("merge", fmt::format("unknown combination '{}'", o.combination),
                      fmt::format("use one of: {}", fmt::join(known, ", ")));
  if (sources.size() < 2)
    throw ConfigError("merge", fmt::format("merging needs at least two adapters, got {}", sources.size()),
                      "give --adapter NAME=DIR once per adapter");
  const bool average_asked = o.combination == "average";
  const Plan plan = average_asked ? Plan{} : plan_of(o.combination);
  const bool uses_density = !average_asked && plan.needs_density();
  if (uses_density && !o.density)
    throw ConfigError("merge", fmt::format("{} needs a density: the fraction of values it keeps", o.combination),
                      "give --density in (0, 1], e.g. 0.5");
  if (o.density && !uses_density)
    throw ConfigError("merge", fmt::format("{} takes no density", o.combination),
                      "density is for ties, dare_linear, dare_ties and magnitude_prune (and their _svd forms)");
  if (o.density && !(*o.density > 0 && *o.density <= 1))
    throw ConfigError("merge", fmt::format("density {} is outside (0, 1]", *o.density),
                      "it is the fraction of values kept: 0.5 keeps half");
  if (o.majority_sign != "total" && o.majority_sign != "frequency")
    throw ConfigError("merge", fmt::format("unknown majority sign method '{}'", o.majority_sign), "use total or frequency");
  std::vector<json> configs;
  for (const auto& s : sources) {
    configs.push_back(parse_config(s));
    if (!std::isfinite(s.weight))
      throw ConfigError("merge", fmt::format("adapter '{}': its weight is not a finite number", s.name));
  }
  for (std::size_t i = 1; i < sources.size(); ++i)
    if (sources[i].method != sources[0].method)
      throw ConfigError("merge",
                        fmt::format("'{}' is a {} adapter and '{}' a {} adapter: only adapters of one method merge",
                                    sources[0].name, sources[0].method, sources[i].name, sources[i].method),
                        "merge adapters of the same method");
  const bool lora = is_lora(sources[0], configs[0]);
  if (average_asked) {
    if (lora)
      throw ConfigError("merge",
                        fmt::format("'{}' is a LoRA adapter: average is for bottleneck adapters", sources[0].name),
                        "combine LoRA and DoRA adapters with linear, cat, svd, ties, dare_linear or dare_ties");
    return average(sources, configs);
  }
  if (!lora)
    throw ConfigError("merge",
                      fmt::format("'{}' is a {} adapter: {} combines LoRA and DoRA adapters", sources[0].name, sources[0].method,
                                  o.combination),
                      "bottleneck adapters of one shape merge with --combine average");
  if (!plan.cat && !plan.svd)
    for (std::size_t i = 0; i < sources.size(); ++i)
      if (sources[i].weight < 0)
        throw ConfigError("merge",
                          fmt::format("adapter '{}' has weight {}: {} scales A and B by sqrt(weight·scaling)", sources[i].name,
                                      sources[i].weight, o.combination),
                          "give weights >= 0, or use cat or svd, which take negative weights");
  return merge_lora(sources, configs, o);
}

}  // namespace graft
