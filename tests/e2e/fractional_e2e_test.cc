// Issue 13 end to end: the fake API server, the gpuslice-scheduler binary on a kubeconfig, and two
// gpuslice-node-agent binaries (--node-name) on simulated nodes with a gpuslice.fractional config,
// each with its own test kubelet and PodResources. Fractional pods are created in the API and
// scheduled with the JSON kube-scheduler sends (filter, prioritize, bind); the binding's node
// kubelet Allocates a gpuslice.io/gpu slot of the chosen GPU and records it in PodResources; the
// container's limits file must name that GPU with the requested memory and compute. Then the
// watches break, pods are deleted meanwhile, the scheduler restarts, and no share is lost or
// leaked.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_process.h"
#include "core/resource_names.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/atomic_file.h"
#include "scheduler/kube_objects.h"
#include "shim/container_limits.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_objects.h"
#include "test_pod_resources.h"

namespace gpuslice::e2e {
namespace {

using kube::Json;
using scheduler::testing::kGiB;
using scheduler::testing::MakePod;
using namespace std::chrono_literals;

const std::vector<std::string> kNodes = {"node-a100", "node-h100"};

template <typename F>
bool Eventually(F done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

// One simulated node: its own test kubelet, PodResources and node agent binary.
struct Node {
  std::string name;
  std::string dir;
  std::unique_ptr<testing::TestKubelet> kubelet;
  std::unique_ptr<testing::TestPodResources> pod_resources;
  std::unique_ptr<testing::AgentProcess> agent;
  int next_slot = 0;
};

// The gpuslice-scheduler binary; its port read from the "port N" line it prints.
class SchedulerBinary {
 public:
  SchedulerBinary(const std::string& kubeconfig, const std::string& log)
      : process_({GPUSLICE_SCHEDULER_BINARY, "--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig},
                 log) {}
  // Waits for the port line and /readyz (both informers listed); the port, or 0.
  int WaitReady() {
    int port = 0;
    Eventually([&] {
      const std::string log = process_.Log();
      const std::size_t at = log.find("\nport ");
      return at != std::string::npos && std::sscanf(log.c_str() + at, "\nport %d", &port) == 1;
    });
    if (port == 0) return 0;
    httplib::Client client("127.0.0.1", port);
    const bool ready = Eventually([&] {
      const auto response = client.Get("/readyz");
      return response && response->status == 200;
    });
    return ready ? port : 0;
  }
  testing::AgentProcess& process() { return process_; }

 private:
  testing::AgentProcess process_;
};

class FractionalE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    std::ofstream(dir_ / "kubeconfig") << server_.Kubeconfig();
    Result<kube::KubeConfig> config = kube::LoadKubeconfigFile(dir_ / "kubeconfig");
    ASSERT_TRUE(config.ok());
    Result<std::unique_ptr<kube::KubeClient>> api = kube::KubeClient::Create(*config);
    ASSERT_TRUE(api.ok());
    api_ = std::move(*api);
    kube::ResourceRef namespaces;
    namespaces.resource = "namespaces";
    ASSERT_TRUE(api_->Create(namespaces, {{"metadata", {{"name", "team-a"}}}}).ok());
    StartNode(kNodes[0], "a100-40gb-8x.yaml");
    StartNode(kNodes[1], "h100-80gb-8x.yaml");
  }
  void TearDown() override {
    for (Node& node : nodes_) {
      if (node.agent) {
        EXPECT_EQ(node.agent->Terminate(10s), 0) << node.agent->Log();
      }
      if (node.kubelet) node.kubelet->Stop();
      if (node.pod_resources) node.pod_resources->Stop();
    }
    server_.Stop();
  }

  // A Node object labelled with a fractional config (GPU 0, 4 slots), and its agent.
  void StartNode(const std::string& name, const std::string& fixture) {
    Node& node = nodes_.emplace_back();
    node.name = name;
    node.dir = dir_ / name;
    std::filesystem::create_directories(node.dir + "/configs");
    std::filesystem::create_directories(node.dir + "/dp");
    ASSERT_TRUE(WriteFileAtomically(node.dir + "/configs/fractional",
                                    "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n"
                                    "    devices: [0]\n    slotsPerGpu: 4\n")
                    .ok());
    ASSERT_TRUE(
        api_->Create(
                kube::Nodes(),
                {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata",
                  {{"name", name},
                   {"labels", {{std::string(names::kLabelDevicePluginConfig), "fractional"}}}}}})
            .ok());
    node.kubelet = std::make_unique<testing::TestKubelet>(node.dir + "/dp");
    ASSERT_TRUE(node.kubelet->Start());
    node.pod_resources =
        std::make_unique<testing::TestPodResources>(node.dir + "/pod-resources.sock");
    ASSERT_TRUE(node.pod_resources->Start());
    const std::string sim = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/" + fixture;
    node.agent = std::make_unique<testing::AgentProcess>(
        std::vector<std::string>{GPUSLICE_NODE_AGENT,
                                 "--backend",
                                 "sim:" + sim,
                                 "--config-dir",
                                 node.dir + "/configs",
                                 "--device-plugin-dir",
                                 node.dir + "/dp",
                                 "--features-file",
                                 node.dir + "/features",
                                 "--cdi-dir",
                                 node.dir + "/cdi",
                                 "--mps-root",
                                 node.dir + "/mps",
                                 "--mig-minors-file",
                                 node.dir + "/no-mig-minors",
                                 "--memory-watchdog",
                                 "off",
                                 "--node-name",
                                 name,
                                 "--kubeconfig",
                                 dir_ / "kubeconfig",
                                 "--pod-resources-socket",
                                 node.dir + "/pod-resources.sock",
                                 "--allocations-dir",
                                 node.dir + "/allocations"},
        node.dir + "/agent.log");
    ASSERT_TRUE(node.agent->started());
  }

