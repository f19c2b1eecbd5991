// gpuslice-scheduler wired to the Kubernetes API, over real HTTP against the real fake API server
// (tests/fakes/fake_apiserver): informers feeding the extender, Bindings posted to the API,
// readiness only after both initial lists, a pod deleted during a broken watch releasing its
// share after the relist, a restarted scheduler rebuilding from the pods' annotations; and the
// gpuslice-scheduler binary on a kubeconfig.
#include "scheduler/kube_source.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "core/clock.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "scheduler/extender_server.h"
#include "test_objects.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::kGiB;
using testing::MakeNode;
using testing::MakePod;
using testing::PodShape;

constexpr std::string_view kAssignmentKey = names::kAnnotationPodAssignment;
const std::vector<std::string> kGpuNodes = {"gpu-a", "gpu-b"};

// Polls `condition` (no fixed sleeps in the assertions: returns as soon as it holds).
bool WaitFor(const std::function<bool()>& condition, milliseconds timeout = milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

// The informers' reconnect wait, held closed until the test opens it: the watch stays down
// while the test changes the cluster.
class GateSleeper final : public kube::Sleeper {
 public:
  void SleepFor(milliseconds) override {
    std::unique_lock lock(mutex_);
    ++sleeps_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_ || woken_; });
  }
  void Wake() override {
    std::lock_guard lock(mutex_);
    woken_ = true;
    cv_.notify_all();
  }
  bool WaitForSleeps(int count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return sleeps_ >= count; });
  }
  void Open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int sleeps_ = 0;
  bool open_ = false;
  bool woken_ = false;
};

// An object as a client would create it: no server-set metadata.
json ForCreate(json object) {
  for (const char* key : {"uid", "resourceVersion", "creationTimestamp"})
    object["metadata"].erase(key);
  return object;
}

// The fake API server with two GPU nodes (gpu-a: 2 × 16 GiB, gpu-b: 1 × 16 GiB, annotated
// gpuslice.io/gpus as the node agent publishes them), a CPU node, namespace team-a, and a client.
class ApiCluster {
 public:
  ApiCluster() {
    char pattern[] = "/tmp/gpuslice-schedwire-XXXXXX";
    dir_ = mkdtemp(pattern);
    EXPECT_TRUE(server_.Start().ok());
    kubeconfig_ = dir_ + "/kubeconfig";
    std::ofstream(kubeconfig_) << server_.Kubeconfig();
    client_ = *kube::KubeClient::Create(*kube::LoadKubeconfigFile(kubeconfig_));
    Create(kube::Nodes(), MakeNode("gpu-a", 2));
    Create(kube::Nodes(), MakeNode("gpu-b", 1));
    Create(kube::Nodes(), MakeNode("cpu-1", 0));
    kube::ResourceRef namespaces;
    namespaces.resource = "namespaces";
    Create(namespaces, {{"metadata", {{"name", "team-a"}}}});
  }
  ~ApiCluster() {
    server_.Stop();
    std::filesystem::remove_all(dir_);
  }

  json Create(const kube::ResourceRef& ref, const json& object) {
    Result<json> created = client_->Create(ref, ForCreate(object));
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : json();
  }
  // A pending pod asking for `shape`.
  json CreatePod(const std::string& name, const PodShape& shape) {
    return Create(kube::Pods("team-a"), MakePod(name, shape));
  }
  // A pod bound earlier by gpuslice-scheduler: node and assignment annotation set.
  json CreateBoundPod(const std::string& name, const std::string& node, int gpu_index,
                      std::int64_t memory_bytes, int compute_percent) {
    json pod = MakePod(
        name, {.memory = std::to_string(memory_bytes), .compute = std::to_string(compute_percent)});
    pod["spec"]["nodeName"] = node;
    pod["status"]["phase"] = "Running";
    const GpuAssignment assignment{node,
                                   "main",
                                   {{gpu_index, "GPU-" + node + "-" + std::to_string(gpu_index)}},
                                   memory_bytes,
                                   compute_percent};
    pod["metadata"]["annotations"][std::string(kAssignmentKey)] = EncodeAssignment(assignment);
    return Create(kube::Pods("team-a"), pod);
  }
  json GetPod(const std::string& name) {
    Result<json> pod = client_->Get(kube::Pod("team-a", name));
    EXPECT_TRUE(pod.ok()) << pod.status().ToString();
    return pod.ok() ? *pod : json();
  }

