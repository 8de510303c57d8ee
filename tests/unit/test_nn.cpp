// nn: parameter initialisation, AdamW (update, skipping, checkpoint/resume),
// learning-rate schedules against their closed forms, gradient clipping, and the
// ConfigError raised for each out-of-range setting.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "graft/error.h"
#include "graft/nn.h"
#include "graft/ops.h"
#include "nn/optim.h"

using namespace graft;
using namespace graft::nn;

namespace {

constexpr double kPi = 3.14159265358979323846;

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// A small quadratic problem: loss = mean((x Wᵀ + b - t)²), fixed data.
struct Problem {
  std::vector<NamedParameter> params{{"w", parameter({3, 4}, 0.5f, 1)}, {"b", zeros_parameter({3})}};
  Tensor x = Tensor::from_floats({0.1f, -0.2f, 0.3f, 0.4f, 1.f, 0.5f, -0.5f, 0.25f}, {2, 4});
  Tensor t = Tensor::from_floats({1.f, 0.f, -1.f, 0.5f, 0.5f, 0.5f}, {2, 3});
  float backward() const {
    Tensor loss = ops::mse(ops::linear(x, params[0].tensor, params[1].tensor), t);
    loss.backward();
    return loss.item();
  }
};

template <class F>
void expect_config_error(F&& f, const std::string& key) {
  try {
    f();
    ADD_FAILURE() << "no ConfigError for " << key;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty()) << "no accepted range for " << key;
  }
}

}  // namespace

TEST(Parameter, SeededInitIsDeterministicAndHasTheAskedSpread) {
  Tensor a = parameter({64, 64}, 0.02f, 7), b = parameter({64, 64}, 0.02f, 7), c = parameter({64, 64}, 0.02f, 8);
  EXPECT_TRUE(a.requires_grad());
  EXPECT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(a.to_floats(), b.to_floats());
  EXPECT_NE(a.to_floats(), c.to_floats());
  const auto v = a.to_floats();
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  const double sd = l2(v) / std::sqrt(static_cast<double>(v.size()));
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(sd, 0.02, 0.001);

  const auto u = uniform_parameter({1000}, 0.5f, 3).to_floats();
  for (float x : u) ASSERT_TRUE(x >= -0.5f && x < 0.5f) << x;
  EXPECT_NEAR(l2(u) / std::sqrt(1000.0), 0.5 / std::sqrt(3.0), 0.02);  // sd of U(-b, b)

  EXPECT_EQ(zeros_parameter({2, 2}).to_floats(), std::vector<float>(4, 0.f));
  EXPECT_EQ(ones_parameter({3}).to_floats(), std::vector<float>(3, 1.f));
  EXPECT_TRUE(ones_parameter({3}).requires_grad());
  expect_config_error([] { parameter({2}, -1.f, 0); }, "init_std");
  expect_config_error([] { uniform_parameter({2}, -1.f, 0); }, "bound");
}

TEST(AdamW, FirstStepMatchesTheClosedForm) {
  // After one step m̂ = g and v̂ = g², so p ← p(1 - lr·wd) - lr·g/(|g| + eps).
  Tensor p = Tensor::from_floats({1.f, -2.f, 0.5f}, {3});
  p.set_requires_grad(true);
  p.set_grad(Tensor::from_floats({0.1f, -0.3f, 0.f}, {3}));
  AdamW opt({{"p", p}}, {.lr = 0.1f, .weight_decay = 0.5f});
  opt.step();
  const auto v = p.to_floats();
  EXPECT_NEAR(v[0], 1.f * 0.95f - 0.1f, 1e-6);
  EXPECT_NEAR(v[1], -2.f * 0.95f + 0.1f, 1e-6);
  EXPECT_NEAR(v[2], 0.5f * 0.95f, 1e-6);  // zero grad: only the decay
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor a = ones_parameter({2}), b = ones_parameter({2});
  a.set_grad(Tensor::full({2}, 1.f));
  AdamW opt({{"a", a}, {"b", b}});
  opt.step();
  EXPECT_NE(a.to_floats(), std::vector<float>(2, 1.f));
  EXPECT_EQ(b.to_floats(), std::vector<float>(2, 1.f));  // not even weight decay
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  const auto state = opt.state();
  for (const auto& e : state)
    if (e.name == "b.step") EXPECT_EQ(e.tensor.to_ints().at(0), 0);
    else if (e.name == "a.step") EXPECT_EQ(e.tensor.to_ints().at(0), 1);
}

