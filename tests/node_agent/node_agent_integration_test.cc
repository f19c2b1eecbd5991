// Starts the real gpuslice-node-agent binary (simulated backend, temporary device-plugin
// directory) against the in-project test kubelet over real gRPC.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include "agent_process.h"
#include "node_agent/atomic_file.h"
#include "node_agent/feature_file_writer.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_nodes.h"

namespace gpuslice {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using ::testing::HasSubstr;
using testing::PluginClient;
using testing::TempDir;
using testing::TestKubelet;

constexpr auto kWait = 10s;

std::string FixtureNode(const std::string& name) {
  return ReadFileOrEmpty(std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/" + name);
}

std::vector<std::string> Ids(const v1beta1::ListAndWatchResponse& list) {
  std::vector<std::string> out;
  for (const auto& d : list.devices()) out.push_back(d.id());
  return out;
}

std::map<std::string, std::string> HealthById(const v1beta1::ListAndWatchResponse& list) {
  std::map<std::string, std::string> out;
  for (const auto& d : list.devices()) out[d.id()] = d.health();
  return out;
}

class NodeAgentIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    kubelet_ = std::make_unique<TestKubelet>(plugin_dir());
    ASSERT_TRUE(kubelet_->Start());
    std::ofstream(dir_ / "events").close();
  }
  void TearDown() override {
    if (agent_ != nullptr && ::testing::Test::HasFailure()) {
      std::cerr << "---- agent log ----\n" << agent_->Log() << "-------------------\n";
    }
  }

  std::string plugin_dir() const { return dir_ / "dp"; }
  std::string config_path() const { return dir_ / "config.yaml"; }