  fake::FakeApiServer& server() { return server_; }
  kube::KubeClient& client() { return *client_; }
  const std::string& kubeconfig() const { return kubeconfig_; }

 private:
  fake::FakeApiServer server_;
  std::string dir_;
  std::string kubeconfig_;
  std::unique_ptr<kube::KubeClient> client_;
};

std::string AssignmentText(const json& pod) {
  return pod["metadata"]["annotations"].value(std::string(kAssignmentKey), "");
}

std::string Uid(const json& object) { return object["metadata"]["uid"].get<std::string>(); }

// ExtenderArgs as kube-scheduler's HTTPExtender marshals it with nodeCacheCapable: true.
std::string FilterArgs(const json& pod, const std::vector<std::string>& names) {
  return json{{"Pod", pod}, {"Nodes", nullptr}, {"NodeNames", names}}.dump();
}
std::string BindArgs(const json& pod, const std::string& node) {
  return json{{"PodName", pod["metadata"]["name"]},
              {"PodNamespace", pod["metadata"]["namespace"]},
              {"PodUID", pod["metadata"]["uid"]},
              {"Node", node}}
      .dump();
}

// An HTTP client of one scheduler endpoint.
class SchedulerHttp {
 public:
  explicit SchedulerHttp(int port) : client_("127.0.0.1", port) {}
  json Post(const std::string& verb, const std::string& body, int* status = nullptr) {
    const auto response = client_.Post("/gpuslice/" + verb, body, "application/json");
    if (!response) return {{"transport error", httplib::to_string(response.error())}};
    if (status != nullptr) *status = response->status;
    return json::parse(response->body, nullptr, false);
  }
  int Ready() {
    const auto response = client_.Get("/readyz");
    return response ? response->status : 0;
  }

 private:
  httplib::Client client_;
};

// One gpuslice-scheduler in process: extender, KubeBindingWriter, KubeSource, HTTP server.
class Scheduler {
 public:
  explicit Scheduler(kube::KubeApi& api, kube::Sleeper* sleeper = nullptr, bool start = true)
      : writer_(api) {
    ExtenderOptions options;
    options.policy = "gpuslice";
    extender_ = *Extender::Create(options, clock_, writer_);
    KubeSourceOptions source_options;
    source_options.informer.sleeper = sleeper;
    source_options.on_problem = [this](const std::string& problem) {
      std::lock_guard lock(mutex_);
      problems_.push_back(problem);
    };
    source_ = std::make_unique<KubeSource>(api, *extender_, source_options);
    server_ = *ExtenderServer::Create(*extender_, {});
    port_ = *server_->Start("127.0.0.1", 0);
    http_ = std::make_unique<SchedulerHttp>(port_);
    if (start) source_->Start();
  }
  ~Scheduler() {
    server_->Stop();
    source_->Stop();
  }

  bool WaitReady() {
    return WaitFor([&] { return http_->Ready() == 200; });
  }
  // Waits until the extender holds `uid`'s share as bound (seen through the watch).
  bool WaitCommitted(const std::string& uid) {
    return WaitFor([&] { return extender_->AssignmentOf(uid) && !extender_->IsReserved(uid); });
  }
  std::vector<std::string> problems() {
    std::lock_guard lock(mutex_);
    return problems_;
  }

  Extender& extender() { return *extender_; }
  KubeSource& source() { return *source_; }
  SchedulerHttp& http() { return *http_; }
  int port() const { return port_; }

 private:
  SteadyClock clock_;
  KubeBindingWriter writer_;
  std::unique_ptr<Extender> extender_;
  std::unique_ptr<KubeSource> source_;
  std::unique_ptr<ExtenderServer> server_;
  std::unique_ptr<SchedulerHttp> http_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> problems_;
};

class KubeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // gpu-b's only GPU already holds 12 GiB / 50 % of a pod bound earlier.
    running_ = cluster_.CreateBoundPod("running", "gpu-b", 0, 12 * kGiB, 50);
  }
  // Filter + prioritize + bind as kube-scheduler does; returns the bind answer's Error.
  std::string Schedule(Scheduler& scheduler, const json& pod, const std::string& node) {
    scheduler.http().Post("filter", FilterArgs(pod, kGpuNodes));
    scheduler.http().Post("prioritize", FilterArgs(pod, {node}));
    const json answer = scheduler.http().Post("bind", BindArgs(pod, node));
    return answer.value("Error", "<no Error key: " + answer.dump() + ">");
  }

  ApiCluster cluster_;
  json running_;
};

// The whole path: the scheduler lists both collections, filters with the reasons, ranks,
// binds with one Binding (node and annotation in the same resourceVersion), and then sees the
// pod bound through its watch.
TEST_F(KubeSourceTest, FilterPrioritizeBindWriteNodeAndAssignmentInOneApiWrite) {
  Scheduler scheduler(cluster_.client());
  ASSERT_TRUE(scheduler.WaitReady());
  ASSERT_TRUE(scheduler.WaitCommitted(Uid(running_)));
  const json pod = cluster_.CreatePod("train", {.memory = "8Gi", .compute = "30"});
  const json expected_filter = {
      {"Error", ""},
      {"NodeNames", {"gpu-a"}},
      {"Nodes", nullptr},
      {"FailedNodes", {{"gpu-b", "insufficient GPU memory on every GPU: largest free 4Gi < 8Gi"}}},
      {"FailedAndUnresolvableNodes",
       {{"cpu-1",
         "node publishes no GPUs for gpuslice (annotation gpuslice.io/gpus missing: is "
         "gpuslice-node-agent running there?)"}}}};
  EXPECT_EQ(scheduler.http().Post("filter", FilterArgs(pod, {"gpu-a", "gpu-b", "cpu-1"})),
            expected_filter);
  EXPECT_EQ(scheduler.http().Post("prioritize", FilterArgs(pod, {"gpu-a"})),
            json::parse(R"([{"Host":"gpu-a","Score":10}])"));
  const std::string version_before = pod["metadata"]["resourceVersion"];
  EXPECT_EQ(scheduler.http().Post("bind", BindArgs(pod, "gpu-a")), (json{{"Error", ""}}));

  const json bound = cluster_.GetPod("train");
  EXPECT_EQ(bound["spec"]["nodeName"], "gpu-a");
  const Result<GpuAssignment> assignment = DecodeAssignment(AssignmentText(bound));
  ASSERT_TRUE(assignment.ok()) << assignment.status().ToString();
  EXPECT_EQ(assignment->node, "gpu-a");
  EXPECT_EQ(assignment->container, "main");
  EXPECT_EQ(assignment->memory_bytes, 8 * kGiB);
  EXPECT_EQ(assignment->compute_percent, 30);
  ASSERT_EQ(assignment->gpus.size(), 1U);
  EXPECT_EQ(assignment->gpus[0].uuid, "GPU-gpu-a-" + std::to_string(assignment->gpus[0].index));
  // The first change after the pending version carries both: one write, one resourceVersion.
  kube::ListOptions from;
  from.resource_version = version_before;
  from.field_selector = "metadata.name=train";
  std::vector<kube::WatchEvent> events;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(cluster_.client()
                  .Watch(
                      kube::Pods("team-a"), from,
                      [&](const kube::WatchEvent& event) {
                        if (event.type == kube::WatchEventType::kBookmark) return true;
                        events.push_back(event);
                        return false;
                      },
                      stop)
                  .ok());
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].type, kube::WatchEventType::kModified);
  EXPECT_EQ(events[0].object["spec"]["nodeName"], "gpu-a");
  EXPECT_EQ(events[0].object["metadata"]["annotations"][std::string(kAssignmentKey)],
            bound["metadata"]["annotations"][std::string(kAssignmentKey)]);
  EXPECT_EQ(events[0].object["metadata"]["resourceVersion"], bound["metadata"]["resourceVersion"]);

  ASSERT_TRUE(scheduler.WaitCommitted(Uid(pod)));
  EXPECT_EQ(*scheduler.extender().AssignmentOf(Uid(pod)), *assignment);
  // kube-scheduler retrying the bind: answered without a second write.
  EXPECT_EQ(scheduler.http().Post("bind", BindArgs(pod, "gpu-a")), (json{{"Error", ""}}));
  EXPECT_EQ(cluster_.GetPod("train")["metadata"]["resourceVersion"],
            bound["metadata"]["resourceVersion"]);
  EXPECT_TRUE(scheduler.problems().empty()) << scheduler.problems()[0];
}

