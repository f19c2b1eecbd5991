// The GPU Operator's per-node configuration flow: named configurations in one directory (a
// ConfigMap volume), the node label nvidia.com/device-plugin.config choosing one, switched live.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "backends/simulated_backend.h"
#include "core/clock.h"
#include "node_agent/atomic_file.h"
#include "node_agent/config_source.h"
#include "node_agent/node_agent.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_nodes.h"

namespace gpuslice::testing {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);  // atomically, as a ConfigMap update
}

// Label files as the file source reads them.
std::string LabelLine(const std::string& value) {
  return "kubernetes.io/hostname=node-1\nnvidia.com/device-plugin.config=" + value + "\n";
}

class NamedConfigSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "configs");
    // What a ConfigMap volume holds besides its keys.
    std::filesystem::create_directories(dir_ / "configs/..2026_12_01_data");
    WriteFile(dir_ / "configs/..data", "");
  }
  NamedConfigSource Source(NamedConfigOptions options) {
    options.directory = dir_ / "configs";
    return NamedConfigSource(options, std::make_unique<FileNodeLabelSource>(dir_ / "labels"));
  }
  TempDir dir_;
};

TEST_F(NamedConfigSourceTest, LabelPicksTheNamedConfig) {
  WriteFile(dir_ / "configs/a100", "version: v1\n");
  WriteFile(dir_ / "configs/t4", "version: v1\n# t4\n");
  WriteFile(dir_ / "labels", LabelLine("t4"));
  NamedConfigSource source = Source({});
  EXPECT_EQ(*source.Names(), (std::vector<std::string>{"a100", "t4"}));
  Result<ConfigSnapshot> s = source.Read();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "t4");
  EXPECT_EQ(s->text, "version: v1\n# t4\n");
  EXPECT_EQ(s->selected_by, "label nvidia.com/device-plugin.config=t4");
}

TEST_F(NamedConfigSourceTest, UnknownLabelValueIsAnErrorNamingTheChoices) {
  WriteFile(dir_ / "configs/a100", "version: v1\n");
  WriteFile(dir_ / "labels", LabelLine("h100"));
  Result<ConfigSnapshot> s = Source({}).Read();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("nvidia.com/device-plugin.config=h100 names no "
                                      "configuration"),
            std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("available: a100"), std::string::npos);
}

TEST_F(NamedConfigSourceTest, DefaultNameThenFallbacksAsConfigManager) {
  WriteFile(dir_ / "configs/a100", "version: v1\n");
  WriteFile(dir_ / "configs/default", "version: v1\n");
  // No label file at all: the node has no such label.
  NamedConfigOptions with_default;
  with_default.default_name = "a100";
  EXPECT_EQ(Source(with_default).Read()->name, "a100");
  EXPECT_EQ(Source({}).Read()->name, "default");  // fallback "named"

  std::filesystem::remove(dir_ / "configs/default");
  NamedConfigOptions single;
  single.fallbacks = {ConfigFallback::kSingle};
  EXPECT_EQ(Source(single).Read()->name, "a100");  // fallback "single"

  WriteFile(dir_ / "configs/t4", "version: v1\n");
  EXPECT_FALSE(Source(single).Read().ok());  // two configs: "single" does not apply
  NamedConfigOptions empty;
  empty.fallbacks = {ConfigFallback::kNamed, ConfigFallback::kEmpty};
  Result<ConfigSnapshot> s = Source(empty).Read();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->path, "");  // the built-in default configuration
  NamedConfigOptions missing_default;
  missing_default.default_name = "h100";
  EXPECT_FALSE(Source(missing_default).Read().ok());
}

// fixtures/named-configs is the example ConfigMap of docs/node-agent.md: every name loads.
TEST(NamedConfigFixtures, EveryNamedConfigLoads) {
  NamedConfigOptions options;
  options.directory = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/named-configs";
  NamedConfigSource source(options, std::make_unique<FileNodeLabelSource>(""));
  Result<std::vector<std::string>> names = source.Names();
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  EXPECT_EQ(*names, (std::vector<std::string>{"a100-40gb", "default", "tesla-t4"}));
  for (const std::string& name : *names) {
    Result<SharingConfig> config = LoadSharingConfigFile(options.directory + "/" + name);
    EXPECT_TRUE(config.ok()) << name << ": " << config.status().ToString();
  }
  Result<ConfigSnapshot> chosen = source.Read();  // no label: the "default" fallback
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(chosen->name, "default");
}

TEST(ConfigFallbacks, ParsesConfigManagersNames) {
  EXPECT_EQ(*ParseConfigFallbacks("named, single,empty"),
            (std::vector<ConfigFallback>{ConfigFallback::kNamed, ConfigFallback::kSingle,
                                         ConfigFallback::kEmpty}));
  EXPECT_FALSE(ParseConfigFallbacks("named,first").ok());
}

class NullMpsControl final : public MpsControl {
 public:
  Status Start(const MpsDaemonSpec&) override { return Status::Ok(); }
  Status Stop(const std::string&) override { return Status::Ok(); }
  bool IsRunning(const std::string&) override { return true; }
};

