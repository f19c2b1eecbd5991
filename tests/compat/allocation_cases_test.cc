// NVIDIA's allocation tables (internal/rm/rm_test.go TestValidateRequest, internal/rm/
// allocate_test.go packed / distributed allocation, v0.20.0) through the node agent: a NodeAgent on
// a simulated node serves real gRPC on Unix sockets, and the test kubelet registers it and calls
// Allocate and GetPreferredAllocation as the kubelet does.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "backends/simulated_backend.h"
#include "compat/harness.h"
#include "core/clock.h"
#include "node_agent/node_agent.h"
#include "temp_dir.h"
#include "test_kubelet.h"

namespace gpuslice::compat {
namespace {

using gpuslice::testing::PluginClient;
using gpuslice::testing::TempDir;
using gpuslice::testing::TestKubelet;

// MPS daemons as bookkeeping only: these cases are about device IDs.
class RecordingMpsControl final : public MpsControl {
 public:
  Status Start(const MpsDaemonSpec& spec) override {
    running_.insert(spec.device_uuid);
    return Status::Ok();
  }
  Status Stop(const std::string& device_uuid) override {
    running_.erase(device_uuid);
    return Status::Ok();
  }
  bool IsRunning(const std::string& device_uuid) override { return running_.count(device_uuid); }

 private:
  std::set<std::string> running_;
};

// A node agent for `node_yaml` under `config_yaml`, registered with a test kubelet.
class Agent {
 public:
  Agent(const std::string& node_yaml, const std::string& config_yaml) : kubelet_(dir_.path()) {
    Result<SimulatedNode> node = ParseSimulatedNode(node_yaml, "compat-node");
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    backend_ = std::make_unique<SimulatedBackend>(*node, "compat-node", clock_);
    std::ofstream(dir_ / "config.yaml") << config_yaml;
    NodeAgentOptions options;
    options.config_path = dir_ / "config.yaml";
    options.device_plugin_dir = dir_.path();
    options.features_file = dir_ / "features";
    options.cdi_dir = dir_ / "cdi";
    options.mps_root = dir_ / "mps";
    options.mig_minors_file = dir_ / "no-mig-minors";
    options.poll_interval = std::chrono::milliseconds(5);
    EXPECT_TRUE(kubelet_.Start());
    agent_ = std::make_unique<NodeAgent>(options, *backend_, mps_);
    const Status started = agent_->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
  }
  ~Agent() {
    if (agent_) agent_->Stop();
    kubelet_.Stop();
  }

  // The kubelet's client for `resource`, once the agent has registered it.
  std::unique_ptr<PluginClient> Connect(const std::string& resource) {
    for (int i = 0;
         i < 400 && !kubelet_.WaitForRegistration(resource, 1, std::chrono::milliseconds(5)); ++i) {
      agent_->RunOnce();
    }
    return kubelet_.Connect(resource);
  }

  // The advertised device IDs of `resource` on physical GPU `gpu_index`.
  std::vector<std::string> Ids(const std::string& resource, int gpu_index = -1) const {
    std::vector<std::string> ids;
    const AdvertisedResource* r = agent_->advertisement().Find(resource);
    if (r == nullptr) return ids;
    for (const AdvertisedDevice& d : r->devices) {
      if (gpu_index < 0 || d.gpu_index == gpu_index) ids.push_back(d.id);
    }
    return ids;
  }

  // Physical GPU index of an advertised ID.
  int GpuOf(const std::string& resource, const std::string& id) const {
    for (const AdvertisedDevice& d : agent_->advertisement().Find(resource)->devices) {
      if (d.id == id) return d.gpu_index;
    }
    return -1;
  }

