// The real `graft serve` binary as a subprocess on MiniLM: it prints its port, serves a
// load of 8 clients x 25 requests mixing adapters while an extra adapter is loaded and
// unloaded, with no error and no lost response; then SIGTERM while requests are in
// flight: they complete with 200, later ones are refused cleanly (503 or no
// connection), and the process exits 0.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <mutex>
#include <thread>

#include "integration/serve_fixtures.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// `graft serve ARGS...` with stdout on a pipe (read for the listening line) and stderr in `log`.
struct Child {
  pid_t pid = -1;
  int out = -1;
  Child(const std::vector<std::string>& args, const fs::path& log) {
    // Everything the child needs is made before fork: it only calls exec-safe functions.
    std::vector<char*> argv{const_cast<char*>(GRAFT_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(err, 2);
      ::close(fds[0]);
      ::execv(GRAFT_CLI, argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out = fds[0];
  }
  // The first line on stdout ("" after `timeout_s` or at end of file).
  std::string line(int timeout_s) const {
    std::string text;
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    while (text.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c[256];
      const ssize_t n = ::read(out, c, sizeof c);
      if (n <= 0) break;
      text.append(c, static_cast<std::size_t>(n));
    }
    return text.substr(0, text.find('\n'));
  }
  // The exit status, or -1 when it did not exit normally within `timeout_s` (then killed).
  int wait(int timeout_s) {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    int status = 0;
    while (Clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) ::close(out);
  }
};

std::vector<TextInput> rows_of(const std::vector<std::string>& texts) {
  std::vector<TextInput> out;
  for (const auto& t : texts) out.push_back({t, std::nullopt});
  return out;
}

TEST(ServeProcess, ServesALoadWhileAdaptersChangeThenDrainsOnSigterm) {
  TempFolder dir("serve_process");
  make_adapter_folders(dir.path);
  // What the server must answer, from a session of our own on the same folders.
  Session ref(minilm_path());
  for (const char* name : {"lora", "houlsby", "extra"}) ref.load_adapter(name, dir.path / name);
  const auto texts = sst2_texts(30, 8);
  std::map<std::string, std::vector<Prediction>> classes;
  std::map<std::string, std::vector<std::vector<float>>> vectors;
  for (const char* name : {"lora", "houlsby", "extra"}) {
    classes[name] = ref.predict(rows_of(texts), Selection::one(name));
    vectors[name] = ref.embed(texts, Selection::one(name));
  }

  Child child({"serve", "--backbone", minilm_path().string(), "--adapter", "lora=" + (dir.path / "lora").string(), "--adapter",
               "houlsby=" + (dir.path / "houlsby").string(), "--port", "0", "--max-wait-ms", "5"},
              dir.path / "serve.log");
  const std::string listening = child.line(120);
  ASSERT_NE(listening.find("graft serve: listening on http://127.0.0.1:"), std::string::npos)
      << "no listening line: '" << listening << "'\n" << read_file(dir.path / "serve.log");
  EXPECT_HAS(listening, "2 adapters");
  const int port = std::stoi(listening.substr(listening.find("127.0.0.1:") + 10));
  auto client = [port] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  };

  // The load, and the extra adapter coming and going beside it.
  std::atomic<int> ok{0}, wrong{0}, lost{0};
  std::mutex failures_mutex;
  std::string failures;
  auto note = [&](const std::string& what) {
    std::lock_guard lock(failures_mutex);
    if (failures.size() < 4000) failures += what + "\n";
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto c = client();
      const std::string adapter = t % 2 ? "lora" : "houlsby";
      for (int i = 0; i < 25; ++i) {
        const std::size_t row = static_cast<std::size_t>(t * 25 + i) % texts.size();
        const bool classify = (i + t) % 3 != 0;
        const Reply r = classify ? post(c, "/v1/classify", classify_body(adapter, {texts[row]}))
                                 : post(c, "/v1/embeddings", json{{"model", adapter}, {"input", texts[row]}});
        if (r.status < 0) {
          ++lost;
          note(fmt::format("no response: {}", httplib::to_string(r.error)));
          continue;
        }
        const double diff = classify ? classify_diff({classes[adapter][row]}, r.body) : embed_diff({vectors[adapter][row]}, r.body);
        if (r.status == 200 && diff < 1e-5) ++ok;
        else {
          ++wrong;
          note(fmt::format("{} {}: {}", r.status, diff, r.text.substr(0, 200)));
        }
      }
    });
  int swaps = 0;
  {
    auto c = client();
    for (int i = 0; i < 5; ++i) {
      const Reply load = post(c, "/v1/adapters", json{{"name", "extra"}, {"path", (dir.path / "extra").string()}});
      EXPECT_EQ(load.status, 200) << load.text;
      const Reply r = post(c, "/v1/classify", classify_body("extra", texts));
      EXPECT_EQ(r.status, 200) << r.text;
      EXPECT_LT(classify_diff(classes["extra"], r.body), 1e-5);
      EXPECT_EQ(del(c, "/v1/adapters/extra").status, 200);
      swaps += load.status == 200;
    }
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(swaps, 5);
  EXPECT_EQ(ok.load(), 200) << failures;
  EXPECT_EQ(wrong.load(), 0) << failures;
  EXPECT_EQ(lost.load(), 0) << failures;

  // SIGTERM with requests in flight. Each client stops at its first refusal.
  struct Call {
    Clock::time_point start, end;
    int status;
    httplib::Error error;
  };
  std::mutex calls_mutex;
  std::vector<Call> calls;
  threads.clear();
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      auto c = client();
      for (int i = 0; i < 1000; ++i) {
        const auto start = Clock::now();
        const Reply r = post(c, "/v1/classify", classify_body(t % 2 ? "lora" : "houlsby", texts));
        {
          std::lock_guard lock(calls_mutex);
          calls.push_back({start, Clock::now(), r.status, r.error});
        }
        if (r.status != 200) break;
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const auto killed = Clock::now();
  ASSERT_EQ(::kill(child.pid, SIGTERM), 0);
  const int status = child.wait(60);
  for (auto& th : threads) th.join();
  EXPECT_EQ(status, 0) << read_file(dir.path / "serve.log");
  int in_flight_completed = 0, refused = 0;
  for (const auto& call : calls) {
    if (call.start < killed) {
      // In flight (or done) when the signal came: answered in full.
      EXPECT_EQ(call.status, 200) << httplib::to_string(call.error);
      in_flight_completed += call.end > killed && call.status == 200;
    } else {
      EXPECT_TRUE(call.status == 200 || call.status == 503 || call.error == httplib::Error::Connection)
          << call.status << " " << httplib::to_string(call.error);
      refused += call.status == 503 || call.error == httplib::Error::Connection;
    }
  }
  EXPECT_GE(in_flight_completed, 1) << "no request was in flight at SIGTERM";
  EXPECT_GE(refused, 1);
  const std::string log = read_file(dir.path / "serve.log");
  EXPECT_HAS(log, "SIGTERM received; draining");
  EXPECT_HAS(log, "graft serve: stopped");
}

}  // namespace
}  // namespace graft::testing
