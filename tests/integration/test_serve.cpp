// The server of `graft serve` in process (serve::Server on a port the OS picks), on
// all-MiniLM-L6-v2 with adapters made here and served from their folders, over real
// sockets with httplib::Client: classify and embeddings equal Session::predict / embed
// of the same rows alone, concurrent clients on different adapters get their own
// results from mixed batches, adapters load and unload at run time without disturbing
// the others, every malformed request gets its 4xx JSON error, and /metrics moves.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <sstream>
#include <thread>

#include "integration/serve_fixtures.h"
#include "serve/server.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

// One Session and its server, started once for the whole binary.
struct Served {
  std::unique_ptr<Session> session;
  std::unique_ptr<ServerThread> served;
  int port = 0;

  Served(const fs::path& folders, serve::ServerOptions options) {
    session = std::make_unique<Session>(minilm_path());
    for (const char* name : {"lora", "houlsby", "bare"}) session->load_adapter(name, folders / name);
    served = std::make_unique<ServerThread>(*session, options);
    port = served->port;
  }
  httplib::Client client() const { return served->client(); }
};

struct Env {
  TempFolder dir{"serve"};
  std::unique_ptr<Served> main;
  Env() {
    make_adapter_folders(dir.path);
    serve::ServerOptions o;
    o.max_batch = 8;
    o.max_wait_ms = 30;  // long enough that concurrent clients share batches
    o.max_body_bytes = 64 * 1024;
    o.max_input_tokens = 64;
    o.max_adapters = 4;
    main = std::make_unique<Served>(dir.path, o);
  }
};

// Made by the first test that needs it; stopped by gtest's teardown, before the
// statics the server uses go away at exit.
std::unique_ptr<Env>& env_ptr() {
  static std::unique_ptr<Env> e;
  return e;
}
Env& env() {
  if (!env_ptr()) env_ptr() = std::make_unique<Env>();
  return *env_ptr();
}
struct StopServer : ::testing::Environment {
  void TearDown() override { env_ptr().reset(); }
};
::testing::Environment* const kStopServer = ::testing::AddGlobalTestEnvironment(new StopServer);
Session& session() { return *env().main->session; }
httplib::Client client() { return env().main->client(); }

const std::vector<std::string> kTexts = {"a gripping, beautifully shot film", "the plot never comes together",
                                         "an ordinary evening at the cinema"};

std::vector<TextInput> rows_of(const std::vector<std::string>& texts) {
  std::vector<TextInput> out;
  for (const auto& t : texts) out.push_back({t, std::nullopt});
  return out;
}

TEST(Serve, ClassifyEqualsPredictOfTheSameRowsAlone) {
  auto c = client();
  const auto texts = sst2_texts(0, 6);
  for (const char* adapter : {"lora", "houlsby"}) {
    SCOPED_TRACE(adapter);
    const Reply r = post(c, "/v1/classify", classify_body(adapter, texts));
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["adapter"], adapter);
    const auto want = session().predict(rows_of(texts), Selection::one(adapter));
    EXPECT_LT(classify_diff(want, r.body), 1e-5) << r.text;
    EXPECT_EQ(r.body["predictions"][0]["probabilities"].size(), 2u);
  }
  // A pair, and a plain string as an input.
  const json body = {{"adapter", "lora"},
                     {"inputs", json::array({{{"text", "a fine film"}, {"text_pair", "it was not fine at all"}}, "just text"})}};
  const Reply r = post(c, "/v1/classify", body);
  ASSERT_EQ(r.status, 200) << r.text;
  const auto want = session().predict({{"a fine film", std::string("it was not fine at all")}, {"just text", std::nullopt}},
                                      Selection::one("lora"));
  EXPECT_LT(classify_diff(want, r.body), 1e-5) << r.text;
  // The two adapters' heads really differ (so equality above means something).
  EXPECT_NE(session().predict(rows_of(texts), Selection::one("lora"))[0].probabilities,
            session().predict(rows_of(texts), Selection::one("houlsby"))[0].probabilities);
}