  void UseNode(const std::string& node_yaml) {
    node_yaml_ = node_yaml;
    gpus_ = testing::GpusOf(node_yaml);
    std::ofstream(dir_ / "node.yaml") << node_yaml << "\neventsFile: " << (dir_ / "events") << "\n";
  }
  void WriteConfig(const std::string& yaml) {
    ASSERT_TRUE(WriteFileAtomically(config_path(), yaml).ok());
  }
  void StartAgent(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {GPUSLICE_NODE_AGENT,
                                     "--backend",
                                     "sim:" + (dir_ / "node.yaml"),
                                     "--config",
                                     config_path(),
                                     "--device-plugin-dir",
                                     plugin_dir(),
                                     "--features-file",
                                     dir_ / "features.d/gpuslice",
                                     "--cdi-dir",
                                     dir_ / "cdi",
                                     "--mps-root",
                                     dir_ / "mps",
                                     "--mig-minors-file",
                                     dir_ / "no-mig-minors",
                                     "--log-level",
                                     "debug"};
    args.insert(args.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<AgentProcess>(args, dir_ / "agent.log");
    ASSERT_TRUE(agent_->started());
  }
  // Polls (up to 5 s) until `path` exists, or until it is gone when `exists` is false.
  static bool WaitForPath(const std::filesystem::path& path, bool exists) {
    for (int i = 0; i < 500 && std::filesystem::exists(path) != exists; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    return std::filesystem::exists(path) == exists;
  }
  void AppendEvent(const std::string& line) {
    std::ofstream(dir_ / "events", std::ios::app) << line << "\n";
  }
  // Waits for `resource` to register and returns a client watching its device list.
  std::unique_ptr<PluginClient> Watch(const std::string& resource, int registrations = 1,
                                      TestKubelet* kubelet = nullptr) {
    TestKubelet& k = kubelet != nullptr ? *kubelet : *kubelet_;
    EXPECT_TRUE(k.WaitForRegistration(resource, registrations, kWait))
        << resource << " did not register";
    auto client = k.Connect(resource);
    if (client == nullptr) return nullptr;
    client->StartWatching();
    EXPECT_TRUE(client->WaitForDevices([](const auto& l) { return l.devices_size() > 0; }, kWait))
        << resource << ": no device list";
    return client;
  }
  NodeAdvertisement Expected(const std::string& config_yaml) {
    Result<NodeAdvertisement> adv =
        AdvertiseNode(gpus_, testing::ConfigOf(config_yaml), testing::DriverOf(node_yaml_));
    EXPECT_TRUE(adv.ok()) << adv.status().ToString();
    return adv.ok() ? *adv : NodeAdvertisement{};
  }
  void ExpectCleanExit() {
    ASSERT_NE(agent_, nullptr);
    EXPECT_EQ(agent_->Terminate(10s), 0);
    for (const auto& entry : std::filesystem::directory_iterator(plugin_dir())) {
      EXPECT_EQ(entry.path().filename(), "kubelet.sock") << "left behind: " << entry.path();
    }
  }

  TempDir dir_;
  std::unique_ptr<TestKubelet> kubelet_;
  std::unique_ptr<AgentProcess> agent_;
  std::string node_yaml_;
  std::vector<GpuInfo> gpus_;
};

// One row per configuration of the issue: what is served must be exactly what AdvertiseNode
// says, and GetPreferredAllocation + Allocate must work on it.
struct ConfigurationCase {
  std::string name;
  std::string node;  // node YAML
  std::string config;
  std::map<std::string, int> resources;  // expected name -> device count
};

void PrintTo(const ConfigurationCase& c, std::ostream* os) { *os << c.name; }

class ConfigurationTest : public NodeAgentIntegrationTest,
                          public ::testing::WithParamInterface<ConfigurationCase> {};

TEST_P(ConfigurationTest, ServesAdvertisedResources) {
  const ConfigurationCase& c = GetParam();
  UseNode(c.node);
  WriteConfig(c.config);
  const NodeAdvertisement expected = Expected(c.config);
  std::map<std::string, int> names;
  for (const AdvertisedResource& r : expected.resources) {
    names[r.name] = static_cast<int>(r.devices.size());
  }
  ASSERT_EQ(names, c.resources);
  StartAgent();

  for (const AdvertisedResource& r : expected.resources) {
    SCOPED_TRACE(r.name);
    auto client = Watch(r.name);
    ASSERT_NE(client, nullptr);
    std::vector<std::string> want;
    for (const AdvertisedDevice& d : r.devices) want.push_back(d.id);
    const v1beta1::ListAndWatchResponse list = client->latest();
    EXPECT_EQ(Ids(list), want);
    for (int i = 0; i < list.devices_size(); ++i) {
      EXPECT_EQ(list.devices(i).health(), "Healthy");
      if (r.devices[static_cast<std::size_t>(i)].numa_node >= 0) {
        ASSERT_EQ(list.devices(i).topology().nodes_size(), 1);
        EXPECT_EQ(list.devices(i).topology().nodes(0).id(),
                  r.devices[static_cast<std::size_t>(i)].numa_node);
      }
    }

    const int size = std::min(2, static_cast<int>(want.size()));
    std::vector<std::string> preferred;
    ASSERT_TRUE(client->GetPreferredAllocation(want, {}, size, &preferred).ok());
    ASSERT_EQ(preferred.size(), static_cast<std::size_t>(size));
    std::set<std::string> physical;
    std::set<std::string> devices;
    for (const std::string& id : preferred) {
      auto d = std::find_if(r.devices.begin(), r.devices.end(),
                            [&](const AdvertisedDevice& a) { return a.id == id; });
      ASSERT_NE(d, r.devices.end()) << id;
      physical.insert(d->gpu_uuid);
      devices.insert(d->device_uuid);
    }
    std::set<std::string> all_physical;
    for (const AdvertisedDevice& d : r.devices) all_physical.insert(d.gpu_uuid);
    if (r.sharing == SharingStrategy::kMps) {
      EXPECT_EQ(devices.size(), 1u) << "MPS replicas must share one device";
    } else if (all_physical.size() >= static_cast<std::size_t>(size)) {
      EXPECT_EQ(physical.size(), static_cast<std::size_t>(size)) << "not spread over GPUs";
    }

    v1beta1::AllocateResponse response;
    grpc::Status s = client->Allocate({preferred}, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(response.container_responses_size(), 1);
    std::vector<std::string> visible;
    for (const std::string& id : preferred) {
      const std::string uuid = StripReplicaSuffix(id);
      if (std::find(visible.begin(), visible.end(), uuid) == visible.end()) {
        visible.push_back(uuid);
      }
    }
    std::string joined;
    for (const std::string& v : visible) joined += (joined.empty() ? "" : ",") + v;
    EXPECT_EQ(response.container_responses(0).envs().at("NVIDIA_VISIBLE_DEVICES"), joined);
    if (r.sharing == SharingStrategy::kMps) {
      const auto& envs = response.container_responses(0).envs();
      EXPECT_EQ(envs.at("CUDA_MPS_PIPE_DIRECTORY"), "/tmp/nvidia-mps");
      EXPECT_EQ(envs.at("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "100");  // 2 of 2 replicas
    }
  }
  // Labels: exactly AdvertiseNode's, as an NFD feature file, plus GFD's timestamp (the agent's
  // start, in seconds).
  ASSERT_TRUE(agent_->WaitForLog("labels to", kWait));
  std::string features = ReadFileOrEmpty(dir_ / "features.d/gpuslice");
  const std::size_t ts = features.find("nvidia.com/gfd.timestamp=");
  ASSERT_NE(ts, std::string::npos) << features;
  const std::size_t ts_end = features.find('\n', ts);
  EXPECT_EQ(ts_end - ts, std::string("nvidia.com/gfd.timestamp=").size() + 10) << features;
  features.erase(ts, ts_end + 1 - ts);
  // Plus the isolation tier's labels (docs/isolation.md): these nodes have a pre-r615 driver.
  std::map<std::string, std::string> labels = expected.labels;
  labels["gpuslice.io/memory-isolation"] = "shim";
  labels["gpuslice.io/mps"] = "none";
  for (const auto& r : expected.resources) {
    if (r.sharing == SharingStrategy::kMps) labels["gpuslice.io/mps"] = "v2";
  }
  EXPECT_EQ(features, FeatureFileWriter::Render(labels));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "cdi/gpuslice-nvidia-gpu.json"));
  ExpectCleanExit();
}

constexpr char kTimeSlicing4[] = R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";

INSTANTIATE_TEST_SUITE_P(
    Configurations, ConfigurationTest,
    ::testing::Values(
        ConfigurationCase{
            "WholeGpus", testing::kFourA100, "version: v1\n", {{"nvidia.com/gpu", 4}}},
        ConfigurationCase{
            "TimeSlicing", testing::kFourA100, kTimeSlicing4, {{"nvidia.com/gpu", 16}}},
        ConfigurationCase{"TimeSlicingRenamed",
                          testing::kFourA100,
                          R"(version: v1
sharing:
  timeSlicing:
    renameByDefault: true
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)",
                          {{"nvidia.com/gpu.shared", 16}}},
        ConfigurationCase{"PerGpuReplicas",
                          testing::kFourA100,
                          R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        devices: ["0", "1"]
        replicas: 2
      - name: nvidia.com/gpu
        devices: ["2", "3"]
        replicas: 3
)",
                          {{"nvidia.com/gpu", 10}}},
        ConfigurationCase{"FractionalSlots",
                          testing::kFourA100,
                          R"(version: v1
gpuslice:
  fractional:
    enabled: true
    devices: ["2", "3"]
    slotsPerGpu: 8
)",
                          {{"gpuslice.io/gpu", 16}, {"nvidia.com/gpu", 2}}},
        ConfigurationCase{"Mps",
                          testing::kFourA100,
                          R"(version: v1
sharing:
  mps:
    failRequestsGreaterThanOne: false
    resources:
      - name: nvidia.com/gpu
        replicas: 2
)",
                          {{"nvidia.com/gpu", 8}}},
        ConfigurationCase{"MigSingle",
                          FixtureNode("a30-4x.yaml"),
                          "version: v1\nflags:\n  migStrategy: single\n",
                          {{"nvidia.com/gpu", 16}}},
        ConfigurationCase{"MigMixed",
                          testing::kA100WithMig,
                          "version: v1\nflags:\n  migStrategy: mixed\n",
                          {{"nvidia.com/gpu", 2},
                           {"nvidia.com/mig-1g.5gb", 2},
                           {"nvidia.com/mig-2g.10gb", 1},
                           {"nvidia.com/mig-3g.20gb", 1}}},
        ConfigurationCase{"MigPlusTimeSlicing",
                          testing::kA100WithMig,
                          R"(version: v1
flags:
  migStrategy: mixed
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/mig-1g.5gb
        replicas: 4
)",
                          {{"nvidia.com/gpu", 2},
                           {"nvidia.com/mig-1g.5gb", 8},
                           {"nvidia.com/mig-2g.10gb", 1},
                           {"nvidia.com/mig-3g.20gb", 1}}}),
    [](const ::testing::TestParamInfo<ConfigurationCase>& param_info) {
      return param_info.param.name;
    });

