// `graft serve`: an HTTP server (cpp-httplib) on one graft::Session. Endpoints (JSON;
// docs/serving.md): POST /v1/classify, POST /v1/embeddings and POST /v1/completions
// (OpenAI shapes), GET/POST /v1/adapters, DELETE /v1/adapters/NAME, GET /health and
// GET /metrics (Prometheus text). Classify and embeddings requests from many clients are
// batched into one Session call with one adapter per row (serve/batcher.h). Every error
// is a JSON body {"error": {"message", "type", "param", "code"}}.
//
// This header is what the `graft serve` command and the tests see; it includes only the
// public SDK. The server's internals stay in server.cpp.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "graft/session.h"

namespace graft::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: a free port the OS picks (port() tells)
  std::size_t max_batch = 32;           // rows per batched Session call; also per request
  int max_wait_ms = 5;                  // how long a batch waits for more rows after its first
  std::size_t max_body_bytes = 1 << 20; // larger bodies: 413
  std::size_t max_input_tokens = 0;     // per input (special tokens included); 0: the backbone's positions
  std::size_t max_concurrent = 64;      // requests served at once; more: 429
  std::size_t max_adapters = 64;        // adapters loaded at once; POST /v1/adapters past it: 429
  std::string model_name;               // the backbone's name in "model" fields; "": its folder's name
  int drain_timeout_s = 60;             // stop(): how long to wait for requests in flight
};

class Server {
 public:
  // The session must outlive the server. Adapters it already holds are served.
  Server(Session& session, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on host:port (connections queue from here on); returns the port.
  // Throws graft::ConfigError when it cannot.
  int bind();
  int port() const;
  // Serves until stop(): blocks. Returns once every request in flight has been answered
  // and the batch worker has run everything queued.
  void run();
  // From any thread (a signal thread): new requests get 503 {"status": "draining"},
  // requests in flight finish (up to drain_timeout_s), then run() returns.
  void stop();
  bool draining() const;
  const ServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::serve
