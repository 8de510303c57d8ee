// Mixed-adapter batches: one frozen backbone, a batch of 64 real SST-2 dev sentences
// whose rows draw on 1, 8 or 64 adapters (round robin), run as one call with a per-row
// selection. Printed against, in the same run: the same batch with a single adapter
// (the target: mixed ≥ 0.8× its throughput) and each adapter's rows run as a batch of
// their own (what a server without mixed batches does). Then the memory each loaded
// adapter adds, against its file size.
//   bench_mixed [MODEL_DIR] [SST2_DEV_TSV]   (defaults: the repository's paths)
#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "graft/session.h"

using namespace graft;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kBatch = 64;

// `count` sentences of similar length (around the dev set's 75th percentile), so the
// batch measures adapters, not padding.
std::vector<std::string> sentences(const fs::path& tsv, std::size_t count) {
  std::ifstream in(tsv);
  if (!in) throw std::runtime_error("cannot read " + tsv.string());
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> all;
  while (std::getline(in, line)) all.push_back(line.substr(0, line.find('\t')));
  if (all.size() < count) throw std::runtime_error(tsv.string() + " has fewer than 64 rows");
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
  const std::size_t first = std::min(all.size() * 3 / 4, all.size() - count);
  return {all.begin() + static_cast<std::ptrdiff_t>(first), all.begin() + static_cast<std::ptrdiff_t>(first + count)};
}

// Median seconds per call of each of `fns`, timed in turns (round robin over `reps`
// rounds after one warm-up each), so drifts of the machine hit all of them alike.
std::vector<double> seconds(const std::vector<std::function<void()>>& fns, int reps) {
  for (const auto& fn : fns) fn();
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < fns.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fns[i]();
      t[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<double> out;
  for (auto& v : t) {
    std::nth_element(v.begin(), v.begin() + reps / 2, v.end());
    out.push_back(v[reps / 2]);
  }
  return out;
}

// Heap bytes in use: what loading an adapter allocates (the resident set would hide it
// in pages freed earlier).
double heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
}

struct Method {
  const char* label;
  const char* method;
  const char* config;
};

}  // namespace

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const fs::path model = argc > 1 ? argv[1] : ".cache/models/all-MiniLM-L6-v2";
  const fs::path tsv = argc > 2 ? argv[2] : "../shared/data/glue/SST-2/dev.tsv";
  const std::vector<std::string> texts = sentences(tsv, kBatch);
  const std::vector<Method> methods = {
      {"lora r8 q,v", "lora", R"({"r": 8, "init_lora_weights": false})"},
      {"houlsby", "houlsby", ""},
      {"prefix_tuning 20", "prefix_tuning", ""},
      {"prompt_tuning 20", "prompt_tuning", ""},
  };
  const std::vector<std::size_t> mixes = {1, 8, 64};
  Session s(model);
  fmt::print("bench_mixed: {} ({}), batch of {} SST-2 dev sentences of similar length, OMP_NUM_THREADS={}\n",
             model.filename().string(), s.backbone_info().architecture, texts.size(),
             getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(all)");
  fmt::print("rows/s of the whole batch, medians of 7 interleaved runs; ratios against the single-adapter batch\n\n");
  fmt::print("{:<18} {:>10} {:>12} {:>8} {:>14} {:>8}\n", "method", "adapters", "mixed", "ratio", "own batches", "ratio");
  for (const Method& m : methods) {
    auto name = [&](std::size_t a) { return fmt::format("{}{}", m.method, a); };
    for (std::size_t i = 0; i < mixes.back(); ++i) s.add_adapter(name(i), m.method, m.config, i + 1);
    std::vector<std::function<void()>> runs = {[&] { s.embed(texts); }, [&] { s.embed(texts, Selection::one(name(0))); }};
    for (std::size_t k : mixes) {
      std::vector<std::string> names(kBatch);
      for (std::size_t r = 0; r < kBatch; ++r) names[r] = name(r % k);
      runs.push_back([&s, &texts, names] { s.embed(texts, Selection::per_row(names)); });
      runs.push_back([&, k] {  // each adapter's rows as a batch of their own
        for (std::size_t a = 0; a < k; ++a) {
          std::vector<std::string> part;
          for (std::size_t r = a; r < kBatch; r += k) part.push_back(texts[r]);
          s.embed(part, Selection::one(name(a)));
        }
      });
    }
    const std::vector<double> t = seconds(runs, 7);
    const double single = kBatch / t[1];
    fmt::print("{:<18} {:>10} {:>12.1f} {:>8.2f}\n", m.label, "none", kBatch / t[0], kBatch / t[0] / single);
    fmt::print("{:<18} {:>10} {:>12.1f} {:>8}\n", m.label, "single", single, "1.00");
    for (std::size_t i = 0; i < mixes.size(); ++i) {
      const double mixed = kBatch / t[2 + 2 * i], own = kBatch / t[3 + 2 * i];
      fmt::print("{:<18} {:>10} {:>12.1f} {:>8.2f} {:>14.1f} {:>8.2f}\n", m.label, mixes[i], mixed, mixed / single, own,
                 own / single);
    }
    for (std::size_t i = 0; i < mixes.back(); ++i) s.unload_adapter(name(i));
  }

  // Memory per loaded adapter: one saved folder loaded N times under new names.
  constexpr int kLoads = 32;
  fmt::print("\nmemory added per loaded adapter (heap in use, {} loads each)\n", kLoads);
  fmt::print("{:<18} {:>14} {:>14} {:>8}\n", "method", "file KiB", "heap KiB/each", "ratio");
  const fs::path scratch = fs::temp_directory_path() / fmt::format("graft_bench_mixed_{}", ::getpid());
  fs::create_directories(scratch);
  for (const Method& m : methods) {
    s.add_adapter("saved", m.method, m.config, 7);
    const fs::path folder = scratch / m.method;
    s.save_adapter("saved", folder);
    s.unload_adapter("saved");
    double file_bytes = 0;
    for (const auto& e : fs::directory_iterator(folder))
      if (e.path().extension() == ".safetensors") file_bytes += static_cast<double>(fs::file_size(e.path()));
    s.load_adapter("warm", folder);  // first load: code paths and caches, not the adapter
    s.embed(texts, Selection::one("warm"));
    const double before = heap_bytes();
    for (int i = 0; i < kLoads; ++i) s.load_adapter(fmt::format("copy{}", i), folder);
    const double each_kib = (heap_bytes() - before) / 1024.0 / kLoads;
    fmt::print("{:<18} {:>14.1f} {:>14.1f} {:>8.2f}\n", m.label, file_bytes / 1024.0, each_kib, each_kib * 1024.0 / file_bytes);
    for (int i = 0; i < kLoads; ++i) s.unload_adapter(fmt::format("copy{}", i));
    s.unload_adapter("warm");
  }
  fs::remove_all(scratch);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_mixed: {}\n", e.what());
  return 1;
}
