// The extender over real HTTP(S) on loopback, with the bodies kube-scheduler's HTTPExtender sends
// (k8s.io/kube-scheduler/extender/v1 marshalled by Go's encoding/json: PascalCase keys, absent
// pointers as null), and the gpuslice-scheduler binary itself.
#include "scheduler/extender_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "test_objects.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;
using testing::FakeBindingWriter;
using testing::kGiB;
using testing::MakeNode;
using testing::MakePod;

// ExtenderArgs as HTTPExtender marshals it with nodeCacheCapable: true.
std::string ArgsWithNames(const json& pod, const std::vector<std::string>& names) {
  return json{{"Pod", pod}, {"Nodes", nullptr}, {"NodeNames", names}}.dump();
}

std::string BindingArgs(const std::string& name, const std::string& node) {
  return json{
      {"PodName", name}, {"PodNamespace", "team-a"}, {"PodUID", "uid-" + name}, {"Node", node}}
      .dump();
}

class ExtenderServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ExtenderOptions options;
    options.policy = "best-fit";
    extender_ = *Extender::Create(options, clock_, writer_);
    ServerOptions server_options;
    server_options.url_prefix = "/gpuslice";
    server_options.max_body_bytes = 1 << 20;
    server_ = *ExtenderServer::Create(*extender_, server_options);
    const Result<int> port = server_->Start("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  }
  void Sync() {
    extender_->Rebuild(std::vector<json>{MakeNode("a", 1), MakeNode("b", 1, "A100", 4 * kGiB)}, {});
  }
  httplib::Result Post(const std::string& path, const std::string& body) {
    return client_->Post(path, body, "application/json");
  }

  ManualClock clock_;
  FakeBindingWriter writer_;
  std::unique_ptr<Extender> extender_;
  std::unique_ptr<ExtenderServer> server_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(ExtenderServerTest, FilterAnswersAnExtenderFilterResult) {
  Sync();
  const auto response =
      Post("/gpuslice/filter", ArgsWithNames(MakePod("p", {.memory = "8Gi"}), {"a", "b"}));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
  const json body = json::parse(response->body);
  EXPECT_EQ(body, (json{{"Nodes", nullptr},
                        {"NodeNames", {"a"}},
                        {"FailedNodes", json::object()},
                        {"FailedAndUnresolvableNodes",
                         {{"b", "GPU memory request 8Gi exceeds every GPU's memory (4Gi)"}}},
                        {"Error", ""}}));
}

TEST_F(ExtenderServerTest, FilterWithWholeNodesAnswersWithTheNodesThatFit) {
  Sync();
  const json nodes = {{"metadata", json::object()},
                      {"items", {MakeNode("a", 1), MakeNode("b", 1)}}};
  const std::string args = json{
      {"Pod", MakePod("p", {.memory = "8Gi"})},
      {"Nodes", nodes},
      {"NodeNames", nullptr}}.dump();
  const auto response = Post("/gpuslice/filter", args);
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200) << response->body;
  const json body = json::parse(response->body);
  ASSERT_EQ(body["Nodes"]["items"].size(), 1U);
  EXPECT_EQ(body["Nodes"]["items"][0]["metadata"]["name"], "a");
  EXPECT_TRUE(body["NodeNames"].is_null());
}

TEST_F(ExtenderServerTest, KeysAreReadCaseInsensitively) {
  Sync();
  const std::string args =
      json{{"pod", MakePod("p", {.memory = "1Gi"})}, {"nodenames", {"a"}}}.dump();
  const auto response = Post("/gpuslice/filter", args);
  ASSERT_TRUE(response);
  EXPECT_EQ(json::parse(response->body)["NodeNames"], json({"a"}));
  const auto bound = Post("/gpuslice/bind", R"({"podname":"p","podNamespace":"team-a",)"
                                            R"("poduid":"uid-p","NODE":"a"})");
  ASSERT_TRUE(bound);
  EXPECT_EQ(json::parse(bound->body), (json{{"Error", ""}}));
}

TEST_F(ExtenderServerTest, PrioritizeAndBindAnswerInTheirWireFormats) {
  Sync();
  const json pod = MakePod("p", {.memory = "2Gi", .compute = "20"});
  const auto scores = Post("/gpuslice/prioritize", ArgsWithNames(pod, {"a", "b"}));
  ASSERT_TRUE(scores);
  ASSERT_EQ(scores->status, 200) << scores->body;
  EXPECT_EQ(
      json::parse(scores->body),
      json::parse(R"([{"Host":"a","Score":10},{"Host":"b","Score":9}])"));  // tie: lowest name

  const auto bound = Post("/gpuslice/bind", BindingArgs("p", "b"));
  ASSERT_TRUE(bound);
  EXPECT_EQ(bound->status, 200);
  EXPECT_EQ(json::parse(bound->body), (json{{"Error", ""}}));
  ASSERT_EQ(writer_.bindings().size(), 1U);
  EXPECT_EQ(writer_.bindings()[0].node, "b");
  EXPECT_TRUE(writer_.bindings()[0].annotations.contains("gpuslice.io/assignment"));

  const auto failed = Post("/gpuslice/bind", BindingArgs("ghost", "a"));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 200);
  EXPECT_NE(json::parse(failed->body)["Error"].get<std::string>().find("team-a/ghost"),
            std::string::npos);
}

