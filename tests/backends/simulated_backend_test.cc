#include "backends/simulated_backend.h"

#include <gtest/gtest.h>

#include <ostream>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "backends/nvml_backend.h"

namespace gpuslice {
namespace {

const std::string kFixtures = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/";

SimulatedNode MustParse(const std::string& yaml) {
  Result<SimulatedNode> node = ParseSimulatedNode(yaml, "test.yaml");
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? *node : SimulatedNode{};
}

TEST(SimulatedNodeTest, ExpandsCountsWithDeterministicIdentity) {
  const std::string yaml = R"(
node: {name: n1, numaNodes: 2}
gpus:
  - model: H100-80GB
    count: 4
)";
  SimulatedNode a = MustParse(yaml);
  SimulatedNode b = MustParse(yaml);
  ASSERT_EQ(a.gpus.size(), 4u);
  std::set<std::string> uuids;
  for (std::size_t i = 0; i < a.gpus.size(); ++i) {
    EXPECT_EQ(a.gpus[i].index, static_cast<int>(i));
    EXPECT_EQ(a.gpus[i].uuid, b.gpus[i].uuid) << "UUIDs must not be random";
    EXPECT_EQ(a.gpus[i].uuid.rfind("GPU-", 0), 0u);
    EXPECT_EQ(a.gpus[i].uuid.size(), 40u);  // GPU- + 36
    uuids.insert(a.gpus[i].uuid);
    EXPECT_EQ(a.gpus[i].product_name, "NVIDIA H100 80GB HBM3");
    EXPECT_TRUE(a.gpus[i].mig_capable);
    EXPECT_FALSE(a.gpus[i].mig_enabled);
  }
  EXPECT_EQ(uuids.size(), 4u);
  // Spread evenly over two NUMA nodes.
  EXPECT_EQ(a.gpus[0].numa_node, 0);
  EXPECT_EQ(a.gpus[1].numa_node, 0);
  EXPECT_EQ(a.gpus[2].numa_node, 1);
  EXPECT_EQ(a.gpus[3].numa_node, 1);
  // Another node name gives other UUIDs.
  SimulatedNode c = MustParse("node: {name: n2}\ngpus: [{model: H100-80GB}]");
  EXPECT_NE(c.gpus[0].uuid, a.gpus[0].uuid);
}

TEST(SimulatedNodeTest, PlacesMigDevicesWithThePlanner) {
  SimulatedNode node = MustParse(R"(
gpus:
  - model: A100-SXM4-40GB
    mig:
      enabled: true
      devices:
        - profile: 1g.5gb
        - profile: 3g.20gb
        - profile: 2g.10gb
          healthy: false
)");
  ASSERT_EQ(node.gpus.size(), 1u);
  const GpuInfo& gpu = node.gpus[0];
  EXPECT_TRUE(gpu.mig_enabled);
  ASSERT_EQ(gpu.mig_devices.size(), 3u);
  std::set<int> used;
  for (const MigDeviceInfo& m : gpu.mig_devices) {
    for (int s = m.start_slot; s < m.start_slot + m.size_slots; ++s) {
      EXPECT_TRUE(used.insert(s).second) << "slot " << s << " used twice";
    }
    EXPECT_EQ(m.uuid.rfind("MIG-", 0), 0u);
    EXPECT_GT(m.memory_bytes, 0u);
  }
  // Sorted by start slot; the 2g device keeps its unhealthy flag.
  for (std::size_t i = 1; i < gpu.mig_devices.size(); ++i) {
    EXPECT_LT(gpu.mig_devices[i - 1].start_slot, gpu.mig_devices[i].start_slot);
  }
  int unhealthy = 0;
  for (const MigDeviceInfo& m : gpu.mig_devices) {
    if (!m.healthy) {
      ++unhealthy;
      EXPECT_EQ(m.profile_name, "2g.10gb");
    }
  }
  EXPECT_EQ(unhealthy, 1);
}

TEST(SimulatedNodeTest, HonoursPinnedMigStarts) {
  SimulatedNode node = MustParse(R"(
gpus:
  - model: A100-SXM4-40GB
    mig:
      enabled: true
      devices:
        - {profile: 3g.20gb, start: 4}
        - {profile: 3g.20gb}
)");
  ASSERT_EQ(node.gpus[0].mig_devices.size(), 2u);
  EXPECT_EQ(node.gpus[0].mig_devices[0].start_slot, 0);
  EXPECT_EQ(node.gpus[0].mig_devices[1].start_slot, 4);
}

struct BadNodeCase {
  std::string name;
  std::string yaml;
  std::string expected_message;  // substring
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const BadNodeCase& c, std::ostream* os) { *os << c.name; }
};

