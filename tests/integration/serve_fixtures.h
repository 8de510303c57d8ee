// What the `graft serve` tests share: adapters made on MiniLM and saved as folders (a
// LoRA and a Houlsby adapter with SST-2 heads, a LoRA without a head, an extra one to
// load at run time), and JSON over httplib::Client.
#pragma once
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <memory>
#include <thread>

#include "graft/session.h"
#include "integration/cli_harness.h"
#include "integration/peft_harness.h"
#include "serve/server.h"

namespace graft::testing {

using json = nlohmann::json;

// LoRA with B drawn at random (init_lora_weights false): each adapter changes the output
// from the start, so adapters are told apart without training.
inline const char* kServeLoraA = R"({"r": 4, "init_lora_weights": false, "target_modules": ["query", "value"]})";
inline const char* kServeLoraB = R"({"r": 8, "init_lora_weights": false, "target_modules": "all-linear"})";

// Saves under `dir`: lora/, houlsby/ (both with a 2-class SST-2 head), bare/ (no head), extra/.
inline void make_adapter_folders(const std::filesystem::path& dir) {
  Session maker(minilm_path());
  const data::Dataset sst2 = sst2_rows("train", 0, 8);
  maker.add_adapter("lora", "lora", kServeLoraA, 1);
  maker.add_head("lora", sst2);
  maker.add_adapter("houlsby", "houlsby", "", 2);
  maker.add_head("houlsby", sst2);
  maker.add_adapter("bare", "lora", kServeLoraB, 3);
  maker.add_adapter("extra", "lora", kServeLoraB, 4);
  maker.add_head("extra", sst2);
  for (const char* name : {"lora", "houlsby", "bare", "extra"}) maker.save_adapter(name, dir / name);
}

// Real SST-2 dev sentences.
inline std::vector<std::string> sst2_texts(std::size_t first, std::size_t count) {
  std::vector<std::string> out;
  for (const auto& e : sst2_rows("dev", first, count).examples) out.push_back(e.text);
  return out;
}

// A server on `session` at a port the OS picks, serving on its own thread until destroyed.
struct ServerThread {
  std::unique_ptr<serve::Server> server;
  std::thread thread;
  int port = 0;

  ServerThread(Session& session, serve::ServerOptions options) {
    options.port = 0;
    server = std::make_unique<serve::Server>(session, options);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  ~ServerThread() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

struct Reply {
  int status = -1;  // -1: no response (the transport error is in `error`)
  json body;
  std::string text, content_type;
  httplib::Error error = httplib::Error::Success;
};

inline Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) {
    out.error = r.error();
    return out;
  }
  out.status = r->status;
  out.text = r->body;
  out.content_type = r->get_header_value("Content-Type");
  if (out.content_type.rfind("application/json", 0) == 0) out.body = json::parse(r->body, nullptr, false);
  return out;
}

inline Reply post(httplib::Client& c, const std::string& path, const std::string& body) {
  return to_reply(c.Post(path.c_str(), body, "application/json"));
}
inline Reply post(httplib::Client& c, const std::string& path, const json& body) { return post(c, path, body.dump()); }
inline Reply get(httplib::Client& c, const std::string& path) { return to_reply(c.Get(path.c_str())); }
inline Reply del(httplib::Client& c, const std::string& path) { return to_reply(c.Delete(path.c_str())); }

inline json classify_body(const std::string& adapter, const std::vector<std::string>& texts) {
  json inputs = json::array();
  for (const auto& t : texts) inputs.push_back({{"text", t}});
  return {{"adapter", adapter}, {"inputs", inputs}};
}

inline double max_abs(const std::vector<float>& a, const json& b) {
  if (!b.is_array() || b.size() != a.size()) return 1e30;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i].get<double>()));
  return m;
}

// The worst difference between predictions and a /v1/classify reply (1e30: shapes differ
// or a label differs).
inline double classify_diff(const std::vector<Prediction>& want, const json& reply) {
  if (!reply.contains("predictions") || reply["predictions"].size() != want.size()) return 1e30;
  double m = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const json& p = reply["predictions"][i];
    if (p.value("label", -2) != want[i].label) return 1e30;
    m = std::max(m, max_abs(want[i].probabilities, p["probabilities"]));
  }
  return m;
}

inline double embed_diff(const std::vector<std::vector<float>>& want, const json& reply) {
  if (!reply.contains("data") || reply["data"].size() != want.size()) return 1e30;
  double m = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (reply["data"][i]["index"] != i) return 1e30;
    m = std::max(m, max_abs(want[i], reply["data"][i]["embedding"]));
  }
  return m;
}

// The sample value of a Prometheus line `name{labels} value` (labels as written; "" for
// none), or -1 when the metric is not there.
inline double metric(const std::string& text, const std::string& name_and_labels) {
  const std::string key = name_and_labels + " ";
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size()));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return -1;
}

}  // namespace graft::testing
