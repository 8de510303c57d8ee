// The training loop every method shares: epochs or a step budget, gradient
// accumulation, warm-up + decay, clipping, evaluation every N steps, the best model
// kept, resumable checkpoints, a live progress line and a JSONL log. Runs are
// reproducible: data order, dropout masks and initialisation follow from the seed, so a
// run resumed from a checkpoint continues exactly as the uninterrupted one would.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/batching.h"
#include "graft/session.h"
#include "nn/optim.h"
#include "peft/adapter_set.h"
#include "train/task_head.h"
#include "train/metrics.h"

namespace graft::train {

struct TrainConfig {
  std::int64_t epochs = 3;
  std::int64_t max_steps = 0;  // > 0: this many optimiser steps, whatever the epochs
  std::size_t batch_size = 32;
  std::size_t grad_accumulation = 1;  // micro-batches per optimiser step
  std::size_t max_length = 128;
  float lr = 1e-3f, weight_decay = 0.f, warmup_ratio = 0.06f, max_grad_norm = 1.f;
  nn::ScheduleConfig::Decay decay = nn::ScheduleConfig::Decay::linear;
  std::uint64_t seed = 42;
  std::int64_t eval_every = 0;  // steps; 0: at the end of every epoch
  std::int64_t save_every = 0;  // steps between resumable checkpoints; 0: at every evaluation
  // Early stopping: the run ends after this many evaluations in a row without a better
  // dev score (the best one is what it keeps); 0: it runs its whole budget.
  std::int64_t patience = 0;
  std::filesystem::path output;  // checkpoint/, best/, log.jsonl go here
  bool progress = true;
  std::string label = "train";  // shown on the progress line
  std::function<void(const TrainProgress&)> on_progress;  // after each step and evaluation
  std::function<bool()> should_stop;  // at each step boundary: true saves the checkpoint and stops
};

// What a run may ask for. Beyond these a value is a typo (or hostile), and it is refused
// up front rather than wrapping, spinning or allocating terabytes.
struct TrainLimits {
  static constexpr std::int64_t max_batch_size = 65536, max_grad_accumulation = 65536, max_length = 1 << 20;
  static constexpr std::int64_t max_epochs = 100000, max_steps = 1000000000, max_patience = 1000000;
  static constexpr double max_lr = 10, max_weight_decay = 10, max_grad_norm = 1e6;
};
// ConfigError naming the field and its range for a value outside TrainLimits (or zero,
// negative, non-finite where those make no sense).
void validate(const TrainConfig& config);

// Bytes one training step needs at this config on `backbone` (weights, activations kept
// for backward, gradients and AdamW moments of `trainable` parameters): an estimate
// within a small factor, to refuse a run that cannot fit before allocating anything.
std::uint64_t estimate_training_bytes(const TrainConfig& config, const BackboneInfo& backbone, std::int64_t trainable);
// What this process may use: physical memory, or the cgroup limit when lower.
std::uint64_t memory_limit_bytes();

struct TrainResult {
  Scores best, last;
  std::vector<EvalPoint> evals;  // checkpointed, so a resumed run reports its whole curve
  std::int64_t best_step = 0, steps = 0;
  double seconds = 0, tokens_per_second = 0;
  bool resumed = false;
  bool stopped = false;  // should_stop ended it: checkpoint written, no final evaluation
  bool early_stopped = false;     // patience ran out before the budget did
  bool already_finished = false;  // the checkpoint was of a finished run: nothing ran now
};

// What is being trained, and how to write it out when it is the best so far.
struct TrainTarget {
  const Backbone* backbone = nullptr;
  ForwardHooks* hooks = nullptr;  // the selected adapters; null: none (head only, full fine-tuning)
  TaskHead* head = nullptr;
  std::vector<nn::NamedParameter> parameters;  // every trainable tensor, uniquely named
  std::function<void(const std::filesystem::path&)> export_best;
};

TrainResult train_model(const TrainConfig& config, TrainTarget& target, const data::Dataset& train_data,
                        const data::Dataset& dev_data, const text::Tokenizer& tokenizer);

// Peak resident memory of this process so far (VmHWM), in MiB.
double peak_memory_mib();

}  // namespace graft::train