TEST(AdamW, ResumingFromSavedStateReproducesTheRun) {
  Problem straight, resumed;
  AdamW opt_a(straight.params, {.lr = 0.05f});
  for (int i = 0; i < 6; ++i) {
    opt_a.zero_grad();
    straight.backward();
    opt_a.step();
  }
  // Run 3 steps, checkpoint (parameters + state), restore into a fresh optimiser.
  std::vector<NamedParameter> saved_params, saved_state;
  {
    AdamW opt_b(resumed.params, {.lr = 0.05f});
    for (int i = 0; i < 3; ++i) {
      opt_b.zero_grad();
      resumed.backward();
      opt_b.step();
    }
    saved_state = opt_b.state();
    for (auto& p : resumed.params) saved_params.push_back({p.name, p.tensor.clone()});
  }
  Problem fresh;
  for (std::size_t i = 0; i < fresh.params.size(); ++i) {
    auto v = saved_params[i].tensor.to_floats();
    std::copy(v.begin(), v.end(), fresh.params[i].tensor.data<float>());
  }
  AdamW opt_c(fresh.params, {.lr = 0.05f});
  opt_c.load_state(saved_state);
  EXPECT_EQ(opt_c.step_count(), 3);
  for (int i = 0; i < 3; ++i) {
    opt_c.zero_grad();
    fresh.backward();
    opt_c.step();
  }
  for (std::size_t i = 0; i < fresh.params.size(); ++i)
    EXPECT_EQ(fresh.params[i].tensor.to_floats(), straight.params[i].tensor.to_floats()) << fresh.params[i].name;
}

TEST(AdamW, Bf16ParametersStepTheirF32MasterCopyAndTakeItsRounding) {
  // Steps far below bf16's resolution at 1.0 (2^-7): a bf16 weight updated in place
  // would never move; its master accumulates them as an f32 weight does.
  const std::vector<float> start{1.f, -1.f, 0.5f, 2.f};
  Tensor f32 = Tensor::from_floats(start, {4});
  Tensor bf16 = ops::to_dtype(Tensor::from_floats(start, {4}), DType::bf16);  // exact in bf16
  f32.set_requires_grad(true);
  bf16.set_requires_grad(true);
  AdamW a({{"p", f32}}, {.lr = 2e-4f, .weight_decay = 0.f}), b({{"p", bf16}}, {.lr = 2e-4f, .weight_decay = 0.f});
  const Tensor g = Tensor::from_floats({1.f, -1.f, 0.25f, 0.f}, {4});
  for (int i = 0; i < 40; ++i) {
    f32.set_grad(g.clone());
    bf16.set_grad(g.clone());
    a.step();
    b.step();
  }
  ASSERT_EQ(bf16.dtype(), DType::bf16);
  const auto exact = f32.to_floats(), rounded = bf16.to_floats();
  std::vector<float> master;
  for (const auto& e : b.state())
    if (e.name == "p.master") master = e.tensor.to_floats();
  EXPECT_EQ(master, exact) << "the master follows the f32 run bit for bit";
  for (std::size_t k = 0; k < exact.size(); ++k) EXPECT_EQ(rounded[k], bf16_to_f32(f32_to_bf16(exact[k])));
  EXPECT_NE(rounded[0], 1.f) << "40 steps of 2e-4 moved the weight past half a bf16 step";
  EXPECT_EQ(rounded[3], 2.f);  // no gradient, no decay: unchanged

  // The master travels with the optimiser state: a resumed run continues from it.
  Tensor resumed = ops::to_dtype(Tensor::from_floats(rounded, {4}), DType::bf16);
  resumed.set_requires_grad(true);
  AdamW c({{"p", resumed}}, {.lr = 2e-4f, .weight_decay = 0.f});
  c.load_state(b.state());
  f32.set_grad(g.clone());
  bf16.set_grad(g.clone());
  resumed.set_grad(g.clone());
  a.step();
  b.step();
  c.step();
  EXPECT_EQ(resumed.to_floats(), bf16.to_floats());
  auto state = b.state();
  std::erase_if(state, [](const NamedParameter& e) { return e.name == "p.master"; });
  EXPECT_THROW(c.load_state(state), FormatError) << "a bf16 parameter's state needs its master";
}