TEST_F(NodeAgentIntegrationTest, HealthEventsMarkGpuReplicasUnhealthyAndRecover) {
  UseNode(testing::kFourA100);
  WriteConfig(kTimeSlicing4);
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  const std::string bad = gpus_[1].uuid;
  auto unhealthy_are_gpu1 = [&](const v1beta1::ListAndWatchResponse& l) {
    for (const auto& [id, health] : HealthById(l)) {
      if ((health == "Unhealthy") != (StripReplicaSuffix(id) == bad)) return false;
    }
    return true;
  };
  auto all_healthy = [](const v1beta1::ListAndWatchResponse& l) {
    for (const auto& [id, health] : HealthById(l)) {
      if (health != "Healthy") return false;
    }
    return true;
  };
  AppendEvent("xid 1 79");
  ASSERT_TRUE(client->WaitForDevices(unhealthy_are_gpu1, kWait));
  AppendEvent("recover 1");
  ASSERT_TRUE(client->WaitForDevices(all_healthy, kWait));
  // An application Xid changes nothing; the next real change proves it was processed first.
  const int seen = client->updates();
  AppendEvent("xid 2 13");
  ASSERT_TRUE(agent_->WaitForLog("Xid 13 on " + gpus_[2].uuid, kWait));
  AppendEvent("xid 1 48");
  ASSERT_TRUE(client->WaitForDevices(unhealthy_are_gpu1, kWait));
  EXPECT_EQ(client->updates(), seen + 1);
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, HealthEventOnMigDeviceAffectsOnlyThatDevice) {
  UseNode(testing::kA100WithMig);
  WriteConfig(R"(version: v1
flags:
  migStrategy: mixed
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/mig-1g.5gb
        replicas: 2
)");
  StartAgent();
  auto small = Watch("nvidia.com/mig-1g.5gb");
  auto large = Watch("nvidia.com/mig-3g.20gb");
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  const std::string bad = gpus_[2].mig_devices[2].uuid;  // GPU 2, MIG device 2: a 1g.5gb
  AppendEvent("xid 2:2 48");
  ASSERT_TRUE(small->WaitForDevices(
      [&](const auto& l) {
        for (const auto& [id, health] : HealthById(l)) {
          if ((health == "Unhealthy") != (StripReplicaSuffix(id) == bad)) return false;
        }
        return true;
      },
      kWait));
  EXPECT_EQ(HealthById(large->latest()).begin()->second, "Healthy");
  // An Xid on the GPU takes down every MIG device on it.
  AppendEvent("xid 2 79");
  ASSERT_TRUE(large->WaitForDevices(
      [](const auto& l) { return HealthById(l).begin()->second == "Unhealthy"; }, kWait));
  AppendEvent("recover 2");
  AppendEvent("recover 2:2");
  ASSERT_TRUE(small->WaitForDevices(
      [](const auto& l) {
        for (const auto& [id, health] : HealthById(l)) {
          if (health != "Healthy") return false;
        }
        return true;
      },
      kWait));
  ASSERT_TRUE(large->WaitForDevices(
      [](const auto& l) { return HealthById(l).begin()->second == "Healthy"; }, kWait));
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, ReRegistersWhenKubeletSocketIsRecreated) {
  UseNode(testing::kFourA100);
  WriteConfig("version: v1\n");
  StartAgent();
  ASSERT_NE(Watch("nvidia.com/gpu"), nullptr);
  kubelet_->Stop();  // removes kubelet.sock, as a stopping kubelet does
  ASSERT_TRUE(agent_->WaitForLog("is gone", kWait));
  auto restarted = std::make_unique<TestKubelet>(plugin_dir());
  ASSERT_TRUE(restarted->Start());
  auto client = Watch("nvidia.com/gpu", 1, restarted.get());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->latest().devices_size(), 4);
  kubelet_ = std::move(restarted);
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, ConfigRewriteUpdatesDevicesAndBrokenConfigKeepsThem) {
  UseNode(testing::kFourA100);
  WriteConfig("version: v1\n");
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->latest().devices_size(), 4);

  // Same resource, new device list: the running server streams it.
  WriteConfig(kTimeSlicing4);
  ASSERT_TRUE(client->WaitForDevices([](const auto& l) { return l.devices_size() == 16; }, kWait));
  EXPECT_EQ(kubelet_->registrations().size(), 1u);  // nothing restarted

  // A broken config is refused and logged; the old list stays.
  WriteConfig(R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: two
)");
  ASSERT_TRUE(agent_->WaitForLog("rejected, keeping the previous one", kWait));
  EXPECT_THAT(agent_->Log(), HasSubstr("replicas"));
  EXPECT_EQ(client->latest().devices_size(), 16);

  // A config that renames the resource: the new one registers, the old socket goes away.
  WriteConfig(R"(version: v1
sharing:
  timeSlicing:
    renameByDefault: true
    resources:
      - name: nvidia.com/gpu
        replicas: 2
)");
  auto shared = Watch("nvidia.com/gpu.shared");
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->latest().devices_size(), 8);
  const std::string old_socket = plugin_dir() + "/gpuslice-nvidia.com_gpu.sock";
  EXPECT_TRUE(WaitForPath(old_socket, /*exists=*/false)) << old_socket;

  // SIGHUP reloads even when the file did not change.
  agent_->Signal(SIGHUP);
  ASSERT_TRUE(agent_->WaitForLog("(SIGHUP)", kWait));
  ExpectCleanExit();
}

