#include "nn/optim.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "graft/error.h"
#include "tensor/bf16_rounding.h"

namespace graft::nn {
namespace {

constexpr double kPi = 3.14159265358979323846;

void check(bool ok, const char* component, const char* key, double value, const char* range) {
  if (!ok)
    throw ConfigError(component, fmt::format("{} = {} is out of range", key, value), fmt::format("{} accepts {}", key, range));
}

bool finite(double v) { return std::isfinite(v); }

// A gradient as f32 values: the f32 tensor itself, or an f32 copy of a bf16 one.
Tensor f32_grad(const Tensor& param) {
  Tensor g = param.grad();
  if (!g.defined() || g.dtype() == DType::f32) return g;
  return Tensor::from_floats(g.to_floats(), g.shape());
}

Tensor scalar_i64(std::int64_t v) { return Tensor::from_ints({v}, {}); }

// Writes f32 `master` into the bf16 tensor `param` of the same shape, rounded to nearest even.
void round_into(const Tensor& master, Tensor& param) {
  narrow_to_bf16(master.data<float>(), param.data<std::uint16_t>(), master.numel());
}

}  // namespace

void validate(const AdamWConfig& c) {
  check(finite(c.lr) && c.lr > 0, "adamw", "lr", c.lr, "a finite value > 0");
  check(c.beta1 >= 0 && c.beta1 < 1, "adamw", "beta1", c.beta1, "[0, 1)");
  check(c.beta2 >= 0 && c.beta2 < 1, "adamw", "beta2", c.beta2, "[0, 1)");
  check(finite(c.eps) && c.eps > 0, "adamw", "eps", c.eps, "a finite value > 0");
  check(finite(c.weight_decay) && c.weight_decay >= 0, "adamw", "weight_decay", c.weight_decay, "a finite value >= 0");
}

AdamW::AdamW(std::vector<NamedParameter> parameters, AdamWConfig config)
    : parameters_(std::move(parameters)), config_(config) {
  validate(config_);
  std::set<std::string> names;
  for (const auto& p : parameters_) {
    if (!p.tensor.defined() || (p.tensor.dtype() != DType::f32 && p.tensor.dtype() != DType::bf16))
      throw ShapeError("adamw", fmt::format("parameter '{}' is {}", p.name, p.tensor.defined() ? dtype_name(p.tensor.dtype()) : "undefined"),
                       "AdamW optimises f32 and bf16 parameters");
    if (!names.insert(p.name).second)
      throw ConfigError("adamw", fmt::format("parameter name '{}' appears twice", p.name), "names key the optimiser state");
    const bool bf16 = p.tensor.dtype() == DType::bf16;
    moments_.push_back({Tensor::zeros(p.tensor.shape()), Tensor::zeros(p.tensor.shape()), 0,
                        bf16 ? Tensor::from_floats(p.tensor.to_floats(), p.tensor.shape()) : Tensor()});
  }
}

void AdamW::set_lr(float lr) { check(finite(lr) && lr >= 0, "adamw", "lr", lr, "a finite value >= 0"); config_.lr = lr; }

void AdamW::step() {
  ++steps_;
  // Scalars in double then rounded to f32, as PyTorch turns Python floats into the
  // scalar arguments of its f32 kernels.
  const double lr = config_.lr, beta1 = config_.beta1, beta2 = config_.beta2;
  const float decay = static_cast<float>(1.0 - lr * config_.weight_decay);
  const float b1 = config_.beta1, one_minus_b1 = static_cast<float>(1.0 - beta1);
  const float b2 = config_.beta2, one_minus_b2 = static_cast<float>(1.0 - beta2);
  const float eps = config_.eps;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor g = f32_grad(parameters_[i].tensor);
    if (!g.defined()) continue;
    if (g.shape() != parameters_[i].tensor.shape())
      throw ShapeError("adamw", fmt::format("gradient of '{}' has shape {}, the parameter {}", parameters_[i].name,
                                            shape_str(g.shape()), shape_str(parameters_[i].tensor.shape())));
    Moments& m = moments_[i];
    const auto t = static_cast<double>(++m.steps);
    const float step_size = static_cast<float>(-lr / (1.0 - std::pow(beta1, t)));
    const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
    // A bf16 parameter steps its f32 master copy, then takes the master's rounding.
    float* p = m.master.defined() ? m.master.data<float>() : parameters_[i].tensor.data<float>();
    float *ea = m.exp_avg.data<float>(), *eas = m.exp_avg_sq.data<float>();
    const float* gp = g.data<float>();
    const std::int64_t n = g.numel();
#pragma omp parallel for simd if (n > 32768)
    for (std::int64_t k = 0; k < n; ++k) {
      p[k] *= decay;
      ea[k] = ea[k] * b1 + gp[k] * one_minus_b1;
      eas[k] = eas[k] * b2 + gp[k] * gp[k] * one_minus_b2;
      const float denom = std::sqrt(eas[k]) / bc2_sqrt + eps;
      p[k] += step_size * (ea[k] / denom);
    }
    if (m.master.defined()) round_into(m.master, parameters_[i].tensor);
  }
}

void AdamW::zero_grad() {
  for (auto& p : parameters_) p.tensor.zero_grad();
}

