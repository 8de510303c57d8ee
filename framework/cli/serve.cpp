// graft serve --backbone B [--adapter NAME=DIR]... [--host H] [--port P] [limits...]
// The HTTP server of serve/server.h on one Session (docs/serving.md). SIGTERM and SIGINT
// drain it: requests in flight (queued batches included) finish, new ones get 503, and
// the command exits 0. The signals are blocked in every thread before any starts, and
// one thread takes them with sigwait.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "graft/error.h"
#include "graft/session.h"
#include "serve/server.h"

namespace graft::cli {

int cmd_serve(const std::vector<std::string>& argv) {
  Args args("serve", argv,
            {{.name = "backbone", .help = "a model folder or llama2.c checkpoint to serve", .example = ".cache/models/all-MiniLM-L6-v2",
              .required = true},
             {.name = "adapter", .help = "NAME=DIR: an adapter folder served as NAME; repeatable", .example = "sst2=runs/sst2/best",
              .default_note = "none"},
             {.name = "host", .help = "the address to listen on", .value = "127.0.0.1", .example = "0.0.0.0"},
             {.name = "port", .help = "the TCP port; 0 picks a free one (the listening line tells)", .value = "8080", .example = "0"},
             {.name = "max-batch", .help = "rows per batched call, and inputs per request", .value = "32", .example = "64"},
             {.name = "max-wait-ms", .help = "how long a batch waits for more rows after its first", .value = "5", .example = "2"},
             {.name = "max-body-bytes", .help = "largest request body (413 past it)", .value = "1048576", .example = "65536"},
             {.name = "max-input-tokens", .help = "longest input, special tokens included (400 past it)", .example = "256",
              .default_note = "the backbone's positions"},
             {.name = "max-concurrent", .help = "requests served at once (429 past it)", .value = "64", .example = "16"},
             {.name = "max-adapters", .help = "adapters loaded at once (POST /v1/adapters: 429 past it)", .value = "64", .example = "8"},
             dtype_option(), plugin_dir_option()});
  // Before any thread starts (the session's, httplib's, the batcher's): they inherit it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  serve::ServerOptions options;
  options.host = args.get("host");
  options.port = static_cast<int>(args.integer("port", 0, 65535));
  options.max_batch = args.count("max-batch", 4096);
  options.max_wait_ms = static_cast<int>(args.integer("max-wait-ms", 0, 60000));
  options.max_body_bytes = args.count("max-body-bytes", std::int64_t{1} << 32);
  options.max_concurrent = args.count("max-concurrent", 4096);
  options.max_adapters = args.count("max-adapters", 1 << 16);
  Session session = open_session(args);
  const auto positions = session.backbone_info().max_positions;
  options.max_input_tokens = args.count("max-input-tokens", static_cast<std::size_t>(positions), positions);
  for (const auto& spec : args.values("adapter")) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw ConfigError("serve", fmt::format("--adapter '{}' is not NAME=DIR", spec), "e.g. --adapter sst2=runs/sst2/best");
    with_plugin_warnings(session, [&] { session.load_adapter(spec.substr(0, eq), spec.substr(eq + 1)); });
  }
  if (session.adapter_names().size() > options.max_adapters)
    throw ConfigError("serve", fmt::format("{} adapters given, over --max-adapters {}", session.adapter_names().size(), options.max_adapters),
                      "raise --max-adapters");

  serve::Server server(session, options);
  const int port = server.bind();
  const std::size_t adapters = session.adapter_names().size();
  fmt::print("graft serve: listening on http://{}:{} (backbone {}, {} adapter{})\n", options.host, port,
             session.backbone_info().source, adapters, adapters == 1 ? "" : "s");
  std::fflush(stdout);

  std::atomic<bool> finished{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (finished) return;  // woken by the main thread: the server already stopped
    fmt::print(stderr, "graft serve: {} received; draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
  });
  server.run();
  finished = true;
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  fmt::print(stderr, "graft serve: stopped\n");
  return 0;
}

}  // namespace graft::cli