 private:
  TempDir dir_;
  SteadyClock clock_;
  RecordingMpsControl mps_;
  TestKubelet kubelet_;
  std::unique_ptr<SimulatedBackend> backend_;
  std::unique_ptr<NodeAgent> agent_;
};

std::string Gpus(int count) {
  return "gpus:\n  - model: A100-SXM4-40GB\n    count: " + std::to_string(count) + "\n";
}

std::string TimeSliced(int replicas, const std::string& policy = "",
                       const std::string& extra = "") {
  std::string yaml = "version: v1\n";
  if (!policy.empty())
    yaml += "flags:\n  plugin:\n    sharedDevicesAllocationPolicy: " + policy + "\n";
  return yaml + "sharing:\n  timeSlicing:\n" + extra +
         "    resources:\n      - name: nvidia.com/gpu\n        replicas: " +
         std::to_string(replicas) + "\n";
}

// --- rm_test.go TestValidateRequest, as Allocate calls ---

struct ValidateCase {
  const char* nvidia_case;
  std::string config;
  // Requested IDs as (GPU index, replica); replica -1 = the whole GPU; GPU 9 does not exist.
  std::vector<std::pair<int, int>> request;
  bool error;
};

void PrintTo(const ValidateCase& c, std::ostream* os) { *os << c.nvidia_case; }

class ValidateRequest : public ::testing::TestWithParam<ValidateCase> {};

TEST_P(ValidateRequest, AllocateAcceptsOrRefusesAsNvidiaDoes) {
  const ValidateCase& c = GetParam();
  Agent agent(Gpus(2), c.config);
  std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/gpu");
  ASSERT_NE(client, nullptr) << c.nvidia_case;
  std::vector<std::string> ids;
  for (const auto& [gpu, replica] : c.request) {
    const std::vector<std::string> of_gpu = agent.Ids("nvidia.com/gpu", gpu);
    if (of_gpu.empty()) {
      ids.push_back("GPU-not-on-this-node");
    } else {
      ids.push_back(replica < 0 ? of_gpu.at(0) : of_gpu.at(static_cast<std::size_t>(replica)));
    }
  }
  v1beta1::AllocateResponse response;
  const grpc::Status status = client->Allocate({ids}, &response);
  EXPECT_EQ(!status.ok(), c.error) << c.nvidia_case << ": " << status.error_message();
}

constexpr char kNoSharing[] = "version: v1\n";
std::string Mps(bool fail_greater_than_one) {
  return std::string("version: v1\nsharing:\n  mps:\n    failRequestsGreaterThanOne: ") +
         (fail_greater_than_one ? "true" : "false") +
         "\n    resources:\n      - name: nvidia.com/gpu\n        replicas: 2\n";
}

INSTANTIATE_TEST_SUITE_P(
    Compat, ValidateRequest,
    ::testing::Values(
        ValidateCase{"rm_test.go TestValidateRequest/valid device IDs -- no sharing",
                     kNoSharing,
                     {{1, -1}},
                     false},
        ValidateCase{"rm_test.go TestValidateRequest/invalid device IDs -- no sharing",
                     kNoSharing,
                     {{1, -1}, {9, -1}},
                     true},
        ValidateCase{"rm_test.go TestValidateRequest/timeslicing with single device",
                     TimeSliced(2),
                     {{0, 1}},
                     false},
        ValidateCase{"rm_test.go TestValidateRequest/timeslicing with two devices",
                     TimeSliced(2),
                     {{0, 1}, {1, 0}},
                     false},
        ValidateCase{"rm_test.go TestValidateRequest/timeslicing with two devices -- "
                     "failRequestsGreaterThanOne",
                     TimeSliced(2, "", "    failRequestsGreaterThanOne: true\n"),
                     {{0, 1}, {1, 0}},
                     true},
        ValidateCase{
            "rm_test.go TestValidateRequest/MPS with single device", Mps(false), {{0, 1}}, false},
        // DEVIATION (docs/migrating-from-nvidia.md): NVIDIA runs one MPS daemon for all GPUs of
        // a resource and accepts replicas of two GPUs in one container; gpuslice runs one daemon
        // per GPU (so each gets its own thread and memory limits) and refuses such a request
        // with an error naming the fix. Replicas of ONE GPU are accepted (next case).
        ValidateCase{"rm_test.go TestValidateRequest/MPS with two devices [deviation: two GPUs "
                     "refused]",
                     Mps(false),
                     {{0, 1}, {1, 0}},
                     true},
        ValidateCase{"rm_test.go TestValidateRequest/MPS with two devices [replicas of one GPU]",
                     Mps(false),
                     {{0, 0}, {0, 1}},
                     false},
        ValidateCase{"rm_test.go TestValidateRequest/MPS with two devices -- "
                     "failRequestsGreaterThanOne",
                     Mps(true),
                     {{0, 1}, {1, 0}},
                     true}));

// --- allocate_test.go: packed and distributed preferred allocation ---

struct AllocCase {
  const char* nvidia_case;
  int gpus;
  int replicas;
  std::string policy;               // "" = not set (the default)
  std::vector<int> available_gpus;  // GPUs whose replicas are available; empty = all
  int size;
  bool error;
  std::vector<int> per_gpu;  // expected picks per GPU, sorted descending (e.g. {4, 1})
  std::vector<int> exact;    // when set: expected picks per GPU index
};

void PrintTo(const AllocCase& c, std::ostream* os) { *os << c.nvidia_case; }

class PreferredAllocation : public ::testing::TestWithParam<AllocCase> {};

TEST_P(PreferredAllocation, ChoosesAsNvidiaDoes) {
  const AllocCase& c = GetParam();
  Agent agent(Gpus(c.gpus), TimeSliced(c.replicas, c.policy));
  std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/gpu");
  ASSERT_NE(client, nullptr) << c.nvidia_case;
  std::vector<std::string> available;
  if (c.available_gpus.empty()) {
    available = agent.Ids("nvidia.com/gpu");
  } else {
    for (int g : c.available_gpus) {
      for (const std::string& id : agent.Ids("nvidia.com/gpu", g)) available.push_back(id);
    }
  }
  std::vector<std::string> chosen;
  const grpc::Status status = client->GetPreferredAllocation(available, {}, c.size, &chosen);
  if (c.error) {
    EXPECT_FALSE(status.ok()) << c.nvidia_case;
    return;
  }
  ASSERT_TRUE(status.ok()) << c.nvidia_case << ": " << status.error_message();
  ASSERT_EQ(chosen.size(), static_cast<std::size_t>(c.size)) << c.nvidia_case;
  std::map<int, int> counts;
  for (const std::string& id : chosen) ++counts[agent.GpuOf("nvidia.com/gpu", id)];
  std::vector<int> per_gpu;
  for (const auto& [gpu, n] : counts) per_gpu.push_back(n);
  std::sort(per_gpu.rbegin(), per_gpu.rend());
  EXPECT_EQ(per_gpu, c.per_gpu) << c.nvidia_case;
  if (!c.exact.empty()) {
    for (std::size_t g = 0; g < c.exact.size(); ++g) {
      EXPECT_EQ(counts[static_cast<int>(g)], c.exact[g]) << c.nvidia_case << " GPU " << g;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    CompatDistributed, PreferredAllocation,
    ::testing::Values(
        AllocCase{"allocate_test.go TestDistributedAlloc/2 GPUs, 4 replicas each, allocate 2 — "
                  "should distribute across GPUs",
                  2,
                  4,
                  "distributed",
                  {},
                  2,
                  false,
                  {1, 1},
                  {1, 1}},
        AllocCase{"allocate_test.go TestDistributedAlloc/3 GPUs, 2 replicas each, allocate 3 — "
                  "should distribute across all GPUs",
                  3,
                  2,
                  "distributed",
                  {},
                  3,
                  false,
                  {1, 1, 1},
                  {1, 1, 1}},
        AllocCase{"allocate_test.go TestDistributedAlloc/2 GPUs, 4 replicas each, allocate 4 — "
                  "should distribute 2 per GPU",
                  2,
                  4,
                  "distributed",
                  {},
                  4,
                  false,
                  {2, 2},
                  {2, 2}},
        AllocCase{"allocate_test.go TestDistributedAlloc/allocate 1 from single GPU — trivial "
                  "case",
                  1,
                  4,
                  "distributed",
                  {},
                  1,
                  false,
                  {1},
                  {1}},
        AllocCase{"allocate_test.go TestDistributedAlloc/not enough devices — should return "
                  "error",
                  1,
                  2,
                  "distributed",
                  {},
                  5,
                  true,
                  {},
                  {}},
        AllocCase{"allocate_test.go TestDistributedAlloc/partial availability simulates "
                  "pre-allocated state — should still distribute",
                  2,
                  4,
                  "distributed",
                  {1},
                  2,
                  false,
                  {2},
                  {0, 2}},
        AllocCase{"allocate_test.go TestDistributedAllocIsDefault (policy not set)",
                  3,
                  4,
                  "",
                  {},
                  3,
                  false,
                  {1, 1, 1},
                  {1, 1, 1}},
        AllocCase{"allocate_test.go TestPackedVsDistributedContrast (distributed half)",
                  2,
                  4,
                  "distributed",
                  {},
                  4,
                  false,
                  {2, 2},
                  {2, 2}}));

INSTANTIATE_TEST_SUITE_P(
    CompatPacked, PreferredAllocation,
    ::testing::Values(
        AllocCase{"allocate_test.go TestPackedAlloc/2 GPUs, 4 replicas each, allocate 2 — should "
                  "pack onto same GPU",
                  2,
                  4,
                  "packed",
                  {},
                  2,
                  false,
                  {2},
                  {}},
        AllocCase{"allocate_test.go TestPackedAlloc/3 GPUs, 2 replicas each, allocate 3 — should "
                  "fill one GPU first",
                  3,
                  2,
                  "packed",
                  {},
                  3,
                  false,
                  {2, 1},
                  {}},
        AllocCase{"allocate_test.go TestPackedAlloc/2 GPUs, 4 replicas each, allocate 4 — should "
                  "pack onto single GPU",
                  2,
                  4,
                  "packed",
                  {},
                  4,
                  false,
                  {4},
                  {}},
        AllocCase{"allocate_test.go TestPackedAlloc/2 GPUs, 4 replicas each, allocate 5 — should "
                  "fill one GPU then overflow",
                  2,
                  4,
                  "packed",
                  {},
                  5,
                  false,
                  {4, 1},
                  {}},
        AllocCase{"allocate_test.go TestPackedAlloc/allocate 1 from single GPU — trivial case",
                  1,
                  4,
                  "packed",
                  {},
                  1,
                  false,
                  {1},
                  {}},
        AllocCase{"allocate_test.go TestPackedAlloc/not enough devices — should return error",
                  1,
                  2,
                  "packed",
                  {},
                  5,
                  true,
                  {},
                  {}},
        AllocCase{"allocate_test.go TestPackedVsDistributedContrast (packed half)",
                  2,
                  4,
                  "packed",
                  {},
                  4,
                  false,
                  {4},
                  {}}));

// allocate_test.go TestDistributedAlloc_PartiallyAllocated_DistributesAcrossDistinctGPUs
TEST(CompatAllocation, PartiallyAllocatedDistributesAcrossDistinctGpus) {
  Agent agent(Gpus(2), TimeSliced(2, "distributed"));
  std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> gpu0 = agent.Ids("nvidia.com/gpu", 0);
  const std::vector<std::string> gpu1 = agent.Ids("nvidia.com/gpu", 1);
  // GPU 1's first replica is in use elsewhere.
  std::vector<std::string> chosen;
  ASSERT_TRUE(client->GetPreferredAllocation({gpu0[0], gpu0[1], gpu1[1]}, {}, 2, &chosen).ok());
  ASSERT_EQ(chosen.size(), 2u);
  EXPECT_NE(agent.GpuOf("nvidia.com/gpu", chosen[0]), agent.GpuOf("nvidia.com/gpu", chosen[1]))
      << chosen[0] << " " << chosen[1];
}

// allocate_test.go TestDistributedAllocIsDefault: the same answer every time.
TEST(CompatAllocation, DistributedIsDefaultAndStable) {
  Agent agent(Gpus(3), TimeSliced(4));
  std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 10; ++i) {
    std::vector<std::string> chosen;
    ASSERT_TRUE(client->GetPreferredAllocation(agent.Ids("nvidia.com/gpu"), {}, 3, &chosen).ok());
    std::set<int> gpus;
    for (const std::string& id : chosen) gpus.insert(agent.GpuOf("nvidia.com/gpu", id));
    EXPECT_EQ(gpus.size(), 3u) << "iteration " << i;
  }
}

// allocate_test.go TestFullGPUNodeIgnoresAllocationPolicy: whole GPUs take the topology-aware
// path whatever the policy.
TEST(CompatAllocation, FullGpuNodeIgnoresAllocationPolicy) {
  const std::string node = "node: {numaNodes: 2}\n" + Gpus(4);
  std::vector<std::vector<std::string>> answers;
  for (const char* policy : {"distributed", "packed"}) {
    Agent agent(node, std::string("version: v1\nflags:\n  plugin:\n    "
                                  "sharedDevicesAllocationPolicy: ") +
                          policy + "\n");
    std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/gpu");
    ASSERT_NE(client, nullptr);
    std::vector<std::string> chosen;
    ASSERT_TRUE(client->GetPreferredAllocation(agent.Ids("nvidia.com/gpu"), {}, 2, &chosen).ok());
    answers.push_back(chosen);
  }
  EXPECT_EQ(answers[0], answers[1]);
}

// allocate_test.go TestFullGPUNodeIgnoresAllocationPolicy/MIG devices do not take aligned
// allocation path: MIG devices follow the policy.
TEST(CompatAllocation, MigDevicesFollowThePolicy) {
  const std::string node =
      "gpus:\n  - model: A100-SXM4-40GB\n    count: 2\n"
      "    mig: {enabled: true, devices: [{profile: 1g.5gb}, {profile: 1g.5gb}]}\n";
  std::map<std::string, std::size_t> gpus_used;
  for (const char* policy : {"distributed", "packed"}) {
    Agent agent(node, std::string("version: v1\nflags:\n  migStrategy: mixed\n  plugin:\n    "
                                  "sharedDevicesAllocationPolicy: ") +
                          policy + "\n");
    std::unique_ptr<PluginClient> client = agent.Connect("nvidia.com/mig-1g.5gb");
    ASSERT_NE(client, nullptr);
    std::vector<std::string> chosen;
    ASSERT_TRUE(
        client->GetPreferredAllocation(agent.Ids("nvidia.com/mig-1g.5gb"), {}, 2, &chosen).ok());
    std::set<int> gpus;
    for (const std::string& id : chosen) gpus.insert(agent.GpuOf("nvidia.com/mig-1g.5gb", id));
    gpus_used[policy] = gpus.size();
  }
  EXPECT_EQ(gpus_used["distributed"], 2u);
  EXPECT_EQ(gpus_used["packed"], 1u);
}

}  // namespace
}  // namespace gpuslice::compat