TEST(Serve, EmbeddingsEqualEmbedAndNameTheModel) {
  auto c = client();
  const std::vector<std::pair<json, std::string>> models = {
      {json(nullptr), ""}, {"", ""}, {"all-MiniLM-L6-v2", ""}, {"lora", "lora"}, {"bare", "bare"}};
  for (const auto& [model, adapter] : models) {
    SCOPED_TRACE(model.dump());
    json body = {{"input", kTexts}};
    if (!model.is_null()) body["model"] = model;
    const Reply r = post(c, "/v1/embeddings", body);
    ASSERT_EQ(r.status, 200) << r.text;
    const auto want = session().embed(kTexts, adapter.empty() ? Selection::none() : Selection::one(adapter));
    EXPECT_LT(embed_diff(want, r.body), 1e-5);
    EXPECT_EQ(r.body["object"], "list");
    EXPECT_EQ(r.body["data"][0]["object"], "embedding");
    EXPECT_EQ(r.body["model"], adapter.empty() ? "all-MiniLM-L6-v2" : adapter);
    std::size_t tokens = 0;
    for (const auto& t : kTexts) tokens += session().count_tokens({t, std::nullopt});
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], tokens);
    EXPECT_EQ(r.body["usage"]["total_tokens"], tokens);
  }
  // One string: one embedding; an adapter changes it.
  const Reply one = post(c, "/v1/embeddings", json{{"input", kTexts[0]}, {"model", "lora"}});
  ASSERT_EQ(one.status, 200) << one.text;
  EXPECT_LT(embed_diff(session().embed({kTexts[0]}, Selection::one("lora")), one.body), 1e-5);
  EXPECT_GT(max_abs(session().embed({kTexts[0]})[0], one.body["data"][0]["embedding"]), 1e-3);
}

TEST(Serve, ConcurrentClientsOnDifferentAdaptersGetTheirOwnResultsFromMixedBatches) {
  const auto texts = sst2_texts(10, 4);
  const auto want_lora = session().predict(rows_of(texts), Selection::one("lora"));
  const auto want_houlsby = session().predict(rows_of(texts), Selection::one("houlsby"));
  const auto want_bare = session().embed(texts, Selection::one("bare"));
  const auto want_none = session().embed(texts);
  auto before = client();
  const std::string metrics_before = get(before, "/metrics").text;
  std::atomic<int> ok{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto c = client();
      for (int i = 0; i < 4; ++i) {
        // Each client sends one row at a time: a batch of more than one row is several clients'.
        const std::size_t row = static_cast<std::size_t>(i + t) % texts.size();
        double diff = 1e30;
        Reply r;
        switch (t % 4) {
          case 0:
            r = post(c, "/v1/classify", classify_body("lora", {texts[row]}));
            diff = classify_diff({want_lora[row]}, r.body);
            break;
          case 1:
            r = post(c, "/v1/classify", classify_body("houlsby", {texts[row]}));
            diff = classify_diff({want_houlsby[row]}, r.body);
            break;
          case 2:
            r = post(c, "/v1/embeddings", json{{"model", "bare"}, {"input", texts[row]}});
            diff = embed_diff({want_bare[row]}, r.body);
            break;
          default:
            r = post(c, "/v1/embeddings", json{{"input", texts[row]}});
            diff = embed_diff({want_none[row]}, r.body);
        }
        (r.status == 200 && diff < 1e-5 ? ok : wrong)++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 32);
  EXPECT_EQ(wrong.load(), 0);
  auto c = client();
  const std::string m = get(c, "/metrics").text;
  const double batches = metric(m, "graft_batch_rows_count") - metric(metrics_before, "graft_batch_rows_count");
  const double single = metric(m, R"(graft_batch_rows_bucket{le="1"})") - metric(metrics_before, R"(graft_batch_rows_bucket{le="1"})");
  EXPECT_GT(batches, 0);
  EXPECT_GT(batches - single, 0) << "no batch held more than one row:\n" << m;
  EXPECT_LT(batches, 32) << "every request ran alone";
}

TEST(Serve, AdaptersLoadAndUnloadAtRunTimeWithoutDisturbingOthers) {
  auto c = client();
  const auto texts = sst2_texts(20, 3);
  const Reply list = get(c, "/v1/adapters");
  ASSERT_EQ(list.status, 200) << list.text;
  ASSERT_EQ(list.body["data"].size(), 3u) << list.text;
  for (const auto& a : list.body["data"]) {
    EXPECT_TRUE(a["id"] == "bare" || a["id"] == "houlsby" || a["id"] == "lora") << a;
    EXPECT_GT(a["trainable_parameters"].get<std::int64_t>(), 0);
    EXPECT_HAS(a["source"].get<std::string>(), a["id"].get<std::string>());
    if (a["id"] == "bare") EXPECT_TRUE(a["head"].is_null());
    else EXPECT_EQ(a["head"], (json{{"kind", "classification"}, {"num_labels", 2}}));
    EXPECT_EQ(a["method"], a["id"] == "houlsby" ? "houlsby" : "lora");
  }
  const Reply lora_before = post(c, "/v1/classify", classify_body("lora", texts));
  const Reply houlsby_before = post(c, "/v1/embeddings", json{{"model", "houlsby"}, {"input", texts}});
  ASSERT_EQ(lora_before.status, 200);
  ASSERT_EQ(houlsby_before.status, 200);

  const std::string extra = (env().dir.path / "extra").string();
  Reply r = post(c, "/v1/adapters", json{{"name", "extra"}, {"path", extra}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["id"], "extra");
  r = post(c, "/v1/classify", classify_body("extra", texts));
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_LT(classify_diff(session().predict(rows_of(texts), Selection::one("extra")), r.body), 1e-5);
  EXPECT_EQ(get(c, "/health").body["adapters"], 4);
  // Taken, and over --max-adapters (4 are loaded).
  r = post(c, "/v1/adapters", json{{"name", "extra"}, {"path", extra}});
  EXPECT_EQ(r.status, 409) << r.text;
  EXPECT_HAS(r.body["error"]["message"].get<std::string>(), "'extra' is already loaded");
  r = post(c, "/v1/adapters", json{{"name", "fifth"}, {"path", extra}});
  EXPECT_EQ(r.status, 429) << r.text;
  EXPECT_HAS(r.body["error"]["message"].get<std::string>(), "--max-adapters 4");

  r = del(c, "/v1/adapters/extra");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["deleted"], true);
  r = post(c, "/v1/classify", classify_body("extra", texts));
  EXPECT_EQ(r.status, 404) << r.text;
  EXPECT_HAS(r.body["error"]["message"].get<std::string>(), "no adapter named 'extra'");
  r = del(c, "/v1/adapters/extra");
  EXPECT_EQ(r.status, 404) << r.text;
  // A folder that is not an adapter: graft's own message.
  r = post(c, "/v1/adapters", json{{"name", "broken"}, {"path", (env().dir.path / "missing").string()}});
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body["error"]["param"], "path");
  EXPECT_HAS(r.body["error"]["message"].get<std::string>(), "missing");
  EXPECT_EQ(get(c, "/v1/adapters").body["data"].size(), 3u);

  // The others answer exactly as before.
  EXPECT_EQ(post(c, "/v1/classify", classify_body("lora", texts)).body, lora_before.body);
  EXPECT_EQ(post(c, "/v1/embeddings", json{{"model", "houlsby"}, {"input", texts}}).body, houlsby_before.body);
}