  Node& NodeNamed(const std::string& name) {
    for (Node& node : nodes_) {
      if (node.name == name) return node;
    }
    ADD_FAILURE() << "no node " << name;
    return nodes_.front();
  }

  // The GPUs a node's agent published in gpuslice.io/gpus.
  std::vector<scheduler::NodeGpu> Published(const std::string& name) {
    Result<Json> node = api_->Get(kube::Node(name));
    if (!node.ok() || !(*node)["metadata"].contains("annotations")) return {};
    const Json& annotations = (*node)["metadata"]["annotations"];
    auto it = annotations.find(std::string(names::kAnnotationNodeGpus));
    if (it == annotations.end()) return {};
    Result<std::vector<scheduler::NodeGpu>> gpus =
        scheduler::DecodeNodeGpus(it->get<std::string>());
    return gpus.ok() ? *gpus : std::vector<scheduler::NodeGpu>{};
  }

  Json CreatePod(const std::string& name, const std::string& memory, const std::string& compute) {
    Json pod = MakePod(name, {.memory = memory, .compute = compute});
    for (const char* key : {"uid", "resourceVersion", "creationTimestamp"})
      pod["metadata"].erase(key);
    Result<Json> created = api_->Create(kube::Pods("team-a"), pod);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : Json();
  }

  // kube-scheduler's HTTPExtender calls (nodeCacheCapable): filter over both nodes, prioritize
  // the feasible ones, bind to the best score. The bound node, or "" with `why` set.
  std::string Schedule(int port, const Json& pod, std::string* why) {
    httplib::Client client("127.0.0.1", port);
    auto post = [&](const std::string& verb, const Json& body) {
      const auto response = client.Post("/gpuslice/" + verb, body.dump(), "application/json");
      return response ? Json::parse(response->body, nullptr, false) : Json();
    };
    const Json filtered = post("filter", {{"Pod", pod}, {"Nodes", nullptr}, {"NodeNames", kNodes}});
    const Json feasible = filtered.value("NodeNames", Json::array());
    if (feasible.empty()) {
      *why = filtered.dump();
      return "";
    }
    const Json scores =
        post("prioritize", {{"Pod", pod}, {"Nodes", nullptr}, {"NodeNames", feasible}});
    std::string best;
    std::int64_t best_score = -1;
    for (const Json& score : scores) {
      if (score.value("Score", std::int64_t{-1}) > best_score) {
        best_score = score["Score"].get<std::int64_t>();
        best = score["Host"].get<std::string>();
      }
    }
    const Json bound = post("bind", {{"PodName", pod["metadata"]["name"]},
                                     {"PodNamespace", "team-a"},
                                     {"PodUID", pod["metadata"]["uid"]},
                                     {"Node", best}});
    if (bound.value("Error", "x") != "") {
      *why = bound.dump();
      return "";
    }
    return best;
  }