class BadNodeTest : public testing::TestWithParam<BadNodeCase> {};

TEST_P(BadNodeTest, IsRejectedWithAClearMessage) {
  Result<SimulatedNode> node = ParseSimulatedNode(GetParam().yaml, "bad.yaml");
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(node.status().message().find(GetParam().expected_message), std::string::npos)
      << "got: " << node.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadNodeTest,
    testing::Values(
        BadNodeCase{"SyntaxError", "gpus: [model: x", "bad.yaml:"},
        BadNodeCase{"NotAMap", "- 1\n- 2", "must be a YAML mapping"},
        BadNodeCase{"NoGpusKey", "node: {name: x}",
                    "gpus: must be a list of GPUs ([] for a node without GPUs)"},
        BadNodeCase{"GpusNotAList", "gpus: {model: T4}",
                    "gpus: must be a list of GPUs ([] for a node without GPUs)"},
        BadNodeCase{"UnknownMode", "gpus:\n  - model: T4\n    mode: display",
                    "bad.yaml:3: gpus[0].mode: unknown mode \"display\"; accepted: compute, "
                    "graphics"},
        BadNodeCase{"UnknownTopLevelField", "gpus: [{model: T4}]\ngpuz: 1",
                    "bad.yaml:2: gpuz: unknown field; accepted: node, gpus, healthEvents"},
        BadNodeCase{"UnknownGpuField", "gpus:\n  - model: T4\n    colour: red",
                    "bad.yaml:3: gpus[0].colour: unknown field"},
        BadNodeCase{"UnknownModel", "gpus: [{model: Z9000}]",
                    "gpus[0].model: unknown GPU model \"Z9000\"; accepted:"},
        BadNodeCase{"MissingModel", "gpus: [{count: 2}]", "gpus[0].model: missing"},
        BadNodeCase{"ZeroCount", "gpus: [{model: T4, count: 0}]",
                    "gpus[0].count: must be between 1 and 64, got 0"},
        BadNodeCase{"TextCount", "gpus: [{model: T4, count: many}]",
                    "gpus[0].count: must be an integer, got \"many\""},
        BadNodeCase{"UuidWithCount", "gpus: [{model: T4, count: 2, uuid: GPU-1}]",
                    "gpus[0].uuid: cannot be set when count > 1"},
        BadNodeCase{"DuplicateUuid", "gpus: [{model: T4, uuid: GPU-1}, {model: T4, uuid: GPU-1}]",
                    "duplicate GPU UUID GPU-1"},
        BadNodeCase{"MigOnNonMigGpu", "gpus: [{model: T4, mig: {enabled: true}}]",
                    "gpus[0].mig.enabled: Tesla T4 is not MIG capable"},
        BadNodeCase{"UnknownMigProfile",
                    "gpus: [{model: A100-SXM4-40GB, mig: {enabled: true, devices: [{profile: "
                    "9g.99gb}]}}]",
                    "unknown profile \"9g.99gb\""},
        BadNodeCase{"MigLayoutDoesNotFit",
                    "gpus: [{model: A100-SXM4-40GB, mig: {enabled: true, devices: [{profile: "
                    "4g.20gb}, {profile: 4g.20gb}]}}]",
                    "gpus[0].mig.devices:"},
        BadNodeCase{"PinnedStartInvalid",
                    "gpus: [{model: A100-SXM4-40GB, mig: {enabled: true, devices: [{profile: "
                    "3g.20gb, start: 2}]}}]",
                    "3g.20gb cannot start at slot 2"},
        BadNodeCase{"PinnedOverlap",
                    "gpus: [{model: A100-SXM4-40GB, mig: {enabled: true, devices: [{profile: "
                    "3g.20gb, start: 0}, {profile: 2g.10gb, start: 2}]}}]",
                    "overlaps 3g.20gb at slot 0"},
        BadNodeCase{"MigDevicesWithoutEnabled",
                    "gpus: [{model: A100-SXM4-40GB, mig: {devices: [{profile: 1g.5gb}]}}]",
                    "needs mig.enabled: true"},
        BadNodeCase{"HealthEventUnknownDevice",
                    "gpus: [{model: T4}]\nhealthEvents: [{device: \"5\", xid: 79}]",
                    "healthEvents[0].device: device \"5\" is not on this node"},
        BadNodeCase{"HealthEventNoXid", "gpus: [{model: T4}]\nhealthEvents: [{device: \"0\"}]",
                    "healthEvents[0].xid: missing"},
        BadNodeCase{"BadBool", "gpus: [{model: T4, healthy: maybe}]",
                    "gpus[0].healthy: must be true or false, got \"maybe\""}),
    [](const testing::TestParamInfo<BadNodeCase>& p) { return p.param.name; });

