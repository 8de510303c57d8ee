#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "graft/ops.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/output_folder.h"
#include "io/safetensors.h"
#include "train/evaluator.h"
#include "train/progress.h"
#include "train/task_model.h"

namespace graft::train {
namespace fs = std::filesystem;
using nlohmann::json;

double peak_memory_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

namespace {

json scores_json(const Scores& s) {
  json j = s.values;
  j["headline"] = s.headline;
  return j;
}

Scores scores_from_json(const json& j) {
  Scores s;
  s.headline = j.at("headline");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "headline") s.values[it.key()] = it->get<double>();
  s.higher_is_better = s.headline != "perplexity";
  return s;
}

json evals_json(const std::vector<EvalPoint>& evals) {
  json out = json::array();
  for (const EvalPoint& e : evals) out.push_back({{"step", e.step}, {"train_loss", e.train_loss}, {"scores", scores_json(e.scores)}});
  return out;
}

std::vector<EvalPoint> evals_from_json(const json& j) {
  std::vector<EvalPoint> out;
  for (const json& e : j) out.push_back({e.at("step"), e.at("train_loss"), scores_from_json(e.at("scores"))});
  return out;
}

// What identifies a run: a checkpoint is resumed only into the same run.
json run_fingerprint(const TrainConfig& c, const TrainTarget& t, std::size_t train_rows) {
  std::int64_t count = 0;
  for (const auto& p : t.parameters) count += p.tensor.numel();
  return {{"epochs", c.epochs}, {"max_steps", c.max_steps}, {"batch_size", c.batch_size},
          {"grad_accumulation", c.grad_accumulation}, {"max_length", c.max_length}, {"lr", c.lr},
          {"weight_decay", c.weight_decay}, {"warmup_ratio", c.warmup_ratio}, {"seed", c.seed},
          {"trainable_parameters", count}, {"train_rows", train_rows}};
}

struct Checkpoint {
  fs::path dir;
  void save(const TrainTarget& target, const nn::AdamW& optimizer, const json& state) const {
    const fs::path staged = dir.string() + fmt::format(".tmp.{}", ::getpid());
    fs::remove_all(staged);
    fs::create_directories(staged);
    std::vector<std::pair<std::string, Tensor>> weights, moments;
    for (const auto& p : target.parameters) weights.emplace_back(p.name, p.tensor);
    for (const auto& p : optimizer.state()) moments.emplace_back(p.name, p.tensor);
    io::save_safetensors(staged / "trainable.safetensors", weights);
    io::save_safetensors(staged / "optimizer.safetensors", moments);
    io::write_file_atomic(staged / "trainer_state.json", state.dump(2) + "\n");
    io::publish_folder(staged, dir);
  }
  // Restores weights and optimiser state; returns the trainer state.
  json load(TrainTarget& target, nn::AdamW& optimizer) const {
    const auto weights = io::SafetensorsFile::open(dir / "trainable.safetensors");
    for (const auto& p : target.parameters) {
      if (!weights.contains(p.name) || weights.info(p.name).shape != p.tensor.shape())
        throw FormatError("train", fmt::format("checkpoint '{}' does not hold '{}' with shape {}", dir.string(), p.name,
                                               shape_str(p.tensor.shape())),
                          "it belongs to another run: use another --output or delete the folder");
      const Tensor saved = weights.get(p.name);
      std::memcpy(p.tensor.raw(), saved.raw(), p.tensor.nbytes());
    }
    const auto moments = io::SafetensorsFile::open(dir / "optimizer.safetensors");
    std::vector<nn::NamedParameter> state;
    for (const auto& info : moments.tensors()) state.push_back({info.name, moments.get(info.name).clone()});
    optimizer.load_state(state);
    return io::load_json(dir / "trainer_state.json");
  }
};

std::string first_non_finite(const std::vector<nn::NamedParameter>& parameters) {
  for (const auto& p : parameters)
    if (count_non_finite(p.tensor) > 0) return p.name;
  return {};
}

void refuse_if_too_big(const TrainConfig& config, const TrainTarget& target) {
  std::int64_t trainable = 0;
  for (const auto& p : target.parameters) trainable += p.tensor.numel();
  const BackboneInfo& b = target.backbone->info();
  const std::uint64_t need = estimate_training_bytes(config, b, trainable), have = memory_limit_bytes();
  if (need > have)
    throw ConfigError("train",
                      fmt::format("this run needs up to about {:.1f} GiB (batch {} x {} tokens on {} layers of width {}), more than "
                                  "the {:.1f} GiB this machine has",
                                  static_cast<double>(need) / (1 << 30), config.batch_size, config.max_length, b.num_layers,
                                  b.hidden_size, static_cast<double>(have) / (1 << 30)),
                      "lower --batch-size or --max-length (--grad-accum keeps the effective batch)");
}

// The run folder: graft's own (or new), its stale staging folders cleaned up, a
// checkpoint or best model interrupted mid-replacement put back, and no checkpoint/ or
// best/ there that graft did not write (they would be replaced).
void prepare_output(const fs::path& output) {
  io::prepare_run_folder(output, "train", [](const fs::path& dir) { return fs::exists(dir / "log.jsonl"); });
  io::clean_stale_staging(output, "train", {"checkpoint", "best", "results.json"});
  io::require_graft_folder(output / "checkpoint", "trainer_state.json", "checkpoint", "train");
  io::require_graft_folder(output / "best", "graft_adapter.json", "adapter folder", "train");
}

class Log {
 public:
  explicit Log(const fs::path& file) : out_(file, std::ios::app) {
    if (!out_) throw IoError("train", fmt::format("cannot write the log '{}'", file.string()));
  }
  void write(json event) {
    out_ << event.dump() << '\n';
    out_.flush();
  }