TEST(AdamW, LoadStateRejectsMismatchedCheckpoints) {
  Problem pr;
  AdamW opt(pr.params);
  auto state = opt.state();
  auto missing = state;
  missing.pop_back();
  EXPECT_THROW(opt.load_state(missing), FormatError);
  auto wrong = state;
  for (auto& e : wrong)
    if (e.name == "w.exp_avg") e.tensor = Tensor::zeros({4, 3});
  EXPECT_THROW(opt.load_state(wrong), FormatError);
}

TEST(AdamW, ConfigErrors) {
  auto make = [](AdamWConfig c) { return [c] { AdamW({}, c); }; };
  expect_config_error(make({.lr = 0.f}), "lr");
  expect_config_error(make({.lr = -1e-3f}), "lr");
  expect_config_error(make({.beta1 = 1.f}), "beta1");
  expect_config_error(make({.beta1 = -0.1f}), "beta1");
  expect_config_error(make({.beta2 = 1.5f}), "beta2");
  expect_config_error(make({.eps = 0.f}), "eps");
  expect_config_error(make({.weight_decay = -0.01f}), "weight_decay");
  AdamW ok({});
  expect_config_error([&] { ok.set_lr(-1.f); }, "lr");
  ok.set_lr(0.f);  // warm-up starts at 0
  Tensor p = ones_parameter({1});
  EXPECT_THROW(AdamW({{"p", p}, {"p", p}}), ConfigError);
}

TEST(LrSchedule, LinearWarmupThenLinearDecay) {
  LrSchedule s({.peak_lr = 1e-3f, .warmup_steps = 10, .total_steps = 110});
  EXPECT_FLOAT_EQ(s.lr_at(0), 0.f);
  EXPECT_FLOAT_EQ(s.lr_at(5), 0.5e-3f);
  EXPECT_FLOAT_EQ(s.lr_at(10), 1e-3f);
  EXPECT_FLOAT_EQ(s.lr_at(60), 0.5e-3f);  // (110 - 60) / 100
  EXPECT_FLOAT_EQ(s.lr_at(85), 0.25e-3f);
  EXPECT_FLOAT_EQ(s.lr_at(110), 0.f);
  EXPECT_FLOAT_EQ(s.lr_at(500), 0.f);
  LrSchedule floor({.peak_lr = 2e-3f, .warmup_steps = 0, .total_steps = 100, .min_lr_ratio = 0.1f});
  EXPECT_FLOAT_EQ(floor.lr_at(0), 2e-3f);
  EXPECT_FLOAT_EQ(floor.lr_at(50), 2e-3f * (0.1f + 0.9f * 0.5f));
  EXPECT_FLOAT_EQ(floor.lr_at(100), 2e-4f);
  EXPECT_FLOAT_EQ(floor.lr_at(1000), 2e-4f);
}