// A node agent with named configs, its label from a file, and a test kubelet.
class NamedConfigAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "configs");
    WriteFile(dir_ / "configs/ts2", Replicas(2));
    WriteFile(dir_ / "configs/ts4", Replicas(4));
    WriteFile(dir_ / "labels", LabelLine("ts2"));
    Result<SimulatedNode> node = ParseSimulatedNode(kFourA100, "four-a100");
    ASSERT_TRUE(node.ok());
    backend_ = std::make_unique<SimulatedBackend>(*node, "four-a100", clock_);
    NodeAgentOptions options;
    options.named.directory = dir_ / "configs";
    options.node_labels_file = dir_ / "labels";
    options.device_plugin_dir = dir_.path();
    options.features_file = dir_ / "features";
    options.cdi_dir = dir_ / "cdi";
    options.mps_root = dir_ / "mps";
    options.mig_minors_file = dir_ / "no-mig-minors";
    options.poll_interval = std::chrono::milliseconds(5);
    ASSERT_TRUE(kubelet_.Start());
    agent_ = std::make_unique<NodeAgent>(options, *backend_, mps_);
    ASSERT_TRUE(agent_->Start().ok());
    for (int i = 0; i < 400 && !kubelet_.WaitForRegistration("nvidia.com/gpu", 1,
                                                             std::chrono::milliseconds(5));
         ++i) {
      agent_->RunOnce();
    }
    client_ = kubelet_.Connect("nvidia.com/gpu");
    ASSERT_NE(client_, nullptr);
    client_->StartWatching();
  }
  void TearDown() override {
    if (client_) client_->StopWatching();
    if (agent_) agent_->Stop();
    kubelet_.Stop();
  }

  static std::string Replicas(int n) {
    return "version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n"
           "        replicas: " +
           std::to_string(n) + "\n";
  }
  // Runs the agent's loop until the kubelet sees `devices` devices (false after ~2 s).
  bool KubeletSees(int devices) {
    for (int i = 0; i < 400; ++i) {
      agent_->RunOnce();
      if (client_->latest().devices_size() == devices) return true;
    }
    return false;
  }
  std::string FeatureFile() const { return ReadFileOrEmpty(dir_ / "features"); }

  TempDir dir_;
  SteadyClock clock_;
  NullMpsControl mps_;
  TestKubelet kubelet_{dir_.path()};
  std::unique_ptr<SimulatedBackend> backend_;
  std::unique_ptr<NodeAgent> agent_;
  std::unique_ptr<PluginClient> client_;
};

TEST_F(NamedConfigAgentTest, LabelChangeSwitchesResourcesAndLabelsLive) {
  ASSERT_TRUE(KubeletSees(8));  // 4 GPUs x 2
  EXPECT_EQ(agent_->applied_config().name, "ts2");
  EXPECT_NE(FeatureFile().find("nvidia.com/gpu.replicas=2"), std::string::npos) << FeatureFile();

  WriteFile(dir_ / "labels", LabelLine("ts4"));
  ASSERT_TRUE(KubeletSees(16)) << client_->latest().devices_size();
  EXPECT_EQ(agent_->applied_config().name, "ts4");
  EXPECT_NE(FeatureFile().find("nvidia.com/gpu.replicas=4"), std::string::npos) << FeatureFile();

  WriteFile(dir_ / "labels", LabelLine("ts2"));
  ASSERT_TRUE(KubeletSees(8));
  EXPECT_NE(FeatureFile().find("nvidia.com/gpu.replicas=2"), std::string::npos);
}

// cmd/gpu-feature-discovery/main_test.go TestRunSleep ("Timestamp label changed"): GFD's
// timestamp is taken once; relabelling after a config switch keeps it.
TEST_F(NamedConfigAgentTest, TimestampLabelStaysAcrossSwitches) {
  ASSERT_TRUE(KubeletSees(8));
  auto timestamp = [this] {
    const std::string text = FeatureFile();
    const std::size_t at = text.find("nvidia.com/gfd.timestamp=");
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  const std::string before = timestamp();
  ASSERT_EQ(before.size(), std::string("nvidia.com/gfd.timestamp=").size() + 10) << before;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the clock's next second
  WriteFile(dir_ / "labels", LabelLine("ts4"));
  ASSERT_TRUE(KubeletSees(16));
  EXPECT_NE(FeatureFile().find("nvidia.com/gpu.replicas=4"), std::string::npos);
  EXPECT_EQ(timestamp(), before);
}

TEST_F(NamedConfigAgentTest, BrokenOrMissingNamedConfigKeepsTheOldOne) {
  ASSERT_TRUE(KubeletSees(8));
  WriteFile(dir_ / "configs/broken", Replicas(1));  // replicas must be >= 2
  WriteFile(dir_ / "labels", LabelLine("broken"));
  for (int i = 0; i < 50; ++i) agent_->RunOnce();
  EXPECT_EQ(agent_->applied_config().name, "ts2");
  EXPECT_EQ(client_->latest().devices_size(), 8);
  EXPECT_NE(FeatureFile().find("nvidia.com/gpu.replicas=2"), std::string::npos);

  WriteFile(dir_ / "labels", LabelLine("no-such-config"));
  for (int i = 0; i < 50; ++i) agent_->RunOnce();
  EXPECT_EQ(agent_->applied_config().name, "ts2");
  EXPECT_EQ(client_->latest().devices_size(), 8);

  // Fixing the broken config while the label points at it applies it.
  WriteFile(dir_ / "labels", LabelLine("broken"));
  WriteFile(dir_ / "configs/broken", Replicas(4));
  ASSERT_TRUE(KubeletSees(16));
  EXPECT_EQ(agent_->applied_config().name, "broken");
}

TEST_F(NamedConfigAgentTest, EditingTheSelectedConfigReloadsIt) {
  ASSERT_TRUE(KubeletSees(8));
  WriteFile(dir_ / "configs/ts2", Replicas(3));  // the ConfigMap changed under the same name
  ASSERT_TRUE(KubeletSees(12));
}

}  // namespace
}  // namespace gpuslice::testing