TEST(Serve, EveryMalformedRequestGetsItsJsonErrorAndTheServerKeepsServing) {
  auto c = client();
  const std::string long_text = fmt::format("{}", fmt::join(std::vector<std::string>(100, "word"), " "));
  std::string deep(100, '[');
  deep += std::string(100, ']');
  struct Case {
    std::string method, path, body;
    int status;
    std::string message, param;  // param "" = null
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/classify", "{\"adapter\": \"lora\", \"inputs\": [", 400, "not valid JSON", ""},
      {"POST", "/v1/classify", "[1, 2]", 400, "must be a JSON object, not array", ""},
      {"POST", "/v1/classify", R"({"inputs": [{"text": "x"}]})", 400, "'adapter' is missing", "adapter"},
      {"POST", "/v1/classify", R"({"adapter": 3, "inputs": [{"text": "x"}]})", 400, "'adapter' must be a string, not number", "adapter"},
      {"POST", "/v1/classify", R"({"adapter": "lora"})", 400, "'inputs' is missing", "inputs"},
      {"POST", "/v1/classify", R"({"adapter": "lora", "inputs": "x"})", 400, "'inputs' must be an array", "inputs"},
      {"POST", "/v1/classify", R"({"adapter": "lora", "inputs": []})", 400, "'inputs' is empty", "inputs"},
      {"POST", "/v1/classify", R"({"adapter": "lora", "inputs": [{"text": 5}]})", 400, "'inputs[0].text' must be a string, not number", "inputs[0].text"},
      {"POST", "/v1/classify", R"({"adapter": "lora", "inputs": [{"text_pair": "x"}]})", 400, "'inputs[0].text' is missing",
       "inputs[0].text"},
      {"POST", "/v1/classify", R"({"adapter": "lora", "inputs": [7]})", 400, "'inputs[0]' must be an object", "inputs[0]"},
      {"POST", "/v1/classify", classify_body("lora", std::vector<std::string>(9, "x")).dump(), 400,
       "holds 9 inputs, over the limit of 8 per request (--max-batch)", "inputs"},
      {"POST", "/v1/classify", classify_body("nope", {"x"}).dump(), 404, "no adapter named 'nope'; loaded: bare, houlsby, lora", "adapter"},
      {"POST", "/v1/classify", classify_body("bare", {"x"}).dump(), 400, "adapter 'bare' has no task head", "adapter"},
      {"POST", "/v1/classify", classify_body("lora", {long_text}).dump(), 400,
       "inputs[0] is 102 tokens, over the limit of 64 (--max-input-tokens)", "inputs[0]"},
      {"POST", "/v1/classify", classify_body("lora", {std::string(70 * 1024, 'a')}).dump(), 413,
       "over the limit of 65536 bytes (--max-body-bytes)", ""},
      {"POST", "/v1/classify", deep, 400, "nests deeper than 64 levels", ""},
      {"POST", "/v1/classify", "", 400, "no body", ""},
      {"POST", "/v1/embeddings", R"({"input": "x", "encoding_format": "base64"})", 400, "'encoding_format' 'base64' is not supported",
       "encoding_format"},
      {"POST", "/v1/embeddings", R"({"input": [[1, 2, 3]]})", 400, "'input[0]' must be a string (token arrays are not supported)",
       "input[0]"},
      {"POST", "/v1/embeddings", R"({"input": 4})", 400, "'input' must be a string or an array of strings", "input"},
      {"POST", "/v1/embeddings", R"({"model": "gpt-4", "input": "x"})", 404, "no adapter named 'gpt-4'", "model"},
      {"POST", "/v1/embeddings", json{{"input", long_text}}.dump(), 400, "input is 102 tokens", "input"},
      {"POST", "/v1/completions", R"({"prompt": "Once"})", 400, "is an encoder (bert): it cannot generate text", "model"},
      {"POST", "/v1/adapters", R"({"name": "x"})", 400, "'path' is missing", "path"},
      {"POST", "/v1/adapters", R"({"name": "a/b", "path": "x"})", 400, "'name' may hold letters", "name"},
      {"DELETE", "/v1/adapters/nope", "", 404, "no adapter named 'nope'", "name"},
      {"POST", "/v1/nothing", "{}", 404, "no endpoint POST /v1/nothing", ""},
      {"GET", "/", "", 404, "no endpoint GET /", ""},
      {"GET", "/v1/classify", "", 405, "/v1/classify accepts POST, not GET", ""},
      {"DELETE", "/v1/embeddings", "", 405, "/v1/embeddings accepts POST, not DELETE", ""},
      {"PUT", "/v1/adapters", "{}", 405, "/v1/adapters accepts GET or POST, not PUT", ""},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.method + " " + k.path + " " + k.body.substr(0, 80));
    Reply r;
    if (k.method == "POST") r = post(c, k.path, k.body);
    else if (k.method == "GET") r = get(c, k.path);
    else if (k.method == "DELETE") r = del(c, k.path);
    else r = to_reply(c.Put(k.path.c_str(), k.body, "application/json"));
    EXPECT_EQ(r.status, k.status) << r.text;
    EXPECT_EQ(r.content_type, "application/json");
    ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.text;
    const json& e = r.body["error"];
    EXPECT_HAS(e.value("message", ""), k.message);
    EXPECT_EQ(e["code"], k.status);
    EXPECT_TRUE(e["type"].is_string() && !e["type"].get<std::string>().empty());
    if (k.param.empty()) EXPECT_TRUE(e["param"].is_null()) << e;
    else EXPECT_HAS(e["param"].get<std::string>(), k.param);
    const Reply health = get(c, "/health");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body["status"], "ok");
  }
  // Still serving real requests.
  EXPECT_EQ(post(c, "/v1/classify", classify_body("lora", {"still here"})).status, 200);
}