// The GPU Operator's flow through the binary: named configs in a directory (CONFIG_FILE_SRCDIR),
// a default name (DEFAULT_CONFIG), and the node label from a watched file.
TEST_F(NodeAgentIntegrationTest, NamedConfigsFollowTheNodeLabel) {
  UseNode(testing::kFourA100);
  std::filesystem::create_directories(dir_ / "configs");
  auto replicas = [](int n) {
    return "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
           "      - name: nvidia.com/gpu\n        replicas: " +
           std::to_string(n) + "\n";
  };
  ASSERT_TRUE(WriteFileAtomically(dir_ / "configs/ts2", replicas(2)).ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ / "configs/ts4", replicas(4)).ok());
  const std::string labels = dir_ / "node-labels";
  setenv("CONFIG_FILE_SRCDIR", (dir_ / "configs").c_str(), 1);
  setenv("DEFAULT_CONFIG", "ts2", 1);
  agent_ = std::make_unique<AgentProcess>(
      std::vector<std::string>{GPUSLICE_NODE_AGENT, "--backend", "sim:" + (dir_ / "node.yaml"),
                               "--node-labels-file", labels, "--device-plugin-dir", plugin_dir(),
                               "--features-file", dir_ / "features.d/gpuslice", "--cdi-dir",
                               dir_ / "cdi", "--mps-root", dir_ / "mps", "--mig-minors-file",
                               dir_ / "no-mig-minors"},
      dir_ / "agent.log");
  unsetenv("CONFIG_FILE_SRCDIR");
  unsetenv("DEFAULT_CONFIG");
  ASSERT_TRUE(agent_->started());
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->latest().devices_size(), 8);  // no label: the default, ts2

  ASSERT_TRUE(WriteFileAtomically(labels, "nvidia.com/device-plugin.config=ts4\n").ok());
  ASSERT_TRUE(client->WaitForDevices([](const auto& l) { return l.devices_size() == 16; }, kWait));
  ASSERT_TRUE(agent_->WaitForLog("chosen by label nvidia.com/device-plugin.config=ts4", kWait));

  ASSERT_TRUE(WriteFileAtomically(dir_ / "configs/broken", replicas(1)).ok());
  ASSERT_TRUE(WriteFileAtomically(labels, "nvidia.com/device-plugin.config=broken\n").ok());
  ASSERT_TRUE(agent_->WaitForLog(
      "new config \"broken\" rejected, keeping the previous one (\"ts4\")", kWait))
      << agent_->Log();
  EXPECT_EQ(client->latest().devices_size(), 16);
  ExpectCleanExit();
}