  // The pod as stored: bound to `node` with an assignment of `memory_bytes` / `compute_percent`
  // on a GPU that node published. The assignment, or nullopt.
  std::optional<scheduler::GpuAssignment> CheckBound(const std::string& pod_name,
                                                     const std::string& node,
                                                     std::int64_t memory_bytes,
                                                     int compute_percent) {
    Result<Json> pod = api_->Get(kube::Pod("team-a", pod_name));
    if (!pod.ok()) return std::nullopt;
    EXPECT_EQ((*pod)["spec"].value("nodeName", ""), node);
    const std::string text =
        (*pod)["metadata"]["annotations"].value(std::string(names::kAnnotationPodAssignment), "");
    Result<scheduler::GpuAssignment> assignment = scheduler::DecodeAssignment(text);
    EXPECT_TRUE(assignment.ok()) << text;
    if (!assignment.ok()) return std::nullopt;
    EXPECT_EQ(assignment->node, node);
    EXPECT_EQ(assignment->memory_bytes, memory_bytes);
    EXPECT_EQ(assignment->compute_percent, compute_percent);
    EXPECT_EQ(assignment->gpus.size(), 1u);
    if (assignment->gpus.size() != 1) return std::nullopt;
    bool published = false;
    for (const auto& gpu : Published(node)) {
      published |= gpu.index == assignment->gpus[0].index && gpu.uuid == assignment->gpus[0].uuid;
    }
    EXPECT_TRUE(published) << text;
    return *assignment;
  }

  // The node's kubelet Allocates a slot of the assigned GPU, records it in PodResources, and the
  // container's limits file must name that GPU with the assignment's memory and compute.
  // The limits directory.
  std::string AllocateAndCheckLimits(const std::string& pod_name,
                                     const scheduler::GpuAssignment& assignment) {
    Node& node = NodeNamed(assignment.node);
    std::unique_ptr<testing::PluginClient> plugin = node.kubelet->Connect("gpuslice.io/gpu");
    EXPECT_NE(plugin, nullptr);
    if (plugin == nullptr) return "";
    const std::vector<std::string> ids = {assignment.gpus[0].uuid +
                                          "::" + std::to_string(node.next_slot++)};
    v1beta1::AllocateResponse response;
    grpc::Status allocated = plugin->Allocate({ids}, &response);
    EXPECT_TRUE(allocated.ok()) << allocated.error_message() << node.agent->Log();
    if (!allocated.ok()) return "";
    node.pod_resources->RecordAllocation("team-a", pod_name, "main", "gpuslice.io/gpu", ids);
    std::string limits_dir;
    for (const auto& mount : response.container_responses(0).mounts()) {
      if (mount.container_path() == kContainerLimitsDir) limits_dir = mount.host_path();
    }
    EXPECT_FALSE(limits_dir.empty());
    EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(limits_dir + "/limits"); }))
        << node.agent->Log();
    Result<shim::ContainerLimits> limits = shim::ReadContainerLimitsFile(limits_dir + "/limits");
    EXPECT_TRUE(limits.ok()) << limits.status().ToString();
    if (!limits.ok()) return limits_dir;
    EXPECT_EQ(limits->device_count, 1u);
    EXPECT_EQ(std::string(limits->devices[0].uuid), assignment.gpus[0].uuid);
    EXPECT_EQ(limits->devices[0].memory_bytes, static_cast<std::uint64_t>(assignment.memory_bytes));
    EXPECT_EQ(limits->devices[0].compute_percent,
              static_cast<std::uint32_t>(assignment.compute_percent));
    return limits_dir;
  }

  testing::TempDir dir_;
  fake::FakeApiServer server_;
  std::unique_ptr<kube::KubeClient> api_;
  std::vector<Node> nodes_;
};

