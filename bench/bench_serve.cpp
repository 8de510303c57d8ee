// A load generator for `graft serve`: a second process that talks HTTP to a running
// server, or starts one itself (the build tree's graft, as a subprocess) with N LoRA
// adapters it makes and saves first. N client threads send /v1/classify (or
// /v1/embeddings) requests, mixing the adapters round robin, until the total or the time
// is spent; it prints requests/s, latency percentiles, errors and lost responses, and
// the server's mean batch size from /metrics.
//
//   bench_serve --backbone .cache/models/all-MiniLM-L6-v2 --make-adapters 8 --clients 4 --requests 400
//   bench_serve --port 8080 --adapters sst2,mnli --clients 16 --seconds 30
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "graft/session.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kTexts = {
    "a gripping, beautifully shot film",       "the plot never comes together",
    "an ordinary evening at the cinema",        "one of the best performances of the year",
    "tedious, overlong and far too pleased with itself", "warm, funny and surprisingly moving",
    "i walked out after an hour",               "the kind of movie you want to see twice"};

std::map<std::string, std::string> parse(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) {
      fmt::print(stderr, "bench_serve: expected --key value, got '{}'\n", key);
      std::exit(2);
    }
    out[key.substr(2)] = argv[++i];
  }
  return out;
}

std::string opt(const std::map<std::string, std::string>& o, const std::string& k, const std::string& fallback) {
  const auto it = o.find(k);
  return it == o.end() ? fallback : it->second;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

double metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  const std::string host = opt(o, "host", "127.0.0.1");
  int port = std::stoi(opt(o, "port", "8080"));
  const int clients = std::stoi(opt(o, "clients", "4"));
  const long total = std::stol(opt(o, "requests", "400"));
  const double seconds = std::stod(opt(o, "seconds", "120"));
  const std::size_t rows = std::stoul(opt(o, "rows", "1"));
  const std::string endpoint = opt(o, "endpoint", "classify");
  std::vector<std::string> adapters;
  pid_t child = -1;
  fs::path folder;

  if (o.count("backbone")) {
    // Make the adapters, then start the server on them.
    const int n = std::stoi(opt(o, "make-adapters", "8"));
    folder = fs::temp_directory_path() / fmt::format("bench_serve_{}", ::getpid());
    fs::create_directories(folder);
    {
      graft::Session s(o.at("backbone"));
      graft::data::Dataset two;
      two.label_names = {"negative", "positive"};
      for (int i = 0; i < n; ++i) {
        const std::string name = fmt::format("a{}", i);
        s.add_adapter(name, "lora", R"({"r": 8, "init_lora_weights": false, "target_modules": ["query", "value"]})", 100 + i);
        s.add_head(name, two);
        s.save_adapter(name, folder / name);
        adapters.push_back(name);
      }
    }
    std::vector<std::string> args = {opt(o, "graft", GRAFT_CLI), "serve", "--backbone", o.at("backbone"), "--port", "0",
                                     "--max-wait-ms", opt(o, "max-wait-ms", "5"), "--max-batch", opt(o, "max-batch", "32")};
    for (const auto& a : adapters) {
      args.push_back("--adapter");
      args.push_back(a + "=" + (folder / a).string());
    }
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    int fds[2];
    if (::pipe(fds) != 0) return 1;
    child = ::fork();
    if (child == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::execv(cargs[0], cargs.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    std::string line;
    char c;
    while (line.find('\n') == std::string::npos && ::read(fds[0], &c, 1) == 1) line += c;
    const auto at = line.find("127.0.0.1:");
    if (at == std::string::npos) {
      fmt::print(stderr, "bench_serve: the server did not start: '{}'\n", line);
      return 1;
    }
    port = std::stoi(line.substr(at + 10));
    fmt::print("{}", line);
  } else {
    std::string list = opt(o, "adapters", "");
    for (std::size_t at = 0; !list.empty() && at <= list.size();) {
      const auto comma = std::min(list.find(',', at), list.size());
      adapters.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    if (adapters.empty() && endpoint == "classify") {
      fmt::print(stderr, "bench_serve: --adapters a,b,... (classify needs adapters with heads), or --backbone to start a server\n");
      return 2;
    }
  }

  std::atomic<long> next{0}, ok{0}, errors{0}, lost{0};
  std::mutex latencies_mutex;
  std::vector<double> latencies;
  std::map<std::string, int> lost_why;  // transport errors by kind
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&] {
      httplib::Client c(host, port);
      c.set_read_timeout(120, 0);
      std::vector<double> mine;
      for (long i; (i = next++) < total && Clock::now() < deadline;) {
        const std::string adapter = adapters.empty() ? "" : adapters[static_cast<std::size_t>(i) % adapters.size()];
        json inputs = json::array();
        for (std::size_t r = 0; r < rows; ++r) inputs.push_back(kTexts[(static_cast<std::size_t>(i) + r) % kTexts.size()]);
        const json body = endpoint == "classify" ? json{{"adapter", adapter}, {"inputs", inputs}} : json{{"model", adapter}, {"input", inputs}};
        const auto t0 = Clock::now();
        const auto res = c.Post(("/v1/" + endpoint).c_str(), body.dump(), "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!res) {
          ++lost;
          std::lock_guard lock(latencies_mutex);
          ++lost_why[httplib::to_string(res.error())];
        }
        else if (res->status != 200) ++errors;
        else {
          ++ok;
          mine.push_back(ms);
        }
      }
      std::lock_guard lock(latencies_mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  httplib::Client c(host, port);
  const auto m = c.Get("/metrics");
  const std::string text = m ? m->body : "";
  const double batches = metric(text, "graft_batch_rows_count"), batch_rows = metric(text, "graft_batch_rows_sum");
  const long sent = ok + errors + lost;
  fmt::print("bench_serve: {} clients, {} requests of {} row(s) to /v1/{} over {} adapters\n", clients, sent, rows, endpoint,
             adapters.size());
  fmt::print("  {:.1f} requests/s ({:.1f} rows/s) over {:.2f} s\n", static_cast<double>(ok) / elapsed,
             static_cast<double>(ok) * static_cast<double>(rows) / elapsed, elapsed);
  fmt::print("  latency ms: p50 {:.1f}  p95 {:.1f}  p99 {:.1f}  max {:.1f}\n", percentile(latencies, 0.5), percentile(latencies, 0.95),
             percentile(latencies, 0.99), percentile(latencies, 1.0));
  fmt::print("  ok {}  errors {}  lost {}\n", ok.load(), errors.load(), lost.load());
  for (const auto& [why, n] : lost_why) fmt::print("    lost: {} x {}\n", n, why);
  if (batches > 0) fmt::print("  server: {} batched calls, {:.2f} rows per call\n", batches, batch_rows / batches);
  if (child > 0) {
    ::kill(child, SIGTERM);
    int status = 0;
    ::waitpid(child, &status, 0);
    fmt::print("  server exit status after SIGTERM: {}\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fs::remove_all(folder);
  }
  return errors == 0 && lost == 0 ? 0 : 1;
}