TEST(LrSchedule, CosineAndConstant) {
  LrSchedule s({.peak_lr = 1e-3f, .warmup_steps = 4, .total_steps = 104, .decay = ScheduleConfig::Decay::cosine});
  EXPECT_FLOAT_EQ(s.lr_at(2), 0.5e-3f);
  EXPECT_FLOAT_EQ(s.lr_at(4), 1e-3f);
  for (std::int64_t step : {4, 20, 54, 79, 103, 104}) {
    const double progress = (step - 4) / 100.0;
    EXPECT_FLOAT_EQ(s.lr_at(step), static_cast<float>(1e-3 * 0.5 * (1 + std::cos(kPi * progress)))) << step;
  }
  EXPECT_FLOAT_EQ(s.lr_at(54), 0.5e-3f);
  EXPECT_NEAR(s.lr_at(200), 0.f, 1e-12);  // stays at the floor, no second cycle
  LrSchedule m({.peak_lr = 1e-3f, .warmup_steps = 0, .total_steps = 10, .decay = ScheduleConfig::Decay::cosine,
                .min_lr_ratio = 0.2f});
  EXPECT_FLOAT_EQ(m.lr_at(5), 1e-3f * (0.2f + 0.8f * 0.5f));
  EXPECT_FLOAT_EQ(m.lr_at(10), 2e-4f);
  LrSchedule c({.peak_lr = 3e-4f, .warmup_steps = 3, .total_steps = 3, .decay = ScheduleConfig::Decay::constant});
  EXPECT_FLOAT_EQ(c.lr_at(1), 1e-4f);
  EXPECT_FLOAT_EQ(c.lr_at(3), 3e-4f);
  EXPECT_FLOAT_EQ(c.lr_at(1000000), 3e-4f);
}

TEST(LrSchedule, ConfigErrors) {
  auto make = [](ScheduleConfig c) { return [c] { LrSchedule s(c); }; };
  expect_config_error(make({.peak_lr = 0.f, .total_steps = 10}), "peak_lr");
  expect_config_error(make({.warmup_steps = -1, .total_steps = 10}), "warmup_steps");
  expect_config_error(make({.warmup_steps = 20, .total_steps = 10}), "total_steps");
  expect_config_error(make({.total_steps = 10, .min_lr_ratio = 1.5f}), "min_lr_ratio");
  expect_config_error(make({.total_steps = 10, .min_lr_ratio = -0.1f}), "min_lr_ratio");
}

TEST(ClipGradNorm, ScalesToMaxNormAndReturnsTheNormBefore) {
  Tensor a = zeros_parameter({2}), b = zeros_parameter({2}), c = zeros_parameter({3});
  a.set_grad(Tensor::from_floats({3.f, 0.f}, {2}));
  b.set_grad(Tensor::from_floats({0.f, 4.f}, {2}));  // c has no grad: ignored
  std::vector<NamedParameter> params{{"a", a}, {"b", b}, {"c", c}};
  EXPECT_FLOAT_EQ(clip_grad_norm(params, 1.f), 5.f);
  std::vector<float> all = a.grad().to_floats();
  for (float v : b.grad().to_floats()) all.push_back(v);
  EXPECT_NEAR(l2(all), 1.0, 1e-6);
  EXPECT_NEAR(a.grad().to_floats()[0], 0.6f, 1e-6);
  // Below the limit: untouched.
  EXPECT_NEAR(clip_grad_norm(params, 10.f), 1.f, 1e-6);
  EXPECT_NEAR(a.grad().to_floats()[0], 0.6f, 1e-6);
  EXPECT_FALSE(c.grad().defined());
  expect_config_error([&] { clip_grad_norm(params, 0.f); }, "max_norm");
}

TEST(ClipGradNorm, ClippedTrainingStillDescends) {
  Problem pr;
  AdamW opt(pr.params, {.lr = 0.05f});
  float first = 0, last = 0;
  for (int i = 0; i < 30; ++i) {
    opt.zero_grad();
    last = pr.backward();
    if (i == 0) first = last;
    clip_grad_norm(pr.params, 0.1f);
    opt.step();
  }
  EXPECT_LT(last, first * 0.5f);
}
