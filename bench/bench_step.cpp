// graft's side of the side-by-side benchmark against PyTorch (bench/torch_reference.py;
// bench/vs_torch.py runs both and prints the ratios). One workload per process, so each
// run's peak resident memory is its own; prints one JSON object with the same keys as
// the reference script.
//
//   bench_step --workload train --method lora --dtype bf16      one training step: forward,
//              backward, clipping, AdamW, through Session::train (the product's loop)
//   bench_step --workload classify|embed [--method none]        batch inference
//   bench_step --workload latency --seq 16                      one request of one row
//   bench_step --workload gemm                                  oneDNN's f32 and bf16 GEMM
//              rate at the model's shapes: the peak the other figures are a fraction of
//
// Inputs are rows of exactly --seq tokens (random whole words of the model's vocabulary,
// so each is one WordPiece), as the reference feeds random ids of the same shape;
// graft's inference figures include tokenising them.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graft/session.h"
#include "ops/op_util.h"

using namespace graft;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model = ".cache/models/all-MiniLM-L6-v2", workload = "train", method = "none", dtype = "f32";
  int batch = 32, seq = 128, steps = 10, warmup = 3;
  std::uint64_t seed = 0;
};

// The configurations the reference builds with PEFT or plain PyTorch (graft's defaults).
std::string config_of(const std::string& method) {
  if (method == "lora") return R"({"r": 8, "lora_alpha": 8, "target_modules": ["query", "value"]})";
  if (method == "prefix_tuning" || method == "prompt_tuning") return R"({"num_virtual_tokens": 20})";
  return "";
}

// Whole-word entries of the vocabulary (lower-case letters only): each tokenises to itself.
std::vector<std::string> whole_words(const fs::path& model) {
  std::ifstream in(model / "vocab.txt");
  if (!in) throw std::runtime_error(fmt::format("cannot read {} (bench_step needs a WordPiece model)", (model / "vocab.txt").string()));
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w);)
    if (w.size() >= 3 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) words.push_back(w);
  if (words.size() < 100) throw std::runtime_error("too few whole words in " + (model / "vocab.txt").string());
  return words;
}

// `rows` texts of `seq` tokens each once [CLS] and [SEP] are added.
std::vector<std::string> texts(const Options& o, std::size_t rows, std::uint64_t salt) {
  static const auto words = whole_words(o.model);
  std::mt19937_64 rng(o.seed * 1000003 + salt);
  std::vector<std::string> out(rows);
  for (auto& t : out)
    for (int i = 0; i + 2 < o.seq; ++i) t += (i ? " " : "") + words[rng() % words.size()];
  return out;
}