std::vector<NamedParameter> AdamW::state() const {
  std::vector<NamedParameter> out{{"step", scalar_i64(steps_)}};
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const std::string& name = parameters_[i].name;
    out.push_back({name + ".exp_avg", moments_[i].exp_avg.clone()});
    out.push_back({name + ".exp_avg_sq", moments_[i].exp_avg_sq.clone()});
    out.push_back({name + ".step", scalar_i64(moments_[i].steps)});
    if (moments_[i].master.defined()) out.push_back({name + ".master", moments_[i].master.clone()});
  }
  return out;
}

void AdamW::load_state(const std::vector<NamedParameter>& state) {
  std::map<std::string, Tensor> by_name;
  for (const auto& e : state) by_name[e.name] = e.tensor;
  auto find = [&](const std::string& name, const Shape& shape) {
    auto it = by_name.find(name);
    if (it == by_name.end() || !it->second.defined())
      throw FormatError("adamw", fmt::format("optimiser state has no entry '{}'", name),
                        "the checkpoint was written for other parameters");
    if (it->second.shape() != shape)
      throw FormatError("adamw", fmt::format("optimiser state '{}' has shape {}, expected {}", name,
                                             shape_str(it->second.shape()), shape_str(shape)));
    return it->second;
  };
  auto count = [&](const std::string& name) {
    const std::int64_t v = find(name, {}).to_ints().at(0);
    if (v < 0) throw FormatError("adamw", fmt::format("optimiser state '{}' is negative ({})", name, v));
    return v;
  };
  // Validate everything before changing anything: a bad checkpoint leaves us intact.
  std::vector<Moments> loaded;
  for (const auto& p : parameters_) {
    const Shape& shape = p.tensor.shape();
    auto copy = [&](const std::string& name) { return Tensor::from_floats(find(name, shape).to_floats(), shape); };
    loaded.push_back({copy(p.name + ".exp_avg"), copy(p.name + ".exp_avg_sq"), count(p.name + ".step"),
                      p.tensor.dtype() == DType::bf16 ? copy(p.name + ".master") : Tensor()});
  }
  steps_ = count("step");
  moments_ = std::move(loaded);
  for (std::size_t i = 0; i < parameters_.size(); ++i)
    if (moments_[i].master.defined()) round_into(moments_[i].master, parameters_[i].tensor);
}

void validate(const ScheduleConfig& c) {
  check(finite(c.peak_lr) && c.peak_lr > 0, "schedule", "peak_lr", c.peak_lr, "a finite value > 0");
  check(c.warmup_steps >= 0, "schedule", "warmup_steps", static_cast<double>(c.warmup_steps), "an integer >= 0");
  check(c.total_steps >= c.warmup_steps, "schedule", "total_steps", static_cast<double>(c.total_steps),
        "an integer >= warmup_steps");
  check(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1, "schedule", "min_lr_ratio", c.min_lr_ratio, "[0, 1]");
}

LrSchedule::LrSchedule(ScheduleConfig config) : config_(config) { validate(config_); }

float LrSchedule::lr_at(std::int64_t step) const {
  const auto& c = config_;
  step = std::max<std::int64_t>(step, 0);
  double factor;
  if (step < c.warmup_steps) {
    factor = static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, c.warmup_steps));
  } else if (c.decay == ScheduleConfig::Decay::constant) {
    factor = 1.0;
  } else {
    const double span = static_cast<double>(std::max<std::int64_t>(1, c.total_steps - c.warmup_steps));
    const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
    const double shape = c.decay == ScheduleConfig::Decay::linear ? 1.0 - progress : 0.5 * (1.0 + std::cos(kPi * progress));
    factor = c.min_lr_ratio + (1.0 - c.min_lr_ratio) * shape;
  }
  return static_cast<float>(c.peak_lr * factor);
}

float clip_grad_norm(std::vector<NamedParameter>& parameters, float max_norm) {
  check(finite(max_norm) && max_norm > 0, "clip_grad_norm", "max_norm", max_norm, "a finite value > 0");
  double sum_sq = 0;
  for (const auto& p : parameters) {
    const Tensor g = f32_grad(p.tensor);
    if (!g.defined()) continue;
    const float* gp = g.data<float>();
    const std::int64_t n = g.numel();
#pragma omp parallel for reduction(+ : sum_sq) if (n > 32768)
    for (std::int64_t k = 0; k < n; ++k) sum_sq += static_cast<double>(gp[k]) * gp[k];
  }
  const double norm = std::sqrt(sum_sq);
  const double coef = max_norm / (norm + 1e-6);
  if (!std::isfinite(norm) || coef >= 1.0) return static_cast<float>(norm);
  for (auto& p : parameters) {
    Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    if (g.dtype() != DType::f32) {  // a bf16 grad is replaced by its scaled f32 copy
      g = f32_grad(p.tensor);
      p.tensor.set_grad(g);
    }
    float* gp = g.data<float>();
    const std::int64_t n = g.numel();
    const auto c = static_cast<float>(coef);
#pragma omp parallel for simd if (n > 32768)
    for (std::int64_t k = 0; k < n; ++k) gp[k] *= c;
  }
  return static_cast<float>(norm);
}

}  // namespace graft::nn
