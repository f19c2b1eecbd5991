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
#include "cluster_agent.h"
#include "command_runner.h"
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

using testing::Eventually;

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
        testing::ClusterAgentArgs({.binary = GPUSLICE_NODE_AGENT,
                                   .sim_node = sim,
                                   .dir = node.dir,
                                   .node_name = name,
                                   .kubeconfig = dir_ / "kubeconfig",
                                   .shim_dir = GPUSLICE_SHIM_DIR}),
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
    return testing::PublishedGpus(*api_, name);
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
  std::string Schedule(int port, const Json& pod, std::string* why,
                       const std::string& pod_namespace = "team-a") {
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
                                     {"PodNamespace", pod_namespace},
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
                                                     std::int64_t memory_bytes, int compute_percent,
                                                     const std::string& pod_namespace = "team-a") {
    Result<Json> pod = api_->Get(kube::Pod(pod_namespace, pod_name));
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
                                     const scheduler::GpuAssignment& assignment,
                                     const std::string& pod_namespace = "team-a") {
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
    node.pod_resources->RecordAllocation(pod_namespace, pod_name, "main", "gpuslice.io/gpu", ids);
    const v1beta1::ContainerAllocateResponse& container = response.container_responses(0);
    const v1beta1::Mount* limits_mount = testing::MountAt(container, kContainerLimitsDir);
    EXPECT_NE(limits_mount, nullptr);
    const std::string limits_dir = limits_mount != nullptr ? limits_mount->host_path() : "";
    CheckShimMounts(container);
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

  // Both agents published their GPU and registered gpuslice.io/gpu with their kubelet.
  void WaitForNodes() {
    for (const std::string& name : kNodes) {
      ASSERT_TRUE(Eventually([&] { return Published(name).size() == 1; }))
          << NodeNamed(name).agent->Log();
      ASSERT_TRUE(NodeNamed(name).kubelet->WaitForRegistration("gpuslice.io/gpu", 1, 10s));
    }
  }

  // `kubectl --kubeconfig <the fake API server> ARGS`.
  kube::CommandResult Kubectl(const std::string& args) {
    return kube::RunCommand(kube::KubectlBinary() + " --kubeconfig " + (dir_ / "kubeconfig") +
                                " --cache-dir " + (dir_ / "kubectl-cache") + " " + args,
                            60);
  }

  // The container is limited by the shim: both libraries and the preload naming them, read-only.
  static void CheckShimMounts(const v1beta1::ContainerAllocateResponse& container) {
    std::string preloaded;
    for (const char* name : {"libgpuslice-cuda.so", "libgpuslice-nvml.so"}) {
      const std::string in_container = std::string("/usr/local/lib/gpuslice/") + name;
      const v1beta1::Mount* shim = testing::MountAt(container, in_container);
      ASSERT_NE(shim, nullptr) << name << "\n" << container.DebugString();
      EXPECT_EQ(shim->host_path(), std::string(GPUSLICE_SHIM_DIR) + "/" + name);
      EXPECT_TRUE(shim->read_only());
      preloaded += in_container + "\n";
    }
    const v1beta1::Mount* preload = testing::MountAt(container, "/etc/ld.so.preload");
    ASSERT_NE(preload, nullptr) << container.DebugString();
    EXPECT_TRUE(preload->read_only());
    EXPECT_EQ(ReadFileOrEmpty(preload->host_path()), preloaded);
  }

  testing::TempDir dir_;
  fake::FakeApiServer server_;
  std::unique_ptr<kube::KubeClient> api_;
  std::vector<Node> nodes_;
};

TEST_F(FractionalE2eTest, PodsAreBoundAllocatedLimitedAndNoShareIsLostOrLeakedAcrossARestart) {
  ASSERT_NO_FATAL_FAILURE(WaitForNodes());
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

// The README's walk-through "Run a pod with 8Gi and 30 % of a GPU", with its own files and
// commands: the pod of docs/examples/pod-8gi-30.yaml is created with `kubectl create -f`,
// scheduled by gpuslice-scheduler with kube-scheduler's calls, shows its assignment through
// `kubectl get pod -o jsonpath`, and its container gets the shims and an 8 GiB / 30 % limits file.
TEST_F(FractionalE2eTest, TheReadmeWalkThroughPodRunsWith8GiAnd30Percent) {
  const std::string kubectl = kube::KubectlBinary();
  if (!kube::CommandExists("command -v " + kubectl)) {
    GTEST_SKIP() << kubectl << " is not installed (install Debian's kubernetes-client)";
  }
  ASSERT_NO_FATAL_FAILURE(WaitForNodes());
  SchedulerBinary scheduler(dir_ / "kubeconfig", dir_ / "sched.log");
  const int port = scheduler.WaitReady();
  ASSERT_NE(port, 0) << scheduler.process().Log();

  const std::string file = std::string(GPUSLICE_SOURCE_DIR) + "/docs/examples/pod-8gi-30.yaml";
  const kube::CommandResult created =
      Kubectl("create -f " + file + kube::KubectlValidateFlag(kube::KubectlMinorVersion(kubectl)));
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_NE(created.output.find("pod/train created"), std::string::npos) << created.output;
  Result<Json> pod = api_->Get(kube::Pod("default", "train"));
  ASSERT_TRUE(pod.ok()) << pod.status().ToString();
  EXPECT_EQ((*pod)["spec"]["schedulerName"], "gpuslice-scheduler");

  std::string why;
  const std::string node = Schedule(port, *pod, &why, "default");
  ASSERT_FALSE(node.empty()) << why;
  std::optional<scheduler::GpuAssignment> assignment =
      CheckBound("train", node, 8 * kGiB, 30, "default");
  ASSERT_TRUE(assignment.has_value());
  // What the README shows the user.
  const kube::CommandResult shown =
      Kubectl("get pod train -o jsonpath='{.metadata.annotations.gpuslice\\.io/assignment}'");
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  Result<scheduler::GpuAssignment> decoded = scheduler::DecodeAssignment(shown.output);
  ASSERT_TRUE(decoded.ok()) << shown.output;
  EXPECT_EQ(*decoded, *assignment);
  const kube::CommandResult where = Kubectl("get pod train -o jsonpath='{.spec.nodeName}'");
  EXPECT_EQ(where.output, node);

  const std::string limits_dir = AllocateAndCheckLimits("train", *assignment, "default");
  const std::string limits = ReadFileOrEmpty(limits_dir + "/limits");
  EXPECT_NE(limits.find(" memory-bytes=8589934592 compute-percent=30"), std::string::npos)
      << limits;
  EXPECT_EQ(scheduler.process().Terminate(10s), 0) << scheduler.process().Log();
}

}  // namespace
}  // namespace gpuslice::e2e