data::Dataset dataset(const Options& o, std::size_t rows, std::uint64_t salt) {
  data::Dataset d;
  d.task = "bench";
  d.kind = TaskKind::classification;
  d.label_names = {"0", "1"};
  d.metric = "accuracy";
  std::mt19937_64 rng(o.seed + salt);
  for (auto& t : texts(o, rows, salt)) d.examples.push_back({t, "", false, static_cast<double>(rng() % 2), {}, {}, 0});
  return d;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// Seconds of each of `o.steps` calls after `o.warmup` untimed ones.
std::vector<double> time_calls(const Options& o, const std::function<void()>& fn) {
  for (int i = 0; i < o.warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < o.steps; ++i) {
    const auto t0 = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return t;
}

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// Step times of a real training run: the gaps between Session::train's per-step
// progress calls (evaluation calls left out), the first `warmup` steps dropped.
std::vector<double> train_steps(const Options& o, Session& s, std::int64_t& trainable) {
  const std::string method = o.method == "none" ? "lora" : o.method;
  s.add_adapter("bench", method, config_of(method));
  const auto total = o.warmup + o.steps;
  TrainOptions t;
  t.epochs = 1;
  t.max_steps = total;
  t.batch_size = static_cast<std::size_t>(o.batch);
  t.max_length = static_cast<std::size_t>(o.seq);
  t.lr = 1e-4f;
  t.progress_line = false;
  t.output = fs::temp_directory_path() / fmt::format("graft-bench-step-{}", ::getpid());
  fs::remove_all(t.output);
  std::vector<double> gaps;
  auto last = Clock::now();
  t.on_progress = [&](const TrainProgress& p) {
    if (p.evaluation) return;
    const auto now = Clock::now();
    if (p.step > o.warmup) gaps.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
  };
  const auto summary = s.train("bench", dataset(o, static_cast<std::size_t>(total * o.batch), 1), dataset(o, o.batch, 2), t);
  fs::remove_all(t.output);
  trainable = summary.trainable_parameters;
  return gaps;
}

// oneDNN's GEMM rate (FLOP/s) for [M,K]·[K,N] in f32 and in bf16 (f32 results), called
// directly: the best of the shapes a MiniLM layer runs at this batch. bf16 is null where
// oneDNN builds no bf16 matmul (oneDNN 2.6 on AVX2).
nlohmann::json gemm_rates(const Options& o) {
  using dnnl::memory;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  nlohmann::json out;
  const memory::dim M = static_cast<memory::dim>(o.batch) * o.seq;
  for (auto [name, dt] : {std::pair{"f32", memory::data_type::f32}, std::pair{"bf16", memory::data_type::bf16}}) {
    double best = 0;
    for (auto [K, N] : std::vector<std::pair<memory::dim, memory::dim>>{{384, 1536}, {1536, 384}, {384, 384}, {768, 3072}}) {
      // 3-D, as graft's matmuls are built (oneDNN 2.6 has no 2-D bf16 matmul on AVX2).
      memory::desc a_md({1, M, K}, dt, memory::format_tag::abc), b_md({1, K, N}, dt, memory::format_tag::acb),
          c_md({1, M, N}, memory::data_type::f32, memory::format_tag::abc);
      // A scratchpad of our own, as graft's primitives have: oneDNN's default allocates
      // (and page-faults) one per call, which halves the rate at these sizes.
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::matmul::primitive_desc pd;
      try {
        pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine);
      } catch (const dnnl::error&) {
        break;  // unimplemented in this dtype on this CPU
      }
      dnnl::matmul mm(pd);
      memory a(a_md, engine), b(b_md, engine), c(c_md, engine), scratch(pd.scratchpad_desc(), engine);
      std::memset(a.get_data_handle(), 0, a_md.get_size());
      std::memset(b.get_data_handle(), 0, b_md.get_size());
      const double s = median(time_calls(o, [&] {
        mm.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, scratch}});
        stream.wait();
      }));
      const double rate = 2.0 * static_cast<double>(M * K * N) / s;
      out[name][fmt::format("{}x{}x{}", M, K, N)] = rate;
      best = std::max(best, rate);
    }
    out[name]["peak"] = best > 0 ? nlohmann::json(best) : nlohmann::json(nullptr);
  }
  out["bf16_native"] = ops::bf16_matmul_native();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"graft's side of the PyTorch side-by-side benchmark (bench/vs_torch.py runs both)"};
  app.add_option("--model", o.model, "Hugging Face BERT-family folder")->capture_default_str();
  app.add_option("--workload", o.workload, "train, classify, embed, latency or gemm")
      ->check(CLI::IsMember({"train", "classify", "embed", "latency", "gemm"}))
      ->capture_default_str();
  app.add_option("--method", o.method, "train: a method (lora, houlsby, prefix_tuning, prompt_tuning, full, head); else none")
      ->capture_default_str();
  app.add_option("--dtype", o.dtype, "f32 or bf16 frozen weights")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
  app.add_option("--batch", o.batch, "rows per step")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seq", o.seq, "tokens per row, [CLS] and [SEP] included")->check(CLI::Range(3, 512))->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--seed", o.seed, "input seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.workload == "latency") o.batch = 1;

  try {
    nlohmann::json r{{"side", "graft"}, {"workload", o.workload}, {"method", o.method}, {"dtype", o.dtype},
                     {"batch", o.batch}, {"seq", o.seq}, {"steps", o.steps}};
    std::vector<double> t;
    std::int64_t trainable = 0;
    if (o.workload == "gemm") {
      r["gemm_flops"] = gemm_rates(o);
    } else {
      SessionOptions so;
      so.dtype = o.dtype == "bf16" ? DType::bf16 : DType::f32;
      Session s(o.model, so);
      if (o.workload == "train") {
        t = train_steps(o, s, trainable);
      } else {
        const auto rows = texts(o, static_cast<std::size_t>(o.batch), 3);
        EmbedOptions eo;
        eo.max_length = static_cast<std::size_t>(o.seq);
        if (o.workload == "classify") {
          s.add_adapter("probe", "head");
          s.add_head("probe", dataset(o, 4, 4));
          std::vector<TextInput> in;
          for (const auto& x : rows) in.push_back({x, std::nullopt});
          EvalOptions ev{static_cast<std::size_t>(o.batch), static_cast<std::size_t>(o.seq)};
          t = time_calls(o, [&] { s.predict(in, Selection::one("probe"), ev); });
        } else {
          t = time_calls(o, [&] { s.embed(rows, {}, eo); });
        }
      }
    }
    r["median_s"] = median(t);
    r["mean_s"] = mean(t);
    r["tokens_per_s"] = t.empty() ? 0 : o.batch * o.seq / median(t);
    r["peak_rss_mib"] = peak_rss_mib();
    r["tensor_peak_mib"] = static_cast<double>(memory_stats().peak_live_bytes) / (1 << 20);  // tensors alone
    r["trainable_params"] = trainable;
    fmt::print("{}\n", r.dump());
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_step: {}\n", e.what());
    return 2;
  }
}