TEST(SimulatedNodeTest, EveryBundledFixtureLoads) {
  int loaded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtures)) {
    if (entry.path().extension() != ".yaml") continue;
    Result<SimulatedNode> node = LoadSimulatedNodeFile(entry.path().string());
    EXPECT_TRUE(node.ok()) << entry.path() << ": " << node.status().ToString();
    ++loaded;
  }
  EXPECT_GE(loaded, 5);
}

TEST(SimulatedNodeTest, MissingFileSaysSo) {
  Result<SimulatedNode> node = LoadSimulatedNodeFile("/nonexistent/node.yaml");
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(node.status().message().find("/nonexistent/node.yaml"), std::string::npos);
}

TEST(SimulatedBackendTest, ScheduledEventsFollowTheClock) {
  ManualClock clock;
  SimulatedNode node = MustParse(R"(
gpus: [{model: A100-SXM4-80GB, count: 2}]
healthEvents:
  - {device: "1", xid: 79, afterMs: 1000, clearAfterMs: 500}
)");
  const std::string gpu1 = node.gpus[1].uuid;
  SimulatedBackend backend(node, "test", clock);
  auto none = backend.WaitForHealthEvents(std::chrono::milliseconds(0));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  clock.Advance(std::chrono::milliseconds(1000));
  auto xid = backend.WaitForHealthEvents(std::chrono::milliseconds(0));
  ASSERT_TRUE(xid.ok());
  ASSERT_EQ(xid->size(), 1u);
  EXPECT_EQ((*xid)[0].kind, HealthEvent::Kind::kXid);
  EXPECT_EQ((*xid)[0].xid, 79u);
  EXPECT_EQ((*xid)[0].device_uuid, gpu1);

  clock.Advance(std::chrono::milliseconds(499));
  EXPECT_TRUE(backend.WaitForHealthEvents(std::chrono::milliseconds(0))->empty());
  clock.Advance(std::chrono::milliseconds(1));
  auto recovered = backend.WaitForHealthEvents(std::chrono::milliseconds(0));
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].kind, HealthEvent::Kind::kRecovered);
  EXPECT_EQ((*recovered)[0].device_uuid, gpu1);
}

TEST(SimulatedBackendTest, InjectedEventWakesAWaiter) {
  ManualClock clock;
  SimulatedBackend backend(MustParse("gpus: [{model: T4}]"), "test", clock);
  HealthEvent event;
  event.device_uuid = "GPU-x";
  event.xid = 48;
  std::thread injector([&] { backend.InjectHealthEvent(event); });
  auto got = backend.WaitForHealthEvents(std::chrono::seconds(30));
  injector.join();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].xid, 48u);
}