// cmd/gpu-feature-discovery/main_test.go TestFailOnNVMLInitError: a backend that cannot start
// stops the agent unless flags.failOnInitError is false, when it runs with no GPUs.
struct InitErrorCase {
  const char* nvidia_case;
  bool error_on_init;
  bool fail_on_init_error;
  const char* mig_strategy;
  bool expect_error;
};

void PrintTo(const InitErrorCase& c, std::ostream* os) { *os << c.nvidia_case; }

class FailOnInitErrorTest : public NodeAgentIntegrationTest,
                            public ::testing::WithParamInterface<InitErrorCase> {};

TEST_P(FailOnInitErrorTest, StartsOrStopsAsNvidiaDoes) {
  const InitErrorCase& c = GetParam();
  UseNode(testing::kFourA100);
  WriteConfig(std::string("version: v1\nflags:\n  migStrategy: ") + c.mig_strategy +
              "\n  failOnInitError: " + (c.fail_on_init_error ? "true" : "false") + "\n");
  const std::string backend =
      c.error_on_init ? "sim:" + (dir_ / "no-such-node.yaml") : "sim:" + (dir_ / "node.yaml");
  agent_ = std::make_unique<AgentProcess>(
      std::vector<std::string>{GPUSLICE_NODE_AGENT, "--backend", backend, "--config", config_path(),
                               "--device-plugin-dir", plugin_dir(), "--features-file",
                               dir_ / "features.d/gpuslice", "--cdi-dir", dir_ / "cdi",
                               "--mps-root", dir_ / "mps", "--mig-minors-file",
                               dir_ / "no-mig-minors"},
      dir_ / "agent.log");
  ASSERT_TRUE(agent_->started());
  if (c.expect_error) {
    EXPECT_EQ(agent_->Wait(10s), 1) << c.nvidia_case << "\n" << agent_->Log();
    return;
  }
  ASSERT_TRUE(
      agent_->WaitForLog(c.error_on_init ? "no devices to advertise" : "advertising", kWait))
      << c.nvidia_case << "\n"
      << agent_->Log();
  if (c.error_on_init) {
    EXPECT_THAT(agent_->Log(), HasSubstr("flags.failOnInitError is false: running with no GPUs"));
    ASSERT_TRUE(agent_->WaitForLog("labels to", kWait));
    EXPECT_THAT(ReadFileOrEmpty(dir_ / "features.d/gpuslice"),
                HasSubstr("nvidia.com/vgpu.present=false"));
  }
  ExpectCleanExit();
}