TEST(Serve, OverMaxConcurrentIsRefusedWith429) {
  serve::ServerOptions o;
  o.max_concurrent = 1;
  o.max_wait_ms = 1500;  // the first request waits in the batcher meanwhile
  Served small(env().dir.path, o);
  Reply first;
  std::thread slow([&] {
    auto c = small.client();
    first = post(c, "/v1/classify", classify_body("lora", {"a slow one"}));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto c = small.client();
  const Reply r = post(c, "/v1/classify", classify_body("lora", {"one too many"}));
  EXPECT_EQ(r.status, 429) << r.text;
  EXPECT_HAS(r.body["error"]["message"].get<std::string>(), "over the limit of 1 (--max-concurrent)");
  EXPECT_EQ(get(c, "/health").status, 200);  // health is not work
  slow.join();
  EXPECT_EQ(first.status, 200) << first.text;
}

// A batch whose call throws is run again request by request: here "extra" is unloaded
// while its request waits in the queue beside one for "lora", so the batch fails and
// only the "extra" request does.
TEST(Serve, WhenABatchFailsOnlyTheBadRequestFails) {
  serve::ServerOptions o;
  o.max_wait_ms = 1500;  // both requests wait in one batch while "extra" is unloaded
  Served slow(env().dir.path, o);
  auto admin = slow.client();
  ASSERT_EQ(post(admin, "/v1/adapters", json{{"name", "extra"}, {"path", (env().dir.path / "extra").string()}}).status, 200);
  const auto texts = sst2_texts(40, 2);
  const auto want = slow.session->predict(rows_of(texts), Selection::one("lora"));
  const std::string before = get(admin, "/metrics").text;
  Reply lora, extra;
  std::thread a([&] {
    auto c = slow.client();
    lora = post(c, "/v1/classify", classify_body("lora", texts));
  });
  std::thread b([&] {
    auto c = slow.client();
    extra = post(c, "/v1/classify", classify_body("extra", texts));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(del(admin, "/v1/adapters/extra").status, 200);
  a.join();
  b.join();
  EXPECT_EQ(lora.status, 200) << lora.text;
  EXPECT_LT(classify_diff(want, lora.body), 1e-5) << lora.text;
  EXPECT_EQ(extra.status, 404) << extra.text;
  EXPECT_HAS(extra.body["error"]["message"].get<std::string>(), "no adapter named 'extra'");
  // One call of 4 rows (it failed), then each request alone: 2 rows that ran, 2 that failed.
  const std::string after = get(admin, "/metrics").text;
  EXPECT_EQ(metric(after, "graft_batch_rows_sum") - metric(before, "graft_batch_rows_sum"), 8) << after;
  EXPECT_EQ(metric(after, "graft_batch_rows_count") - metric(before, "graft_batch_rows_count"), 3) << after;
}

TEST(Serve, MetricsAreParsablePrometheusTextAndMove) {
  auto c = client();
  const Reply m1 = get(c, "/metrics");
  ASSERT_EQ(m1.status, 200);
  EXPECT_EQ(m1.content_type, "text/plain; version=0.0.4");
  ASSERT_EQ(post(c, "/v1/classify", classify_body("lora", {"x"})).status, 200);
  ASSERT_EQ(post(c, "/v1/classify", classify_body("nope", {"x"})).status, 404);
  // httplib's logger records a request just after its response is sent, and each
  // request here is a new connection, served by another thread: wait for both to land.
  const std::string count = R"(graft_request_duration_seconds_count{endpoint="/v1/classify"})";
  // A series not yet written counts as 0 (metric() says -1 for "absent").
  const auto counted = [](const std::string& text, const std::string& series) { return std::max(0.0, metric(text, series)); };
  std::string m = get(c, "/metrics").text;
  for (int i = 0; i < 200 && counted(m, count) < counted(m1.text, count) + 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = get(c, "/metrics").text;
  }
  // Every line: a comment (# HELP / # TYPE) or `name{labels} value`.
  static const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? [-+0-9.eEInf]+$)");
  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::istringstream in(m);
  int samples = 0;
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(std::regex_match(line, sample) || std::regex_match(line, comment)) << "not Prometheus text: " << line;
    samples += line[0] != '#';
  }
  EXPECT_GT(samples, 20);
  for (const char* type : {"graft_requests_total counter", "graft_request_errors_total counter",
                           "graft_request_duration_seconds histogram", "graft_batch_rows histogram", "graft_inflight_requests gauge",
                           "graft_adapters_loaded gauge", "graft_resident_memory_bytes gauge"})
    EXPECT_HAS(m, fmt::format("# TYPE {}\n", type));
  const std::string ok = R"(graft_requests_total{endpoint="/v1/classify",code="200"})";
  const std::string missing = R"(graft_requests_total{endpoint="/v1/classify",code="404"})";
  EXPECT_GE(metric(m, ok), counted(m1.text, ok) + 1);
  EXPECT_GE(metric(m, missing), counted(m1.text, missing) + 1);
  EXPECT_GE(metric(m, "graft_request_errors_total"), counted(m1.text, "graft_request_errors_total") + 1);
  EXPECT_GE(metric(m, count), counted(m1.text, count) + 2);
  EXPECT_EQ(metric(m, R"(graft_request_duration_seconds_bucket{endpoint="/v1/classify",le="+Inf"})"), metric(m, count));
  EXPECT_EQ(metric(m, "graft_adapters_loaded"), 3);
  EXPECT_EQ(metric(m, "graft_inflight_requests"), 0);
  EXPECT_GT(metric(m, "graft_resident_memory_bytes"), 50e6);  // MiniLM alone is ~90 MB
}

}  // namespace
}  // namespace graft::testing