TEST(SimulatedBackendTest, EventsFileDeliversOnlyAppendedCompleteLines) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gpuslice-events-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string events = (dir / "events").string();
  { std::ofstream(events) << "xid 0 79\n"; }  // history: ignored
  ManualClock clock;
  SimulatedNode node = MustParse(
      "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true, devices: [{profile: "
      "1g.5gb}, {profile: 1g.5gb}]}\n  - model: A100-SXM4-40GB\neventsFile: " +
      events);
  SimulatedBackend backend(node, "test", clock);
  EXPECT_TRUE(backend.WaitForHealthEvents(std::chrono::milliseconds(0))->empty());
  {
    std::ofstream out(events, std::ios::app);
    out << "xid 0:1 31\n# a comment\nnonsense line\nrecover " << node.gpus[1].uuid << "\nxid 1";
  }
  auto got = backend.WaitForHealthEvents(std::chrono::milliseconds(0));
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].device_uuid, node.gpus[0].mig_devices[1].uuid);
  EXPECT_EQ((*got)[0].xid, 31u);
  EXPECT_EQ((*got)[1].kind, HealthEvent::Kind::kRecovered);
  EXPECT_EQ((*got)[1].device_uuid, node.gpus[1].uuid);
  { std::ofstream(events, std::ios::app) << " 94\n"; }  // completes "xid 1 94"
  auto more = backend.WaitForHealthEvents(std::chrono::milliseconds(0));
  ASSERT_EQ(more->size(), 1u);
  EXPECT_EQ((*more)[0].xid, 94u);
  std::filesystem::remove_all(dir);
}

TEST(HealthEventLineTest, RejectsMalformedLines) {
  SimulatedNode node = MustParse("gpus: [{model: T4}]");
  EXPECT_FALSE(ParseHealthEventLine("xid 0", node.gpus).ok());
  EXPECT_FALSE(ParseHealthEventLine("xid 0 zero", node.gpus).ok());
  EXPECT_FALSE(ParseHealthEventLine("boom 0", node.gpus).ok());
  EXPECT_FALSE(ParseHealthEventLine("recover", node.gpus).ok());
  EXPECT_EQ(ParseHealthEventLine("xid 7 79", node.gpus).status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(ParseHealthEventLine("xid 0 79", node.gpus).ok());
}

TEST(BackendFactoryTest, RejectsUnknownSpecs) {
  auto bad = CreateGpuBackend("cuda");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("accepted: nvml, sim:"), std::string::npos);
  EXPECT_FALSE(CreateGpuBackend("sim:").ok());
  auto sim = CreateGpuBackend("sim:" + kFixtures + "h200-8x.yaml");
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  EXPECT_EQ((*sim)->ListGpus()->size(), 8u);
}

TEST(NvmlBackendTest, AbsentLibraryIsExplainedPlainly) {
  auto nvml = NvmlBackend::Create("libnvidia-ml-does-not-exist.so.1");
  ASSERT_FALSE(nvml.ok());
  EXPECT_EQ(nvml.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("NVML is not available"), std::string::npos);
  EXPECT_NE(nvml.status().message().find("--backend sim:FILE"), std::string::npos);
}

// A CPU node the DaemonSet also runs on: no GPUs, which the agent advertises as nothing.
TEST(SimulatedNodeTest, NodeWithoutGpus) {
  Result<SimulatedNode> node = ParseSimulatedNode("node: {name: cpu-node}\ngpus: []\n", "n.yaml");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_TRUE(node->gpus.empty());
}

// GFD's nvidia.com/gpu.mode comes from the PCI class: 3D controller = compute (the default of a
// simulated GPU), VGA controller = graphics.
TEST(SimulatedNodeTest, ModeSetsThePciClass) {
  Result<SimulatedNode> node =
      ParseSimulatedNode("gpus:\n  - model: L4\n  - model: L4\n    mode: graphics\n", "n.yaml");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ(node->gpus[0].pci_class, kPciClass3dController);
  EXPECT_EQ(node->gpus[1].pci_class, kPciClassVgaController);
}

}  // namespace
}  // namespace gpuslice