INSTANTIATE_TEST_SUITE_P(
    Compat, FailOnInitErrorTest,
    ::testing::Values(
        InitErrorCase{"errorOnInit = true, failOnInitError = true, no other errors", true, true,
                      "none", true},
        InitErrorCase{"errorOnInit = true, failOnInitError = true, some other error", true, true,
                      "bogus", true},
        // DEVIATION (docs/migrating-from-nvidia.md): NVIDIA gives up before it looks at
        // migStrategy and runs; gpuslice refuses a config that does not load, whatever else.
        InitErrorCase{"errorOnInit = true, failOnInitError = false, no other errors [deviation: "
                      "bogus migStrategy refused]",
                      true, false, "bogus", true},
        InitErrorCase{"errorOnInit = true, failOnInitError = false, some other error [deviation: "
                      "bogus migStrategy refused]",
                      true, false, "bogus", true},
        InitErrorCase{"errorOnInit = true, failOnInitError = false [with a valid migStrategy]",
                      true, false, "none", false},
        InitErrorCase{"errorOnInit = false, failOnInitError = true, no other errors", false, true,
                      "none", false},
        InitErrorCase{"errorOnInit = false, failOnInitError = true, some other error", false, true,
                      "bogus", true},
        InitErrorCase{"errorOnInit = false, failOnInitError = false, no other errors", false, false,
                      "none", false},
        InitErrorCase{"errorOnInit = false, failOnInitError = false, some other error", false,
                      false, "bogus", true}));