 private:
  std::ofstream out_;
};

}  // namespace

TrainResult train_model(const TrainConfig& config, TrainTarget& target, const data::Dataset& train_data, const data::Dataset& dev_data,
                        const text::Tokenizer& tokenizer) {
  if (config.output.empty()) throw ConfigError("train", "no output folder given", "pass --output DIR");
  if (train_data.examples.empty()) throw ConfigError("train", "the training data is empty");
  validate(config);
  refuse_if_too_big(config, target);
  prepare_output(config.output);
  const std::size_t accumulation = config.grad_accumulation;  // validated: at least 1
  const std::size_t per_epoch = (train_data.examples.size() + config.batch_size - 1) / config.batch_size;
  const std::int64_t steps_per_epoch = static_cast<std::int64_t>((per_epoch + accumulation - 1) / accumulation);
  const std::int64_t total = config.max_steps > 0 ? config.max_steps : config.epochs * steps_per_epoch;
  const std::int64_t eval_every = config.eval_every > 0 ? config.eval_every : steps_per_epoch;
  const std::int64_t save_every = config.save_every > 0 ? config.save_every : eval_every;

  nn::AdamW optimizer(target.parameters, {config.lr, 0.9f, 0.999f, 1e-8f, config.weight_decay});
  const nn::LrSchedule schedule({config.lr, static_cast<std::int64_t>(std::lround(config.warmup_ratio * static_cast<float>(total))),
                                 total, config.decay, 0.f});
  const auto dev_batches = data::make_batches(dev_data, tokenizer, config.batch_size, config.max_length, false, 0);

  TrainResult result;
  std::int64_t step = 0;
  double tokens_seen = 0, seconds_before = 0;
  bool have_best = false;
  std::int64_t evals_since_best = 0;
  double window_loss = 0;  // training loss summed since the last evaluation, over window_steps
  std::int64_t window_steps = 0;
  const Checkpoint checkpoint{config.output / "checkpoint"};
  const json fingerprint = run_fingerprint(config, target, train_data.examples.size());
  Log log(config.output / "log.jsonl");
  if (fs::exists(checkpoint.dir / "trainer_state.json")) {
    const json state = io::load_json(checkpoint.dir / "trainer_state.json");
    if (state.value("run", json()) != fingerprint)
      throw ConfigError("train", fmt::format("'{}' holds a checkpoint of a different run", checkpoint.dir.string()),
                        "resume with the same options, or choose another --output");
    checkpoint.load(target, optimizer);
    try {  // a key missing or of the wrong type: name the file, not just the key
      step = state.at("step");
      tokens_seen = state.at("tokens");
      seconds_before = state.at("seconds");
      if (state.contains("best")) {
        result.best = scores_from_json(state.at("best"));
        result.best_step = state.at("best_step");
        have_best = true;
      }
      if (state.contains("last")) result.last = scores_from_json(state.at("last"));
      // Checkpoints written before graft kept the curve have none: the curve starts here.
      if (state.contains("evals")) result.evals = evals_from_json(state.at("evals"));
      window_loss = state.value("window_loss", 0.0);
      window_steps = state.value("window_steps", std::int64_t{0});
      evals_since_best = state.value("evals_since_best", std::int64_t{0});
    } catch (const json::exception& e) {
      throw FormatError("train", fmt::format("'{}': {}", (checkpoint.dir / "trainer_state.json").string(), e.what()),
                        "delete the checkpoint folder to start the run over, or choose another --output");
    }
    result.resumed = true;
    // A finished run (its budget or, at this patience, its patience spent) is not run or
    // evaluated again: `graft compare` reruns every run of a report to resume it.
    const bool patience_spent = config.patience > 0 && evals_since_best >= config.patience;
    if ((step >= total || patience_spent) && have_best && !result.last.headline.empty()) {
      result.already_finished = true;
      result.early_stopped = step < total;
      result.steps = step;
      result.seconds = seconds_before;
      result.tokens_per_second = seconds_before > 0 ? tokens_seen / seconds_before : 0;
      return result;
    }
    log.write({{"event", "resumed"}, {"step", step}});
  }

  Progress progress(config.label, step, total, config.progress);
  if (result.resumed) progress.note(fmt::format("{}: resumed at step {} of {}", config.label, step, total));
  std::int64_t cached_epoch = -1;
  std::vector<data::LabeledBatch> epoch_batches;
  const auto start = std::chrono::steady_clock::now();
  double window_tokens = 0;
  auto window_start = start;

  auto save_state = [&] {
    json state = {{"run", fingerprint}, {"step", step}, {"tokens", tokens_seen},
                  {"seconds", seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
    if (have_best) state["best"] = scores_json(result.best), state["best_step"] = result.best_step;
    if (!result.last.headline.empty()) state["last"] = scores_json(result.last);
    state["evals_since_best"] = evals_since_best;
    state["evals"] = evals_json(result.evals);
    state["window_loss"] = window_loss, state["window_steps"] = window_steps;
    checkpoint.save(target, optimizer, state);
  };

  while (step < total) {
    // Dropout masks and data order follow from (seed, step): resumed runs replay them.
    ops::manual_seed(config.seed * 1000003ULL + static_cast<std::uint64_t>(step));
    optimizer.set_lr(schedule.lr_at(step));
    double step_loss = 0;
    for (std::size_t k = 0; k < accumulation; ++k) {
      const std::size_t micro = static_cast<std::size_t>(step) * accumulation + k;
      const auto epoch = static_cast<std::int64_t>(micro / per_epoch);
      if (epoch != cached_epoch) {
        epoch_batches = data::make_batches(train_data, tokenizer, config.batch_size, config.max_length, true,
                                           config.seed + static_cast<std::uint64_t>(epoch));
        cached_epoch = epoch;
      }
      const data::LabeledBatch& b = epoch_batches[micro % per_epoch];
      Tensor loss = task_loss(*target.backbone, target.hooks, *target.head, b, true);
      ops::scale(loss, 1.f / static_cast<float>(accumulation)).backward();
      step_loss += loss.item() / static_cast<double>(accumulation);
      tokens_seen += static_cast<double>(b.tokens);
      window_tokens += static_cast<double>(b.tokens);
    }
    if (!std::isfinite(step_loss))
      throw Error("train", fmt::format("the loss became {} at step {}", step_loss, step),
                  "lower the learning rate (--lr); for regression, scale the labels to a few units");
    if (config.max_grad_norm > 0) nn::clip_grad_norm(target.parameters, config.max_grad_norm);
    optimizer.step();
    optimizer.zero_grad();
    ++step;
    window_loss += step_loss, ++window_steps;
    // A step can overflow the weights while its loss was still finite: stop before such
    // weights are evaluated, kept as "best" or checkpointed.
    if (const std::string bad = first_non_finite(target.parameters); !bad.empty())
      throw Error("train", fmt::format("parameter '{}' became non-finite (NaN or inf) at step {}", bad, step),
                  "lower the learning rate (--lr) or clip gradients (--max-grad-norm)");

    const auto now = std::chrono::steady_clock::now();
    const double window = std::chrono::duration<double>(now - window_start).count();
    const double throughput = window > 0 ? window_tokens / window : 0;
    if (window > 5) window_start = now, window_tokens = 0;
    progress.update(step, step_loss, optimizer.lr(), throughput);
    TrainProgress report{step, total, step_loss, optimizer.lr(), throughput, nullptr};
    if (config.on_progress) config.on_progress(report);
    log.write({{"step", step}, {"loss", step_loss}, {"lr", optimizer.lr()}, {"tokens_per_second", throughput}});

    const bool evaluate_now = step % eval_every == 0 || step == total;
    if (evaluate_now) {
      result.last = evaluate(*target.backbone, target.hooks, *target.head, dev_batches, dev_data.metric, dev_data.label_names);
      const bool best = !have_best || result.last.better_than(result.best);
      progress.note(fmt::format("{}: step {} dev {} {:.4f}{}", config.label, step, result.last.headline, result.last.score(),
                                best ? " (best)" : ""));
      log.write({{"event", "eval"}, {"step", step}, {"scores", scores_json(result.last)}, {"best", best}});
      result.evals.push_back({step, window_loss / static_cast<double>(window_steps), result.last});
      window_loss = 0, window_steps = 0;
      report.evaluation = &result.last;
      if (config.on_progress) config.on_progress(report);
      if (best) {
        result.best = result.last;
        result.best_step = step;
        have_best = true;
        evals_since_best = 0;
        if (target.export_best) target.export_best(config.output / "best");
      } else {
        ++evals_since_best;
      }
    }
    const bool patience_spent = evaluate_now && step < total && config.patience > 0 && evals_since_best >= config.patience;
    if (patience_spent) {
      progress.note(fmt::format("{}: stopped early at step {}: {} evaluations without a better dev {} (best at step {})",
                                config.label, step, evals_since_best, result.best.headline, result.best_step));
      log.write({{"event", "early_stop"}, {"step", step}, {"best_step", result.best_step}});
    }
    // Asked to stop (Ctrl-C in the Python module): checkpoint first, so the run resumes.
    const bool stop = !patience_spent && step < total && config.should_stop && config.should_stop();
    if (stop || patience_spent || step % save_every == 0 || step == total) save_state();
    if (patience_spent) {
      result.early_stopped = true;
      break;
    }
    if (stop) {
      result.stopped = true;
      break;
    }
  }
  progress.finish();
  if (result.stopped) {
    log.write({{"event", "stopped"}, {"step", step}});
  } else if (result.last.headline.empty())  // resumed a run that had already finished
    result.last = evaluate(*target.backbone, target.hooks, *target.head, dev_batches, dev_data.metric, dev_data.label_names);
  result.steps = step;
  result.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.tokens_per_second = result.seconds > 0 ? tokens_seen / result.seconds : 0;
  if (!have_best) result.best = result.last;
  return result;
}

}  // namespace graft::train