// The writer alone: a 409 "already bound" is success only for the very same binding.
TEST_F(KubeSourceTest, BindingWriterAnswersAlreadyBoundIdempotentlyOnlyForTheSameBinding) {
  const json pod = cluster_.CreatePod("p", {.memory = "1Gi"});
  const json other = cluster_.CreatePod("q", {.memory = "1Gi"});
  KubeBindingWriter writer(cluster_.client());
  const std::map<std::string, std::string> annotation = {{std::string(kAssignmentKey), "A"}};
  ASSERT_TRUE(writer.Bind({"team-a", "p", Uid(pod), "gpu-a", annotation}).ok());
  struct Row {
    const char* behaviour;
    BindingRequest request;
    bool ok;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"same node and annotation", {"team-a", "p", Uid(pod), "gpu-a", annotation}, true, ""},
      {"same binding without uid", {"team-a", "p", "", "gpu-a", annotation}, true, ""},
      {"another node",
       {"team-a", "p", Uid(pod), "gpu-b", annotation},
       false,
       "bound to node 'gpu-a'"},
      {"another annotation",
       {"team-a", "p", Uid(pod), "gpu-a", {{std::string(kAssignmentKey), "B"}}},
       false,
       "differs"},
      {"recreated pod (uid mismatch)",
       {"team-a", "q", Uid(pod), "gpu-a", annotation},
       false,
       "recreated"},
      {"missing pod", {"team-a", "gone", "", "gpu-a", annotation}, false, "not found"},
  };
  for (const Row& row : rows) {
    const Status status = writer.Bind(row.request);
    EXPECT_EQ(status.ok(), row.ok) << row.behaviour << ": " << status.ToString();
    EXPECT_NE(status.message().find(row.message), std::string::npos)
        << row.behaviour << ": " << status.ToString();
  }
  EXPECT_EQ(cluster_.GetPod("q")["spec"].value("nodeName", ""), "");  // untouched
}

// A KubeApi whose pod lists wait until the test opens the gate.
class GatedPodsApi final : public kube::KubeApi {
 public:
  explicit GatedPodsApi(kube::KubeApi& api) : api_(api) {}
  void Open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  Result<json> Get(const kube::ResourceRef& ref) override { return api_.Get(ref); }
  Result<json> List(const kube::ResourceRef& collection,
                    const kube::ListOptions& options) override {
    if (collection.resource == "pods") {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return open_; });
    }
    return api_.List(collection, options);
  }
  Status Watch(const kube::ResourceRef& collection, const kube::ListOptions& options,
               const kube::WatchHandler& handler, const std::atomic<bool>& stop) override {
    return api_.Watch(collection, options, handler, stop);
  }
  Result<json> Create(const kube::ResourceRef& ref, const json& object) override {
    return api_.Create(ref, object);
  }
  Result<json> Update(const kube::ResourceRef& ref, const json& object) override {
    return api_.Update(ref, object);
  }
  Result<json> Patch(const kube::ResourceRef& ref, kube::PatchType type,
                     const json& patch) override {
    return api_.Patch(ref, type, patch);
  }
  Result<json> Delete(const kube::ResourceRef& ref) override { return api_.Delete(ref); }

 private:
  kube::KubeApi& api_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST_F(KubeSourceTest, NotReadyUntilBothInitialListsArrived) {
  GatedPodsApi api(cluster_.client());
  Scheduler scheduler(api);
  ASSERT_TRUE(WaitFor([&] { return scheduler.source().NodeStats().lists == 1; }));
  const json pod = cluster_.CreatePod("early", {.memory = "1Gi"});
  EXPECT_EQ(scheduler.http().Ready(), 503);
  int status = 0;
  const json answer = scheduler.http().Post("filter", FilterArgs(pod, kGpuNodes), &status);
  EXPECT_EQ(status, 503);
  EXPECT_NE(answer.value("Error", "").find("not synced"), std::string::npos) << answer;
  EXPECT_EQ(scheduler.source().rebuilds(), 0);
  api.Open();
  ASSERT_TRUE(scheduler.WaitReady());
  // The first answer already counts the bound pod: it was in the first pod list.
  EXPECT_EQ(scheduler.extender().FreeGpus("gpu-b")[0].memory_free_bytes, 4 * kGiB);
  EXPECT_EQ(scheduler.source().rebuilds(), 1);
}

