// The handlers of `graft serve` (see server.h and docs/serving.md). Each request is
// validated field by field before anything runs; a refused request is a JSON error
// naming the field, limit or adapter, with a hint, and the server keeps serving.
#include "serve/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include <sys/socket.h>

#include "graft/error.h"
#include "graft/task.h"
#include "serve/batcher.h"
#include "serve/metrics.h"

namespace graft::serve {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxJsonDepth = 64;

// A request refused: its status, OpenAI-style type, the field it concerns ("" = null).
struct ApiError : std::runtime_error {
  int status;
  std::string type, param;
  ApiError(int s, std::string t, const std::string& message, std::string p = "")
      : std::runtime_error(message), status(s), type(std::move(t)), param(std::move(p)) {}
};

// A streaming client that went away: thrown from on_text to stop generating.
struct ClientGone {};

const char* type_of(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 409: return "conflict_error";
    case 413: return "request_too_large";
    case 414: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

json error_json(int status, const std::string& type, const std::string& message, const std::string& param) {
  return {{"error",
           {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", status}}}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_json(e.status, e.type, e.what(), e.param));
}

ApiError bad_request(const std::string& message, const std::string& param = "") {
  return ApiError(400, "invalid_request_error", message, param);
}

// Counted on the raw text before parsing: deeper input is refused, not walked.
void check_depth(const std::string& body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw bad_request(fmt::format("the JSON body nests deeper than {} levels", kMaxJsonDepth),
                          "");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw bad_request("the request has no body; send a JSON object (Content-Type: application/json)");
  check_depth(req.body);
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw bad_request(fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw bad_request(fmt::format("the body must be a JSON object, not {}", body.type_name()));
  return body;
}

// The field, or nullptr when absent or null.
const json* field(const json& body, const std::string& name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

ApiError wrong_type(const std::string& name, const char* want, const json& got) {
  return bad_request(fmt::format("'{}' must be {}, not {}", name, want, got.type_name()), name);
}

// `shown`: the field's path in messages ("inputs[2].text"); default its name.
std::string string_field(const json& body, const std::string& name, std::optional<std::string> fallback,
                         const std::string& shown = "") {
  const json* f = field(body, name);
  const std::string& path = shown.empty() ? name : shown;
  if (!f) {
    if (fallback) return *fallback;
    throw bad_request(fmt::format("'{}' is missing; it is required", path), path);
  }
  if (!f->is_string()) throw wrong_type(path, "a string", *f);
  return f->get<std::string>();
}

std::int64_t integer_field(const json& body, const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) {
  const json* f = field(body, name);
  if (!f) return fallback;
  if (!f->is_number_integer()) throw wrong_type(name, "an integer", *f);
  const bool is_unsigned = f->is_number_unsigned();
  const bool outside = is_unsigned ? f->get<std::uint64_t>() > static_cast<std::uint64_t>(max) ||
                                         (min > 0 && f->get<std::uint64_t>() < static_cast<std::uint64_t>(min))
                                   : f->get<std::int64_t>() < min || f->get<std::int64_t>() > max;
  if (outside)
    throw bad_request(fmt::format("'{}' must lie in [{}, {}], not {}", name, min, max, f->dump()), name);
  return is_unsigned ? static_cast<std::int64_t>(f->get<std::uint64_t>()) : f->get<std::int64_t>();
}

double number_field(const json& body, const std::string& name, double fallback, double min, double max, bool open_min = false) {
  const json* f = field(body, name);
  if (!f) return fallback;
  if (!f->is_number()) throw wrong_type(name, "a number", *f);
  const double v = f->get<double>();
  if (!(v >= min && v <= max) || (open_min && v == min))
    throw bad_request(fmt::format("'{}' must lie in {}{}, {}], not {}", name, open_min ? "(" : "[", min, max, f->dump()), name);
  return v;
}

bool bool_field(const json& body, const std::string& name, bool fallback) {
  const json* f = field(body, name);
  if (!f) return fallback;
  if (!f->is_boolean()) throw wrong_type(name, "true or false", *f);
  return f->get<bool>();
}

// An adapter name that a URL path can carry.
void check_adapter_name(const std::string& name) {
  if (name.empty() || name.size() > 128)
    throw bad_request("'name' must be 1 to 128 characters", "name");
  for (const char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      throw bad_request(fmt::format("'name' may hold letters, digits, '-', '_' and '.' only, not '{}'", name), "name");
}

std::string backbone_name(const BackboneInfo& info) {
  fs::path p(info.source);
  if (p.filename().empty()) p = p.parent_path();
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p.stem().string() : p.filename().string();
}

// Known endpoints: the methods each accepts (for 405 and metric labels).
struct Route {
  const char* label;
  std::vector<std::string> methods;
};
const Route* route_of(const std::string& path) {
  static const std::vector<std::pair<std::string, Route>> routes = {
      {"/v1/classify", {"/v1/classify", {"POST"}}},
      {"/v1/embeddings", {"/v1/embeddings", {"POST"}}},
      {"/v1/completions", {"/v1/completions", {"POST"}}},
      {"/v1/adapters", {"/v1/adapters", {"GET", "POST"}}},
      {"/health", {"/health", {"GET"}}},
      {"/metrics", {"/metrics", {"GET"}}},
  };
  static const Route adapter_route{"/v1/adapters/{name}", {"DELETE"}};
  for (const auto& [p, r] : routes)
    if (p == path) return &r;
  if (path.rfind("/v1/adapters/", 0) == 0 && path.size() > 13) return &adapter_route;
  return nullptr;
}

thread_local Clock::time_point t_request_start{};

}  // namespace

struct Server::Impl {
  Session& session;
  ServerOptions options;
  std::string model;  // the backbone's name in "model" fields
  Metrics metrics;
  Batcher batcher;
  httplib::Server svr;
  std::mutex admin;  // POST/DELETE /v1/adapters, one at a time
  std::atomic<bool> draining{false}, run_entered{false}, run_returned{false};
  int port = -1;
  int listen_fd = -1;  // the listening socket, to raise httplib's backlog of 5

  Impl(Session& s, ServerOptions o)
      : session(s),
        options(std::move(o)),
        model(options.model_name.empty() ? backbone_name(s.backbone_info()) : options.model_name),
        batcher(s, options.max_batch, std::chrono::milliseconds(options.max_wait_ms), [this](std::size_t rows) { metrics.batch(rows); }) {
    if (options.max_input_tokens == 0) options.max_input_tokens = static_cast<std::size_t>(s.backbone_info().max_positions);
    routes();
  }

  // ---- helpers ------------------------------------------------------------------------
  bool has_adapter(const std::string& name) const {
    const auto names = session.adapter_names();
    return std::find(names.begin(), names.end(), name) != names.end();
  }
  ApiError unknown_adapter(const std::string& name, const std::string& param) const {
    const auto names = session.adapter_names();
    return ApiError(404, "not_found_error",
                    fmt::format("no adapter named '{}'; loaded: {} (GET /v1/adapters lists them, POST /v1/adapters loads one)", name,
                                names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))),
                    param);
  }
  // "" for the bare backbone ("model" omitted, "" or the backbone's name), else an adapter.
  std::string model_adapter(const json& body) const {
    const std::string m = string_field(body, "model", std::string());
    if (m.empty() || m == model) return "";
    if (!has_adapter(m)) throw unknown_adapter(m, "model");
    return m;
  }
  // The row's tokens (special tokens included), refused past --max-input-tokens.
  std::size_t check_tokens(const TextInput& row, const std::string& param) const {
    if (!session.has_tokenizer()) throw bad_request("the backbone has no tokenizer graft can read", param);
    const std::size_t n = session.count_tokens(row);
    if (n > options.max_input_tokens)
      throw bad_request(fmt::format("{} is {} tokens, over the limit of {} (--max-input-tokens)", param, n, options.max_input_tokens),
                        param);
    return n;
  }
  void check_rows(std::size_t n, const std::string& param) const {
    if (n == 0) throw bad_request(fmt::format("'{}' is empty; send at least one input", param), param);
    if (n > options.max_batch)
      throw bad_request(fmt::format("'{}' holds {} inputs, over the limit of {} per request (--max-batch); split it", param, n,
                                    options.max_batch),
                        param);
  }
  // The batch's rows for this request; a failure named as the request's own.
  BatchResult await(std::future<BatchResult> f, const std::string& adapter, const std::string& param) const {
    try {
      return f.get();
    } catch (const BatcherStopped& e) {
      throw ApiError(503, "service_unavailable", "the server is shutting down; retry on another instance");
    } catch (const Error& e) {
      if (!adapter.empty() && !has_adapter(adapter)) throw unknown_adapter(adapter, param);
      throw bad_request(e.what(), param);
    }
  }

  // Every work endpoint: draining → 503, over --max-concurrent → 429, errors → JSON.
  // `release` is set by a streaming handler that hands its in-flight count to the stream.
  using Work = std::function<void(const httplib::Request&, httplib::Response&, bool& keep_counted)>;
  httplib::Server::Handler work(Work f) {
    return [this, f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
      const std::int64_t now = ++metrics.inflight;
      bool counted_by_stream = false;
      try {
        if (draining) throw ApiError(503, "service_unavailable", "the server is draining (shutting down); retry on another instance");
        if (now > static_cast<std::int64_t>(options.max_concurrent))
          throw ApiError(429, "rate_limit_error",
                         fmt::format("{} requests in flight, over the limit of {} (--max-concurrent); retry shortly", now,
                                     options.max_concurrent));
        f(req, res, counted_by_stream);
      } catch (const ApiError& e) {
        counted_by_stream = false;
        send_error(res, e);
      } catch (const Error& e) {
        counted_by_stream = false;
        send_error(res, bad_request(e.what()));
      } catch (const std::exception& e) {
        counted_by_stream = false;
        send_error(res, ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
      }
      if (!counted_by_stream) --metrics.inflight;
    };
  }

  // ---- endpoints ----------------------------------------------------------------------
  void classify(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string adapter = string_field(body, "adapter", std::nullopt);
    if (!has_adapter(adapter)) throw unknown_adapter(adapter, "adapter");
    AdapterInfo info;
    try {
      info = session.adapter(adapter);
    } catch (const Error&) {
      throw unknown_adapter(adapter, "adapter");
    }
    if (!info.head)
      throw bad_request(fmt::format("adapter '{}' has no task head, so it cannot classify; use an adapter trained with one "
                                    "(graft train saves it), or /v1/embeddings",
                                    adapter),
                        "adapter");
    if (info.head->kind != TaskKind::classification && info.head->kind != TaskKind::regression)
      throw bad_request(fmt::format("adapter '{}' holds a {} head; /v1/classify serves classification and regression heads", adapter,
                                    task_kind_name(info.head->kind)),
                        "adapter");
    const json* inputs = field(body, "inputs");
    if (!inputs) throw bad_request("'inputs' is missing; send [{\"text\": \"...\"}, ...]", "inputs");
    if (!inputs->is_array()) throw wrong_type("inputs", "an array of {\"text\", \"text_pair\"} objects", *inputs);
    check_rows(inputs->size(), "inputs");
    std::vector<TextInput> rows;
    for (std::size_t i = 0; i < inputs->size(); ++i) {
      const json& item = (*inputs)[i];
      const std::string at = fmt::format("inputs[{}]", i);
      TextInput row;
      if (item.is_string()) {
        row.text = item.get<std::string>();
      } else if (item.is_object()) {
        row.text = string_field(item, "text", std::nullopt, at + ".text");
        if (field(item, "text_pair")) row.pair = string_field(item, "text_pair", std::nullopt, at + ".text_pair");
      } else {
        throw wrong_type(at, "an object {\"text\": ..., \"text_pair\": ...} or a string", item);
      }
      check_tokens(row, at);
      rows.push_back(std::move(row));
    }
    const std::size_t n = rows.size();
    const BatchResult r = await(batcher.submit(BatchKind::classify, std::move(rows), std::vector<std::string>(n, adapter)), adapter, "adapter");
    json predictions = json::array();
    const bool regression = info.head->kind == TaskKind::regression;
    for (const auto& p : r.predictions) {
      if (regression) predictions.push_back({{"value", p.value}});
      else predictions.push_back({{"label", p.label}, {"value", p.value}, {"probabilities", p.probabilities}});
    }
    send_json(res, 200, {{"adapter", adapter}, {"predictions", predictions}});
  }

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string adapter = model_adapter(body);
    const std::string format = string_field(body, "encoding_format", std::string("float"));
    if (format != "float")
      throw bad_request(fmt::format("'encoding_format' '{}' is not supported; use \"float\"", format), "encoding_format");
    const json* input = field(body, "input");
    if (!input) throw bad_request("'input' is missing; send a string or an array of strings", "input");
    std::vector<TextInput> rows;
    if (input->is_string()) {
      rows.push_back({input->get<std::string>(), std::nullopt});
    } else if (input->is_array()) {
      check_rows(input->size(), "input");
      for (std::size_t i = 0; i < input->size(); ++i) {
        if (!(*input)[i].is_string())
          throw wrong_type(fmt::format("input[{}]", i), "a string (token arrays are not supported)", (*input)[i]);
        rows.push_back({(*input)[i].get<std::string>(), std::nullopt});
      }
    } else {
      throw wrong_type("input", "a string or an array of strings", *input);
    }
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) tokens += check_tokens(rows[i], input->is_string() ? "input" : fmt::format("input[{}]", i));
    const std::size_t n = rows.size();
    const BatchResult r = await(batcher.submit(BatchKind::embed, std::move(rows), std::vector<std::string>(n, adapter)), adapter, "model");
    json data = json::array();
    for (std::size_t i = 0; i < r.embeddings.size(); ++i)
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", r.embeddings[i]}});
    send_json(res, 200,
              {{"object", "list"}, {"data", data}, {"model", adapter.empty() ? model : adapter},
               {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  }

  void completions(const httplib::Request& req, httplib::Response& res, bool& counted_by_stream) {
    const json body = parse_body(req);
    const BackboneInfo& info = session.backbone_info();
    if (!info.causal)
      throw bad_request(fmt::format("the backbone '{}' is an encoder ({}): it cannot generate text; /v1/completions needs a decoder "
                                    "backbone (llama2.c or LLaMA); use /v1/embeddings or /v1/classify here",
                                    model, info.architecture),
                        "model");
    if (!session.has_tokenizer()) throw bad_request("the backbone has no tokenizer graft can read, so it cannot generate text");
    const std::string adapter = model_adapter(body);
    const json* p = field(body, "prompt");
    if (!p) throw bad_request("'prompt' is missing; send the text to continue", "prompt");
    if (!p->is_string()) throw wrong_type("prompt", "a string (one prompt per request)", *p);
    const std::string prompt = p->get<std::string>();
    if (const json* n = field(body, "n"); n && !(n->is_number_integer() && n->get<std::int64_t>() == 1))
      throw bad_request("'n' must be 1: one completion per request", "n");
    if (field(body, "stop")) throw bad_request("'stop' is not supported; generation stops at the model's end of text", "stop");
    GenerateOptions g;
    g.max_new_tokens = integer_field(body, "max_tokens", 16, 1, info.max_positions);
    g.temperature = static_cast<float>(number_field(body, "temperature", 1.0, 0, 2));
    g.top_p = static_cast<float>(number_field(body, "top_p", 1.0, 0, 1, true));
    g.seed = field(body, "seed") ? static_cast<std::uint64_t>(integer_field(body, "seed", 0, 0, INT64_MAX)) : std::random_device{}();
    const bool stream = bool_field(body, "stream", false);
    const TextInput row{prompt, std::nullopt};
    const std::size_t prompt_tokens = check_tokens(row, "prompt");
    const Selection selection = adapter.empty() ? Selection::none() : Selection::one(adapter);
    const std::string id = fmt::format("cmpl-{:016x}", std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}());
    const std::int64_t created = static_cast<std::int64_t>(std::time(nullptr));
    const std::string shown_model = adapter.empty() ? model : adapter;
    auto usage = [prompt_tokens](std::size_t completion) {
      return json{{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion}, {"total_tokens", prompt_tokens + completion}};
    };
    if (!stream) {
      std::size_t pieces = 0;
      std::string text;
      try {
        text = session.generate(prompt, selection, g, [&](const std::string&) { ++pieces; });
      } catch (const Error& e) {
        if (!adapter.empty() && !has_adapter(adapter)) throw unknown_adapter(adapter, "model");
        throw bad_request(e.what());
      }
      const char* finish = static_cast<std::int64_t>(pieces) >= g.max_new_tokens ? "length" : "stop";
      send_json(res, 200,
                {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", shown_model},
                 {"choices", json::array({{{"text", text}, {"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}}})},
                 {"usage", usage(pieces)}});
      return;
    }
    // Server-sent events: one chunk per piece, a last chunk with finish_reason, [DONE].
    // The generation runs in the content provider, on this connection's thread; the
    // in-flight count is the stream's until the response is released.
    counted_by_stream = true;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, prompt, selection, g, id, created, shown_model, adapter, usage](std::size_t, httplib::DataSink& sink) {
          auto chunk = [&](const std::string& text, const json& finish) {
            json c = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", shown_model},
                      {"choices", json::array({{{"text", text}, {"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}}})}};
            const std::string event = "data: " + dump(c) + "\n\n";
            return sink.write(event.data(), event.size());
          };
          std::size_t pieces = 0;
          try {
            session.generate(prompt, selection, g, [&](const std::string& piece) {
              ++pieces;
              if (!chunk(piece, nullptr)) throw ClientGone{};
            });
          } catch (const ClientGone&) {
            return false;  // the client went away: stop generating, drop the connection
          } catch (const std::exception& e) {
            const std::string event = "data: " + dump(error_json(400, "invalid_request_error", e.what(), "")) + "\n\n";
            sink.write(event.data(), event.size());
            sink.done();
            return true;
          }
          if (!chunk("", static_cast<std::int64_t>(pieces) >= g.max_new_tokens ? "length" : "stop")) return false;
          static const std::string done = "data: [DONE]\n\n";
          if (!sink.write(done.data(), done.size())) return false;
          sink.done();
          return true;
        },
        [this](bool) { --metrics.inflight; });
  }

  json adapter_json(const AdapterInfo& a) const {
    json head = nullptr;
    if (a.head) head = {{"kind", task_kind_name(a.head->kind)}, {"num_labels", a.head->num_labels}};
    return {{"id", a.name}, {"object", "adapter"}, {"method", a.method}, {"trainable_parameters", a.trainable_parameters},
            {"head", head}, {"source", a.source.empty() ? json(nullptr) : json(a.source.string())}};
  }

  void list_adapters(httplib::Response& res) const {
    json data = json::array();
    for (const auto& name : session.adapter_names()) {
      try {
        data.push_back(adapter_json(session.adapter(name)));
      } catch (const Error&) {
        // unloaded since the names were read
      }
    }
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  }

  void load_adapter(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string name = string_field(body, "name", std::nullopt);
    check_adapter_name(name);
    const std::string path = string_field(body, "path", std::nullopt);
    if (path.empty()) throw bad_request("'path' is empty; give the adapter folder", "path");
    std::lock_guard lock(admin);
    const auto names = session.adapter_names();
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw ApiError(409, "conflict_error", fmt::format("an adapter named '{}' is already loaded; DELETE /v1/adapters/{} first, or pick another name", name, name),
                     "name");
    if (names.size() >= options.max_adapters)
      throw ApiError(429, "rate_limit_error",
                     fmt::format("{} adapters are loaded, the limit (--max-adapters {}); DELETE one first", names.size(), options.max_adapters),
                     "name");
    try {
      session.load_adapter(name, path);
    } catch (const Error& e) {
      throw bad_request(fmt::format("cannot load '{}' from {}: {}", name, path, e.what()), "path");
    } catch (const fs::filesystem_error& e) {
      throw bad_request(fmt::format("cannot load '{}' from {}: {}", name, path, e.what()), "path");
    }
    send_json(res, 200, adapter_json(session.adapter(name)));
  }

  void unload_adapter(const std::string& name, httplib::Response& res) {
    std::lock_guard lock(admin);
    if (!has_adapter(name)) throw unknown_adapter(name, "name");
    session.unload_adapter(name);
    send_json(res, 200, {{"id", name}, {"object", "adapter"}, {"deleted", true}});
  }

  // ---- routing ------------------------------------------------------------------------
  void routes() {
    using Req = const httplib::Request&;
    using Res = httplib::Response&;
    svr.new_task_queue = [n = options.max_concurrent + 16] { return new httplib::ThreadPool(n); };
    svr.set_payload_max_length(options.max_body_bytes);
    // httplib's own options (SO_REUSEADDR), and the socket kept: bind() raises its backlog.
    svr.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_fd = sock;
    });
    svr.set_pre_routing_handler([](Req, Res) {
      t_request_start = Clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_logger([this](Req req, const httplib::Response& res) {
      const auto start = t_request_start == Clock::time_point{} ? Clock::now() : t_request_start;
      t_request_start = {};
      const Route* r = route_of(req.path);
      metrics.request(r ? r->label : "other", res.status, std::chrono::duration<double>(Clock::now() - start).count());
    });
    // httplib's own refusals (413, a bad request line...) as JSON errors too.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([this](Req, Res res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message = fmt::format("HTTP {}", res.status);
      if (res.status == 413)
        message = fmt::format("the request body is over the limit of {} bytes (--max-body-bytes); send less per request",
                              options.max_body_bytes);
      else if (res.status == 414) message = "the request URI is too long";
      else if (res.status == 400) message = "the HTTP request is malformed (a POST needs a Content-Length or a chunked body)";
      res.set_content(dump(error_json(res.status, type_of(res.status), message, "")), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](Req, Res res, std::exception_ptr) {
      send_json(res, 500, error_json(500, "server_error", "internal error", ""));
    });

    svr.Post("/v1/classify", work([this](Req req, Res res, bool&) { classify(req, res); }));
    svr.Post("/v1/embeddings", work([this](Req req, Res res, bool&) { embeddings(req, res); }));
    svr.Post("/v1/completions", work([this](Req req, Res res, bool& streamed) { completions(req, res, streamed); }));
    svr.Get("/v1/adapters", work([this](Req, Res res, bool&) { list_adapters(res); }));
    svr.Post("/v1/adapters", work([this](Req req, Res res, bool&) { load_adapter(req, res); }));
    svr.Delete(R"(/v1/adapters/([^/]+))", work([this](Req req, Res res, bool&) { unload_adapter(req.matches[1], res); }));
    svr.Get("/health", [this](Req, Res res) {
      if (draining) send_json(res, 503, {{"status", "draining"}});
      else send_json(res, 200, {{"status", "ok"}, {"adapters", session.adapter_names().size()}});
    });
    svr.Get("/metrics", [this](Req, Res res) {
      res.status = 200;
      res.set_content(metrics.render(session.adapter_names().size()), "text/plain; version=0.0.4");
    });
    // Anything else: 405 on a known path with another method, else 404.
    auto fallback = [](const char* method) {
      return [method](Req req, Res res) {
        const Route* r = route_of(req.path);
        if (!r) {
          send_json(res, 404,
                    error_json(404, "not_found_error",
                               fmt::format("no endpoint {} {}; endpoints: POST /v1/classify, POST /v1/embeddings, POST /v1/completions, "
                                           "GET|POST /v1/adapters, DELETE /v1/adapters/NAME, GET /health, GET /metrics",
                                           method, req.path),
                               ""));
          return;
        }
        res.set_header("Allow", fmt::format("{}", fmt::join(r->methods, ", ")));
        send_json(res, 405,
                  error_json(405, "method_not_allowed",
                             fmt::format("{} accepts {}, not {}", r->label, fmt::join(r->methods, " or "), method), ""));
      };
    };
    svr.Get(".*", fallback("GET"));
    svr.Post(".*", fallback("POST"));
    svr.Put(".*", fallback("PUT"));
    svr.Patch(".*", fallback("PATCH"));
    svr.Delete(".*", fallback("DELETE"));
    svr.Options(".*", fallback("OPTIONS"));
  }
};

Server::Server(Session& session, ServerOptions options) : impl_(std::make_unique<Impl>(session, std::move(options))) {}

Server::~Server() {
  if (impl_->run_entered && !impl_->run_returned) stop();
  impl_->batcher.stop();
}

int Server::bind() {
  Impl& s = *impl_;
  if (s.port > 0) return s.port;
  const int port = s.options.port == 0 ? s.svr.bind_to_any_port(s.options.host)
                                       : (s.svr.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (port <= 0)
    throw ConfigError("serve", fmt::format("cannot listen on {}:{}", s.options.host, s.options.port),
                      "is another server on that port? pick another with --port, or --port 0 for a free one");
  // Debian's build listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled in):
  // a burst of clients overflowed it and lost connections under load. Listening again
  // on the same socket only changes the backlog.
  if (s.listen_fd >= 0) ::listen(s.listen_fd, 1024);
  s.port = port;
  return port;
}

int Server::port() const { return impl_->port; }

void Server::run() {
  Impl& s = *impl_;
  bind();
  s.run_entered = true;
  if (!s.draining) s.svr.listen_after_bind();
  // Every request has been answered (httplib joins its threads); run what is queued.
  s.batcher.stop();
  s.run_returned = true;
}

void Server::stop() {
  Impl& s = *impl_;
  s.draining = true;
  const auto deadline = Clock::now() + std::chrono::seconds(s.options.drain_timeout_s);
  // Until nothing has been in flight for 50 ms: a client between two requests gets its
  // 503 rather than a connection closed under it.
  for (auto idle_since = Clock::now(); Clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(5))) {
    if (s.metrics.inflight.load() > 0) idle_since = Clock::now();
    else if (Clock::now() - idle_since >= std::chrono::milliseconds(50)) break;
  }
  // listen() may not have started yet: wait for it, so that stopping it takes.
  const auto started = Clock::now() + std::chrono::seconds(5);
  while (s.run_entered && !s.run_returned && !s.svr.is_running() && Clock::now() < started)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.svr.stop();
}

bool Server::draining() const { return impl_->draining; }
const ServerOptions& Server::options() const { return impl_->options; }

}  // namespace graft::serve
