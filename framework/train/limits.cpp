// Up-front checks on a training run: every number in range, and a memory estimate
// against what the machine has, so a bad config fails in milliseconds with a reason
// instead of wrapping around, spinning, or dying in the allocator an hour later.
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "graft/error.h"
#include "train/trainer.h"

namespace graft::train {

namespace {

template <class T>
void in_range(const char* field, T value, T min, T max, const char* hint) {
  if (!(value >= min && value <= max))  // also false for NaN
    throw ConfigError("train", fmt::format("{} is {}, outside [{}, {}]", field, value, min, max), hint);
}

}  // namespace

void validate(const TrainConfig& c) {
  using L = TrainLimits;
  in_range<std::int64_t>("batch_size", static_cast<std::int64_t>(c.batch_size), 1, L::max_batch_size,
                         "rows per micro-batch: 8 to 64 suit a CPU");
  in_range<std::int64_t>("grad_accumulation", static_cast<std::int64_t>(c.grad_accumulation), 1, L::max_grad_accumulation,
                         "micro-batches per optimiser step: 1 unless memory is short");
  in_range<std::int64_t>("max_length", static_cast<std::int64_t>(c.max_length), 1, L::max_length, "tokens per row, e.g. 128");
  in_range<std::int64_t>("max_steps", c.max_steps, 0, L::max_steps, "0 trains for --epochs instead");
  if (c.max_steps == 0) in_range<std::int64_t>("epochs", c.epochs, 1, L::max_epochs, "passes over the training set, e.g. 3");
  in_range<std::int64_t>("eval_every", c.eval_every, 0, L::max_steps, "steps between evaluations; 0: every epoch");
  in_range<std::int64_t>("save_every", c.save_every, 0, L::max_steps, "steps between checkpoints; 0: at every evaluation");
  in_range<std::int64_t>("patience", c.patience, 0, L::max_patience, "evaluations without a better dev score; 0: no early stopping");
  if (!(c.lr > 0.f && c.lr <= static_cast<float>(L::max_lr)))
    throw ConfigError("train", fmt::format("the learning rate is {}, outside (0, {}]", c.lr, L::max_lr),
                      "adapters train at 1e-4 to 3e-2; see docs/cli.md for each method's default");
  in_range<double>("weight_decay", c.weight_decay, 0, L::max_weight_decay, "AdamW weight decay, e.g. 0 or 0.01");
  in_range<double>("warmup_ratio", c.warmup_ratio, 0, 1, "a fraction of the steps, e.g. 0.06");
  in_range<double>("max_grad_norm", c.max_grad_norm, 0, L::max_grad_norm, "e.g. 1; 0 turns clipping off");
}

std::uint64_t estimate_training_bytes(const TrainConfig& c, const BackboneInfo& b, std::int64_t trainable) {
  // Per token and layer, backward keeps about 16 hidden-sized and 3 FFN-sized vectors
  // and 4 attention rows per head (scores, probabilities, dropout mask, their gradient);
  // an upper bound (rows padded to max_length): all-MiniLM-L6-v2 at 32 x 128 on SST-2
  // estimates 1.6 GiB and peaks at 0.9 GiB, its rows being shorter.
  const double tokens = static_cast<double>(c.batch_size) * static_cast<double>(c.max_length);
  const double per_token_layer = 16.0 * b.hidden_size + 3.0 * b.intermediate_size +
                                 4.0 * static_cast<double>(b.num_heads) * static_cast<double>(c.max_length);
  const double activations = tokens * b.num_layers * per_token_layer * 4.0;
  const double logits = b.causal ? tokens * static_cast<double>(b.vocab_size) * 4.0 * 3 : 0;  // LM loss
  const double weights = static_cast<double>(b.parameter_count) * (b.dtype == DType::bf16 ? 2 : 4);
  const double training_state = static_cast<double>(trainable) * 4.0 * 4;  // value, gradient, two moments
  const double total = activations + logits + weights + training_state;
  return total >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(total);
}

std::uint64_t memory_limit_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  std::uint64_t limit = pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : UINT64_MAX;
  // cgroup v2, then v1: a container's limit, when one is set ("max" means none).
  for (const char* file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(file);
    std::string text;
    if (in >> text && !text.empty() && text != "max") {
      try {
        limit = std::min<std::uint64_t>(limit, std::stoull(text));
      } catch (const std::exception&) {
      }
    }
  }
  return limit;
}

}  // namespace graft::train