// kube-scheduler binding several pods to one node at once: every accepted bind fits, the rest
// are refused, and the API server holds no more than each GPU has.
TEST_F(KubeSourceTest, ConcurrentBindsOverHttpNeverOverbookAGpu) {
  Scheduler scheduler(cluster_.client());
  ASSERT_TRUE(scheduler.WaitReady());
  constexpr int kPods = 8;  // 8 GiB each; gpu-a's two 16 GiB GPUs take 4
  std::vector<json> pods;
  pods.reserve(kPods);
  for (int i = 0; i < kPods; ++i) {
    pods.push_back(cluster_.CreatePod("w" + std::to_string(i), {.memory = "8Gi", .compute = "10"}));
  }
  ASSERT_TRUE(WaitFor([&] {
    return scheduler.http().Post("filter", FilterArgs(pods.back(), kGpuNodes))["NodeNames"] ==
           json({"gpu-a"});
  }));
  for (const json& pod : pods) scheduler.http().Post("prioritize", FilterArgs(pod, {"gpu-a"}));
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  threads.reserve(pods.size());
  for (const json& pod : pods) {
    threads.emplace_back([&, pod] {
      SchedulerHttp http(scheduler.port());
      if (http.Post("bind", BindArgs(pod, "gpu-a")).value("Error", "x").empty()) ++accepted;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 4);
  std::map<std::string, std::int64_t> used_bytes;  // by GPU UUID, from the API server's pods
  int bound = 0;
  for (const json& pod : pods) {
    const json stored = cluster_.GetPod(pod["metadata"]["name"]);
    if (stored["spec"].value("nodeName", "").empty()) continue;
    ++bound;
    const GpuAssignment assignment = *DecodeAssignment(AssignmentText(stored));
    EXPECT_EQ(assignment.node, "gpu-a");
    used_bytes[assignment.gpus.at(0).uuid] += assignment.memory_bytes;
  }
  EXPECT_EQ(bound, 4);
  for (const auto& [uuid, bytes] : used_bytes) EXPECT_LE(bytes, 16 * kGiB) << uuid;
}

// HAMi #1458: the watches break, a bound pod is deleted while they are down and the history is
// compacted (no replay can deliver the DELETED): after the relist its share is free again.
TEST_F(KubeSourceTest, PodDeletedWhileTheWatchWasBrokenReleasesItsShareAfterTheRelist) {
  cluster_.CreateBoundPod("big-0", "gpu-a", 0, 16 * kGiB, 100);
  cluster_.CreateBoundPod("big-1", "gpu-a", 1, 16 * kGiB, 100);
  GateSleeper sleeper;
  Scheduler scheduler(cluster_.client(), &sleeper);
  ASSERT_TRUE(scheduler.WaitReady());
  const json late = cluster_.CreatePod("late", {.memory = "8Gi", .compute = "30"});
  ASSERT_TRUE(WaitFor([&] {
    return scheduler.http().Post("filter", FilterArgs(late, kGpuNodes))["FailedNodes"].size() == 2;
  }));
  ASSERT_TRUE(cluster_.server().WaitForWatches(2, milliseconds(10000)));
  const int rebuilds = scheduler.source().rebuilds();
  cluster_.server().BreakWatches();
  ASSERT_TRUE(sleeper.WaitForSleeps(2));  // both informers back off: their watches are down
  ASSERT_TRUE(cluster_.client().Delete(kube::Pod("team-a", "big-0")).ok());
  cluster_.server().CompactHistory();
  sleeper.Open();
  ASSERT_TRUE(WaitFor([&] {
    return scheduler.http().Post("filter", FilterArgs(late, kGpuNodes))["NodeNames"] ==
           json({"gpu-a"});
  })) << "big-0's share is still held after the relist";
  EXPECT_EQ(scheduler.extender().FreeGpus("gpu-a")[0].memory_free_bytes, 16 * kGiB);
  EXPECT_EQ(scheduler.source().PodStats().synthesized_deletes, 1);
  // Both informers relisted, and each relist rebuilt the extender's cache.
  EXPECT_TRUE(WaitFor([&] { return scheduler.source().rebuilds() >= rebuilds + 2; }));
  EXPECT_EQ(Schedule(scheduler, late, "gpu-a"), "");
}

// A pod that finishes releases its share through the watch, without a relist (the pod informer
// selects non-terminal pods, so the watch sends DELETED; the extender also releases terminal
// phases itself).
TEST_F(KubeSourceTest, PodThatSucceedsReleasesItsShareThroughTheWatch) {
  Scheduler scheduler(cluster_.client());
  ASSERT_TRUE(scheduler.WaitReady());
  ASSERT_TRUE(scheduler.WaitCommitted(Uid(running_)));
  const json pod = cluster_.CreatePod("next", {.memory = "8Gi", .compute = "30"});
  EXPECT_EQ(scheduler.http().Post("filter", FilterArgs(pod, {"gpu-b"}))["NodeNames"],
            json::array());
  kube::ResourceRef status = kube::Pod("team-a", "running");
  status.subresource = "status";
  ASSERT_TRUE(cluster_.client()
                  .Patch(status, kube::PatchType::kMerge, {{"status", {{"phase", "Succeeded"}}}})
                  .ok());
  ASSERT_TRUE(WaitFor([&] {
    return scheduler.http().Post("filter", FilterArgs(pod, {"gpu-b"}))["NodeNames"] ==
           json({"gpu-b"});
  })) << "the finished pod's share is still held";
  EXPECT_FALSE(scheduler.extender().AssignmentOf(Uid(running_)).has_value());
  EXPECT_EQ(scheduler.source().PodStats().lists, 1);  // through the watch, not a relist
}

// A restarted scheduler lists the pods, counts every bound share from its annotation, and gives
// the same answers as the one before it.
TEST_F(KubeSourceTest, RestartedSchedulerRebuildsFromAnnotationsAndAnswersIdentically) {
  const json probe = cluster_.CreatePod("probe", {.memory = "10Gi", .compute = "40"});
  json before_filter;
  json before_scores;
  std::vector<GpuFree> before_a;
  {
    Scheduler first(cluster_.client());
    ASSERT_TRUE(first.WaitReady());
    for (const char* name : {"x", "y"}) {
      const json pod = cluster_.CreatePod(name, {.memory = "6Gi", .compute = "20"});
      ASSERT_TRUE(WaitFor([&] {
        return !first.http().Post("filter", FilterArgs(pod, kGpuNodes))["NodeNames"].empty();
      }));
      ASSERT_EQ(Schedule(first, pod, "gpu-a"), "") << name;
      ASSERT_TRUE(first.WaitCommitted(Uid(pod)));
    }
    before_filter = first.http().Post("filter", FilterArgs(probe, kGpuNodes));
    before_scores = first.http().Post("prioritize", FilterArgs(probe, kGpuNodes));
    before_a = first.extender().FreeGpus("gpu-a");
  }
  std::int64_t free_a = 0;
  for (const GpuFree& gpu : before_a) free_a += gpu.memory_free_bytes;
  EXPECT_EQ(free_a, 32 * kGiB - 12 * kGiB);  // the two binds are counted
  Scheduler second(cluster_.client());
  ASSERT_TRUE(second.WaitReady());
  EXPECT_EQ(second.extender().FreeGpus("gpu-a"), before_a);
  EXPECT_EQ(second.extender().FreeGpus("gpu-b")[0].memory_free_bytes, 4 * kGiB);
  EXPECT_EQ(second.http().Post("filter", FilterArgs(probe, kGpuNodes)), before_filter);
  EXPECT_EQ(second.http().Post("prioritize", FilterArgs(probe, kGpuNodes)), before_scores);
}

// The binary: started on a kubeconfig, it prints its port, becomes ready after listing, binds
// through the API, stops on SIGTERM; started again it answers as before from the annotations.
class SchedulerProcess {
 public:
  explicit SchedulerProcess(const std::string& kubeconfig) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      execl(GPUSLICE_SCHEDULER_BINARY, "gpuslice-scheduler", "--listen", "127.0.0.1:0",
            "--kubeconfig", kubeconfig.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    EXPECT_EQ(std::fscanf(stdout_, "port %d", &port_), 1);
  }
  ~SchedulerProcess() {
    if (pid_ > 0) Stop();
    std::fclose(stdout_);
  }
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return status;
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = 0;
  FILE* stdout_ = nullptr;
  int port_ = 0;
};

TEST_F(KubeSourceTest, BinaryOnAKubeconfigBindsThroughTheApiAndRestartsIdentically) {
  const json pod = cluster_.CreatePod("train", {.memory = "8Gi", .compute = "30"});
  const json probe = cluster_.CreatePod("probe", {.memory = "4Gi", .compute = "30"});
  json filter_before;
  json scores_before;
  {
    SchedulerProcess process(cluster_.kubeconfig());
    SchedulerHttp http(process.port());
    ASSERT_TRUE(WaitFor([&] { return http.Ready() == 200; }));
    EXPECT_EQ(http.Post("filter", FilterArgs(pod, kGpuNodes))["NodeNames"], json({"gpu-a"}));
    EXPECT_EQ(http.Post("prioritize", FilterArgs(pod, {"gpu-a"})),
              json::parse(R"([{"Host":"gpu-a","Score":10}])"));
    EXPECT_EQ(http.Post("bind", BindArgs(pod, "gpu-a")), (json{{"Error", ""}}));
    const json bound = cluster_.GetPod("train");
    EXPECT_EQ(bound["spec"]["nodeName"], "gpu-a");
    EXPECT_EQ(DecodeAssignment(AssignmentText(bound))->memory_bytes, 8 * kGiB);
    // A reservation counts as much as the committed share, so these answers do not depend on
    // whether the watch has delivered the bound pod yet.
    filter_before = http.Post("filter", FilterArgs(probe, kGpuNodes));
    scores_before = http.Post("prioritize", FilterArgs(probe, kGpuNodes));
    const int status = process.Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  SchedulerProcess restarted(cluster_.kubeconfig());
  SchedulerHttp http(restarted.port());
  ASSERT_TRUE(WaitFor([&] { return http.Ready() == 200; }));
  EXPECT_EQ(http.Post("filter", FilterArgs(probe, kGpuNodes)), filter_before);
  EXPECT_EQ(http.Post("prioritize", FilterArgs(probe, kGpuNodes)), scores_before);
  EXPECT_EQ(http.Post("bind", BindArgs(pod, "gpu-a")), (json{{"Error", ""}}));  // already bound
}

// Bad configuration: a clear message on stderr and exit status 1, before serving anything.
TEST(SchedulerBinaryConfigTest, BadSourceFlagsAreClearErrors) {
  struct Row {
    const char* behaviour;
    std::string flags;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"unreadable kubeconfig", "--kubeconfig /nonexistent/kc",
       "Kubernetes config: cannot read kubeconfig '/nonexistent/kc'"},
      {"both sources", "--kubeconfig /nonexistent/kc --state-file x.json",
       "--state-file excludes --kubeconfig"},
  };
  for (const Row& row : rows) {
    const std::string command =
        std::string(GPUSLICE_SCHEDULER_BINARY) + " --listen 127.0.0.1:0 " + row.flags + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
    const int status = pclose(pipe);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << row.behaviour << ": " << status;
    EXPECT_NE(output.find(row.message), std::string::npos) << row.behaviour << ": " << output;
  }
}

}  // namespace
}  // namespace gpuslice::scheduler