TEST_F(ExtenderServerTest, ConcurrentClientsNeverOverbookAGpu) {
  extender_->Rebuild(std::vector<json>{MakeNode("a", 1), MakeNode("b", 1)}, {});
  constexpr int kClients = 8;
  constexpr int kPodsPerClient = 3;
  std::atomic<int> bound{0};
  std::atomic<int> bad_answers{0};
  std::vector<std::thread> clients;
  const int port = port_;
  clients.reserve(kClients);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      for (int i = 0; i < kPodsPerClient; ++i) {
        const std::string name = "c" + std::to_string(c) + "-" + std::to_string(i);
        const json pod = MakePod(name, {.memory = "3Gi", .compute = "10"});
        const auto filter =
            client.Post("/gpuslice/filter", ArgsWithNames(pod, {"a", "b"}), "application/json");
        const auto scores =
            client.Post("/gpuslice/prioritize", ArgsWithNames(pod, {"a", "b"}), "application/json");
        if (!filter || filter->status != 200 || !scores || scores->status != 200) {
          ++bad_answers;
          continue;
        }
        const json fitting = json::parse(filter->body)["NodeNames"];
        if (fitting.empty()) continue;
        const auto answer =
            client.Post("/gpuslice/bind", BindingArgs(name, fitting[0]), "application/json");
        if (!answer || answer->status != 200) {
          ++bad_answers;
        } else if (json::parse(answer->body)["Error"].get<std::string>().empty()) {
          ++bound;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(bad_answers.load(), 0);
  EXPECT_EQ(bound.load(), 10);  // five 3Gi shares per 16Gi GPU, two GPUs
  for (const char* node : {"a", "b"}) {
    const std::vector<GpuFree> gpus = extender_->FreeGpus(node);
    ASSERT_EQ(gpus.size(), 1U);
    EXPECT_EQ(gpus[0].memory_free_bytes, 1 * kGiB) << node;
    EXPECT_EQ(gpus[0].compute_free_percent, 50) << node;
  }
}

struct GarbageCase {
  const char* name;
  const char* path;
  std::string body;
  const char* message;
};

class GarbageBodyTest : public ExtenderServerTest,
                        public ::testing::WithParamInterface<GarbageCase> {};

TEST_P(GarbageBodyTest, Gets400WithAMessageAndTheServerKeepsServing) {
  Sync();
  const auto response = Post(GetParam().path, GetParam().body);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  const json body = json::parse(response->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << response->body;
  EXPECT_NE(body["Error"].get<std::string>().find(GetParam().message), std::string::npos)
      << response->body;
  const auto health = client_->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, GarbageBodyTest,
    ::testing::Values(
        GarbageCase{"FilterEmpty", "/gpuslice/filter", "", "not valid JSON"},
        GarbageCase{"FilterTruncated", "/gpuslice/filter", R"({"Pod":{)", "not valid JSON"},
        GarbageCase{"FilterArray", "/gpuslice/filter", "[]", "must be a JSON object"},
        GarbageCase{"FilterNoPod", "/gpuslice/filter", R"({"NodeNames":["a"]})", "'Pod'"},
        GarbageCase{"FilterPodNotObject", "/gpuslice/filter", R"({"Pod":5})", "'Pod'"},
        GarbageCase{"FilterNamesNotList", "/gpuslice/filter", R"({"Pod":{},"NodeNames":"a"})",
                    "'NodeNames' must be a list"},
        GarbageCase{"FilterNameNotString", "/gpuslice/filter", R"({"Pod":{},"NodeNames":[1]})",
                    "non-string"},
        GarbageCase{"FilterNodesWithoutItems", "/gpuslice/filter", R"({"Pod":{},"Nodes":{}})",
                    "v1 NodeList"},
        GarbageCase{"PrioritizeBinary", "/gpuslice/prioritize", std::string("\0\xff\x01", 3),
                    "not valid JSON"},
        GarbageCase{"BindMissingUid", "/gpuslice/bind",
                    R"({"PodName":"p","PodNamespace":"n","Node":"a"})", "'PodUID'"},
        GarbageCase{"BindNumbers", "/gpuslice/bind",
                    R"({"PodName":1,"PodNamespace":2,"PodUID":3,"Node":4})", "'PodName'"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST_F(ExtenderServerTest, AMessageQuotingCutUtf8IsStillValidJson) {
  Sync();
  std::string memory = "1";
  for (int i = 0; i < 40; ++i) memory += "\xc3\xa9";  // "é": the 64-byte cut splits one
  const auto response =
      Post("/gpuslice/filter", ArgsWithNames(MakePod("p", {.memory = memory}), {"a"}));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  const json body = json::parse(response->body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << response->body;
  EXPECT_NE(body["Error"].get<std::string>().find("longer than 64 characters"), std::string::npos);
}

TEST_F(ExtenderServerTest, OversizedBodiesGet413) {
  Sync();
  const auto response = Post("/gpuslice/filter", std::string(2 << 20, ' '));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(json::parse(response->body)["Error"], "request body too large");
}

TEST_F(ExtenderServerTest, AnswersUnavailableUntilSyncedAndReadyzFollows) {
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
  EXPECT_EQ(client_->Get("/readyz")->status, 503);
  const auto filter =
      Post("/gpuslice/filter", ArgsWithNames(MakePod("p", {.memory = "1Gi"}), {"a"}));
  ASSERT_TRUE(filter);
  EXPECT_EQ(filter->status, 503);
  EXPECT_NE(json::parse(filter->body)["Error"].get<std::string>().find("not synced"),
            std::string::npos);
  EXPECT_EQ(Post("/gpuslice/bind", BindingArgs("p", "a"))->status, 503);
  Sync();
  EXPECT_EQ(client_->Get("/readyz")->status, 200);
  EXPECT_EQ(Post("/gpuslice/filter", ArgsWithNames(MakePod("p", {.memory = "1Gi"}), {"a"}))->status,
            200);
  EXPECT_EQ(Post("/other/filter", "{}")->status, 404);
}

// A temporary directory removed at the end of the test.
struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/gpuslice-scheduler-test-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(ExtenderTlsTest, ServesHttpsWithTheGivenCertificate) {
  TempDir dir;
  const std::string cert = dir.path + "/tls.crt";
  const std::string key = dir.path + "/tls.key";
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "openssl command not available";
  ManualClock clock;
  FakeBindingWriter writer;
  auto extender = *Extender::Create({}, clock, writer);
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  EXPECT_FALSE(ExtenderServer::Create(*extender, {.tls_cert_file = cert, .tls_key_file = cert})
                   .ok());  // a certificate is not a key
  ServerOptions options;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  auto server = *ExtenderServer::Create(*extender, options);
  ASSERT_TRUE(server->tls());
  const int port = *server->Start("127.0.0.1", 0);
  httplib::SSLClient client("127.0.0.1", port);
  client.set_ca_cert_path(cert);
  client.enable_server_certificate_verification(true);
  const auto response =
      client.Post("/gpuslice/filter", ArgsWithNames(MakePod("p", {.memory = "1Gi"}), {"a"}),
                  "application/json");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(json::parse(response->body)["NodeNames"], json({"a"}));
  httplib::Client plain("127.0.0.1", port);
  EXPECT_FALSE(plain.Get("/healthz") && plain.Get("/healthz")->status == 200);
}

// gpuslice-scheduler on a state file: filter, prioritize, bind, the bind applied in memory (a
// second bind is answered idempotently), clean exit on SIGTERM.
TEST(SchedulerBinaryTest, ServesFromAStateFileAndStopsOnSigterm) {
  TempDir dir;
  const std::string state = dir.path + "/state.json";
  std::ofstream(state) << json{{"nodes", {MakeNode("a", 2), MakeNode("cpu", 0)}},
                               {"pods", {MakePod("p", {.memory = "8Gi", .compute = "30"})}}}
                              .dump();
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(GPUSLICE_SCHEDULER_BINARY, "gpuslice-scheduler", "--listen", "127.0.0.1:0",
          "--state-file", state.c_str(), "--policy", "gpuslice", nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* stdout_of_child = fdopen(out[0], "r");
  int port = 0;
  ASSERT_EQ(std::fscanf(stdout_of_child, "port %d", &port), 1);
  httplib::Client client("127.0.0.1", port);
  const json pod = MakePod("p", {.memory = "8Gi", .compute = "30"});
  EXPECT_EQ(client.Get("/readyz")->status, 200);
  const auto filter =
      client.Post("/gpuslice/filter", ArgsWithNames(pod, {"a", "cpu"}), "application/json");
  ASSERT_TRUE(filter);
  EXPECT_EQ(json::parse(filter->body)["NodeNames"], json({"a"}));
  const auto scores =
      client.Post("/gpuslice/prioritize", ArgsWithNames(pod, {"a"}), "application/json");
  ASSERT_TRUE(scores);
  EXPECT_EQ(json::parse(scores->body), json::parse(R"([{"Host":"a","Score":10}])"));
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto bound = client.Post("/gpuslice/bind", BindingArgs("p", "a"), "application/json");
    ASSERT_TRUE(bound);
    EXPECT_EQ(json::parse(bound->body), (json{{"Error", ""}})) << "attempt " << attempt;
  }
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::fclose(stdout_of_child);
}

}  // namespace
}  // namespace gpuslice::scheduler