TEST_F(FractionalE2eTest, PodsAreBoundAllocatedLimitedAndNoShareIsLostOrLeakedAcrossARestart) {
  for (const std::string& name : kNodes) {
    ASSERT_TRUE(Eventually([&] { return Published(name).size() == 1; }))
        << NodeNamed(name).agent->Log();
    ASSERT_TRUE(NodeNamed(name).kubelet->WaitForRegistration("gpuslice.io/gpu", 1, 10s));
  }
  auto scheduler = std::make_unique<SchedulerBinary>(dir_ / "kubeconfig", dir_ / "sched-1.log");
  int port = scheduler->WaitReady();
  ASSERT_NE(port, 0) << scheduler->process().Log();

  // 70 % + 70 % cannot share a GPU: "big-1" and "big-2" land on different nodes; "small" (20 %)
  // lands on either.
  struct Want {
    std::string name;
    std::string memory;
    std::int64_t memory_bytes;
    int compute;
  };
  const std::vector<Want> wants = {{"big-1", "4Gi", 4 * kGiB, 70},
                                   {"big-2", "6Gi", 6 * kGiB, 70},
                                   {"small", "2Gi", 2 * kGiB, 20}};
  std::map<std::string, std::string> node_of;
  std::map<std::string, std::string> limits_dir_of;
  for (const Want& want : wants) {
    const Json pod = CreatePod(want.name, want.memory, std::to_string(want.compute));
    std::string why;
    const std::string node = Schedule(port, pod, &why);
    ASSERT_FALSE(node.empty()) << want.name << ": " << why;
    std::optional<scheduler::GpuAssignment> assignment =
        CheckBound(want.name, node, want.memory_bytes, want.compute);
    ASSERT_TRUE(assignment.has_value()) << want.name;
    node_of[want.name] = node;
    limits_dir_of[want.name] = AllocateAndCheckLimits(want.name, *assignment);
  }
  ASSERT_NE(node_of["big-1"], node_of["big-2"]);

  // Watches break (scheduler's and agents'); "big-1" is deleted meanwhile; the scheduler restarts.
  server_.BreakWatches();
  ASSERT_TRUE(api_->Delete(kube::Pod("team-a", "big-1")).ok());
  NodeNamed(node_of["big-1"]).pod_resources->ForgetPod("team-a", "big-1");
  EXPECT_EQ(scheduler->process().Terminate(10s), 0) << scheduler->process().Log();
  scheduler = std::make_unique<SchedulerBinary>(dir_ / "kubeconfig", dir_ / "sched-2.log");
  port = scheduler->WaitReady();
  ASSERT_NE(port, 0) << scheduler->process().Log();

  // Released: 70 % fits only on big-1's old node, and only because its share was released.
  const Json reuse = CreatePod("reuse", "4Gi", "70");
  std::string why;
  const std::string reuse_node = Schedule(port, reuse, &why);
  EXPECT_EQ(reuse_node, node_of["big-1"]) << why;
  std::optional<scheduler::GpuAssignment> reuse_assignment =
      CheckBound("reuse", reuse_node, 4 * kGiB, 70);
  ASSERT_TRUE(reuse_assignment.has_value());
  AllocateAndCheckLimits("reuse", *reuse_assignment);

  // Not lost: big-2, small and reuse still count, so 40 % fits nowhere (each GPU holds >= 70 %).
  const Json overbook = CreatePod("overbook", "1Gi", "40");
  why.clear();
  EXPECT_EQ(Schedule(port, overbook, &why), "");
  EXPECT_NE(why.find("FailedNodes"), std::string::npos) << why;
  Result<Json> refused = api_->Get(kube::Pod("team-a", "overbook"));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->at("spec").value("nodeName", ""), "");

  // The surviving pods' limits stay. (The deleted pod's allocation directory is removed by the
  // agent's PodResources check every release_interval, 10 s: tested in node_cluster_test.)
  EXPECT_TRUE(std::filesystem::exists(limits_dir_of["big-2"] + "/limits"));
  EXPECT_EQ(scheduler->process().Terminate(10s), 0) << scheduler->process().Log();
}

}  // namespace
}  // namespace gpuslice::e2e
