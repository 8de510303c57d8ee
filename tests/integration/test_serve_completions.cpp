// /v1/completions of the server on stories260K (a real llama2.c decoder and tokenizer):
// greedy text equals Session::generate, the streamed pieces (server-sent events) add up
// to the same text and end with [DONE], field errors are named, and a client that goes
// away mid-stream leaves the server serving.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "integration/serve_fixtures.h"
#include "serve/server.h"

namespace graft::testing {
namespace {

struct Stories {
  Session session{stories260k_path()};
  ServerThread served{session, {}};
  int port = served.port;
  httplib::Client client() const { return served.client(); }
};

std::unique_ptr<Stories>& stories_ptr() {
  static std::unique_ptr<Stories> s;
  return s;
}
Stories& stories() {
  if (!stories_ptr()) stories_ptr() = std::make_unique<Stories>();
  return *stories_ptr();
}
struct StopServer : ::testing::Environment {
  void TearDown() override { stories_ptr().reset(); }
};
::testing::Environment* const kStopServer = ::testing::AddGlobalTestEnvironment(new StopServer);

std::string greedy(const std::string& prompt, std::int64_t tokens) {
  GenerateOptions g;
  g.max_new_tokens = tokens;
  g.temperature = 0;
  return stories().session.generate(prompt, Selection::none(), g);
}

TEST(ServeCompletions, GreedyTextEqualsSessionGenerate) {
  auto c = stories().client();
  const std::string prompt = "Once upon a time";
  const Reply r = post(c, "/v1/completions", json{{"model", "stories260K"}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.text;
  const std::string want = greedy(prompt, 24);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(r.body["choices"][0]["text"], want);
  EXPECT_EQ(r.body["object"], "text_completion");
  EXPECT_EQ(r.body["model"], "stories260K");
  EXPECT_EQ(r.body["choices"][0]["index"], 0);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_GT(r.body["created"].get<std::int64_t>(), 1700000000);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], stories().session.count_tokens({prompt, std::nullopt}));
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 24);
  // Default max_tokens is 16; omitted model is the bare backbone.
  const Reply d = post(c, "/v1/completions", json{{"prompt", prompt}, {"temperature", 0}});
  ASSERT_EQ(d.status, 200) << d.text;
  EXPECT_EQ(d.body["choices"][0]["text"], greedy(prompt, 16));
  // Sampling with a seed is reproducible.
  const json sampled = {{"prompt", prompt}, {"temperature", 0.9}, {"top_p", 0.9}, {"seed", 7}, {"max_tokens", 20}};
  EXPECT_EQ(post(c, "/v1/completions", sampled).body["choices"], post(c, "/v1/completions", sampled).body["choices"]);
}

TEST(ServeCompletions, StreamedPiecesAddUpToTheSameTextAndEndWithDone) {
  auto c = stories().client();
  const std::string prompt = "The little dog";
  const auto res = c.Post("/v1/completions", json{{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true}}.dump(),
                          "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  std::string text, last;
  int events = 0;
  std::string finish;
  for (std::size_t at = 0; at < res->body.size();) {
    const std::size_t end = res->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "an event not ended by a blank line: " << res->body.substr(at);
    const std::string event = res->body.substr(at, end - at);
    ASSERT_EQ(event.rfind("data: ", 0), 0u) << event;
    last = event.substr(6);
    at = end + 2;
    ++events;
    if (last == "[DONE]") continue;
    const json chunk = json::parse(last);
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(last, "[DONE]");
  EXPECT_GT(events, 5);
  EXPECT_EQ(text, greedy(prompt, 20));
  EXPECT_EQ(finish, "length");
}

TEST(ServeCompletions, BadFieldsAreNamed) {
  auto c = stories().client();
  const std::vector<std::tuple<json, std::string, std::string>> cases = {
      {json{{"max_tokens", 4}}, "'prompt' is missing", "prompt"},
      {json{{"prompt", json::array({"a", "b"})}}, "'prompt' must be a string (one prompt per request)", "prompt"},
      {json{{"prompt", "x"}, {"max_tokens", 0}}, "'max_tokens' must lie in [1, ", "max_tokens"},
      {json{{"prompt", "x"}, {"max_tokens", "8"}}, "'max_tokens' must be an integer, not string", "max_tokens"},
      {json{{"prompt", "x"}, {"temperature", 3}}, "'temperature' must lie in [0, 2]", "temperature"},
      {json{{"prompt", "x"}, {"top_p", 0}}, "'top_p' must lie in (0, 1]", "top_p"},
      {json{{"prompt", "x"}, {"stream", "yes"}}, "'stream' must be true or false", "stream"},
      {json{{"prompt", "x"}, {"seed", -1}}, "'seed' must lie in [0, ", "seed"},
      {json{{"prompt", "x"}, {"model", "nope"}}, "no adapter named 'nope'", "model"},
      {json{{"prompt", "x"}, {"n", 2}}, "'n' must be 1", "n"},
  };
  for (const auto& [body, message, param] : cases) {
    SCOPED_TRACE(body.dump());
    const Reply r = post(c, "/v1/completions", body);
    EXPECT_GE(r.status, 400);
    EXPECT_LT(r.status, 500);
    EXPECT_HAS(r.body["error"]["message"].get<std::string>(), message);
    EXPECT_EQ(r.body["error"]["param"], param);
  }
}

TEST(ServeCompletions, AClientThatLeavesMidStreamReleasesItsSlotAndTheServerServesOn) {
  // A raw socket: send the request, read the first bytes, close.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(stories().port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = json{{"prompt", "Once"}, {"max_tokens", 500}, {"temperature", 0}, {"stream", true}}.dump();
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buffer[256];
  ASSERT_GT(::recv(fd, buffer, sizeof buffer, 0), 0);
  ::close(fd);
  // The stream's in-flight count is released once the server notices.
  auto c = stories().client();
  double inflight = -1;
  for (int i = 0; i < 200 && inflight != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    inflight = metric(get(c, "/metrics").text, "graft_inflight_requests");
  }
  EXPECT_EQ(inflight, 0);
  EXPECT_EQ(get(c, "/health").status, 200);
  EXPECT_EQ(post(c, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}, {"temperature", 0}}).status, 200);
}

}  // namespace
}  // namespace graft::testing
