// Optimisation: AdamW (PyTorch's update, bit for bit in its order of operations),
// learning-rate schedules (Hugging Face's warm-up + decay), global gradient clipping.
// oneDNN has no optimiser primitives: the updates are OpenMP loops over f32 values.
#pragma once
#include <cstdint>
#include <vector>

#include "graft/nn.h"

namespace graft::nn {

struct AdamWConfig {
  float lr = 1e-3f;            // > 0
  float beta1 = 0.9f;          // [0, 1)
  float beta2 = 0.999f;        // [0, 1)
  float eps = 1e-8f;           // > 0
  float weight_decay = 0.01f;  // >= 0, decoupled: p -= lr * wd * p
};

// ConfigError naming the first key out of range and the range it accepts.
void validate(const AdamWConfig& config);

// torch.optim.AdamW (amsgrad off, maximize off). Every parameter keeps its own step
// count, as in PyTorch: one whose grad is undefined is skipped and its bias correction
// does not advance.
class AdamW {
 public:
  // Parameters are f32 or bf16, with distinct names; moments start at zero. A bf16
  // parameter trains through an f32 master copy (its values widened): each step updates
  // the master and writes it back rounded, so updates below bf16's resolution add up.
  explicit AdamW(std::vector<NamedParameter> parameters, AdamWConfig config = {});

  void step();
  // Drops every parameter's gradient (undefined, so the next backward allocates anew).
  void zero_grad();
  // Schedules call this before each step; 0 is allowed (the first warm-up step).
  void set_lr(float lr);
  float lr() const { return config_.lr; }
  const AdamWConfig& config() const { return config_; }
  // Calls to step() so far (restored by load_state).
  std::int64_t step_count() const { return steps_; }
  const std::vector<NamedParameter>& parameters() const { return parameters_; }

  // Copies of the optimiser state as named tensors, for a checkpoint:
  //   "step" (i64 scalar), and per parameter "<name>.exp_avg", "<name>.exp_avg_sq"
  //   (f32, the parameter's shape), "<name>.step" (i64 scalar) and, for a bf16
  //   parameter, "<name>.master" (f32).
  std::vector<NamedParameter> state() const;
  // Restores what state() produced; every entry must be present with its shape, or
  // FormatError (a checkpoint that does not match these parameters).
  void load_state(const std::vector<NamedParameter>& state);

 private:
  struct Moments {
    Tensor exp_avg, exp_avg_sq;
    std::int64_t steps = 0;
    Tensor master;  // f32 copy of a bf16 parameter; undefined for f32 ones
  };
  std::vector<NamedParameter> parameters_;
  std::vector<Moments> moments_;
  AdamWConfig config_;
  std::int64_t steps_ = 0;
};

struct ScheduleConfig {
  enum class Decay { linear, cosine, constant };
  float peak_lr = 1e-3f;          // > 0
  std::int64_t warmup_steps = 0;  // >= 0
  std::int64_t total_steps = 0;   // >= warmup_steps
  Decay decay = Decay::linear;
  float min_lr_ratio = 0.f;  // [0, 1]: the decay ends at min_lr_ratio * peak_lr
};

void validate(const ScheduleConfig& config);

// Hugging Face's get_{linear,cosine,constant}_schedule_with_warmup (cosine with half a
// cycle), with min_lr_ratio as in get_cosine_with_min_lr_schedule_with_warmup.
class LrSchedule {
 public:
  explicit LrSchedule(ScheduleConfig config);
  // The learning rate for the optimiser step that follows `step` completed steps:
  // step 0 is the first step (lr 0 when warming up, as HF's LambdaLR gives).
  // Past total_steps the rate stays at min_lr_ratio * peak_lr.
  float lr_at(std::int64_t step) const;
  const ScheduleConfig& config() const { return config_; }

 private:
  ScheduleConfig config_;
};

// torch.nn.utils.clip_grad_norm_: the L2 norm over every defined gradient taken
// together; when it exceeds max_norm (> 0, else ConfigError) each gradient is scaled in
// place by max_norm / (norm + 1e-6). Returns the norm before clipping. A non-finite
// norm is returned without touching the gradients, so the caller can skip the step.
float clip_grad_norm(std::vector<NamedParameter>& parameters, float max_norm);

}  // namespace graft::nn