TEST_F(NodeAgentIntegrationTest, FiftyConcurrentAllocateCalls) {
  UseNode(testing::kFourA100);
  WriteConfig(R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 13
)");
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> ids = Ids(client->latest());
  ASSERT_EQ(ids.size(), 52u);
  // Like the kubelet, hand each pod distinct devices; every answer must name exactly its own GPU.
  std::vector<std::future<std::string>> results;
  for (std::size_t i = 0; i < 50; ++i) {
    results.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      v1beta1::AllocateResponse response;
      grpc::Status s = client->Allocate({{ids[i]}}, &response);
      if (!s.ok()) return "error: " + s.error_message();
      return response.container_responses(0).envs().at("NVIDIA_VISIBLE_DEVICES");
    }));
  }
  std::map<std::string, int> per_gpu;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string got = results[i].get();
    EXPECT_EQ(got, StripReplicaSuffix(ids[i])) << "call " << i;
    ++per_gpu[got];
  }
  EXPECT_EQ(per_gpu.size(), 4u);
  for (const auto& [gpu, n] : per_gpu) EXPECT_LE(n, 13) << gpu;
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, DeviceListStrategiesAndDeviceSpecs) {
  UseNode(testing::kFourA100);
  WriteConfig(R"(version: v1
flags:
  plugin:
    passDeviceSpecs: true
    deviceListStrategy: [volume-mounts, cdi-annotations, cdi-cri]
    deviceIDStrategy: index
)");
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  v1beta1::AllocateResponse response;
  ASSERT_TRUE(client->Allocate({{gpus_[3].uuid}}, &response).ok());
  const auto& r = response.container_responses(0);
  EXPECT_EQ(r.envs().at("NVIDIA_VISIBLE_DEVICES"), "/var/run/nvidia-container-devices");
  ASSERT_EQ(r.mounts_size(), 1);
  EXPECT_EQ(r.mounts(0).container_path(), "/var/run/nvidia-container-devices/3");
  EXPECT_EQ(r.annotations().at("cdi.k8s.io/gpuslice-node-agent_nvidia.com_gpu"),
            "nvidia.com/gpu=3");
  ASSERT_EQ(r.cdi_devices_size(), 1);
  EXPECT_EQ(r.cdi_devices(0).name(), "nvidia.com/gpu=3");
  std::set<std::string> nodes;
  for (const auto& d : r.devices()) nodes.insert(d.host_path());
  EXPECT_TRUE(nodes.count("/dev/nvidiactl"));
  EXPECT_TRUE(nodes.count("/dev/nvidia" + std::to_string(gpus_[3].minor_number)));
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, FailRequestsGreaterThanOneIsAClearError) {
  UseNode(testing::kFourA100);
  WriteConfig(R"(version: v1
sharing:
  timeSlicing:
    failRequestsGreaterThanOne: true
    resources:
      - name: nvidia.com/gpu
        replicas: 2
)");
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> ids = Ids(client->latest());
  v1beta1::AllocateResponse response;
  grpc::Status s = client->Allocate({{ids[0], ids[2]}}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("too large: maximum request size for shared resources is 1"));
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, MpsDaemonsRunPerGpuAndStopWithTheAgent) {
  UseNode(testing::kFourA100);
  WriteConfig(R"(version: v1
sharing:
  mps:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)");
  StartAgent();
  auto client = Watch("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  for (const GpuInfo& gpu : gpus_) {
    const std::string control = dir_ / ("mps/" + gpu.uuid + "/pipe/control");
    EXPECT_TRUE(WaitForPath(control, /*exists=*/true)) << control;
  }
  v1beta1::AllocateResponse response;
  ASSERT_TRUE(client->Allocate({{gpus_[0].uuid + "::0"}}, &response).ok());
  EXPECT_EQ(response.container_responses(0).envs().at("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25");
  EXPECT_EQ(response.container_responses(0).mounts(0).host_path(),
            dir_ / ("mps/" + gpus_[0].uuid + "/pipe"));
  ExpectCleanExit();
  for (const GpuInfo& gpu : gpus_) {
    EXPECT_FALSE(std::filesystem::exists(dir_ / ("mps/" + gpu.uuid + "/pipe/control")));
  }
}

TEST_F(NodeAgentIntegrationTest, NoDevicesMeansNoServerAndALogLine) {
  UseNode(testing::kFourA100);
  WriteConfig(R"(version: v1
resources:
  gpus:
    - pattern: "*H100*"
      name: gpu
)");
  StartAgent();
  ASSERT_TRUE(agent_->WaitForLog("no devices to advertise", kWait));
  EXPECT_TRUE(kubelet_->registrations().empty());
  ExpectCleanExit();
}

TEST_F(NodeAgentIntegrationTest, BrokenConfigAtStartIsAnError) {
  UseNode(testing::kFourA100);
  WriteConfig("version: v2\n");
  StartAgent();
  EXPECT_EQ(agent_->Wait(kWait), 1);
  EXPECT_THAT(agent_->Log(), HasSubstr("cannot start"));
}

}  // namespace
}  // namespace gpuslice
