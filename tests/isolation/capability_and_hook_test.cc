// Capability detection, labels, the hook's parsers and the MPS v3 file format, table-driven.
#include <gtest/gtest.h>

#include "backends/isolation_capability.h"
#include "core/resource_names.h"
#include "fake_cgroup_tree.h"
#include "isolation/mps_v3.h"
#include "isolation/oci_hook.h"

namespace gpuslice {
namespace {

GpuInfo Gpu(const std::string& uuid, bool mig = false) {
  GpuInfo gpu;
  gpu.uuid = uuid;
  gpu.mig_capable = mig;
  gpu.mig_enabled = mig;
  return gpu;
}

struct CapabilityRow {
  std::string name;
  std::string driver;
  bool cgroup_v2;
  bool api;
  bool mig_on_second;
  std::vector<std::string> unsupported;
  std::string memory_label;
  std::string mps_label;
};

class CapabilityTest : public ::testing::TestWithParam<CapabilityRow> {};

TEST_P(CapabilityTest, LabelsFollowDriverCgroupAndApi) {
  const CapabilityRow& row = GetParam();
  DriverInfo driver{row.driver, 13040};
  const NodeIsolation node =
      DetectIsolation(driver, {Gpu("GPU-a"), Gpu("GPU-b", row.mig_on_second)}, row.cgroup_v2,
                      row.api, row.unsupported);
  const auto labels = IsolationLabels(node, /*mps_enabled=*/true);
  EXPECT_EQ(labels.at(std::string(names::kLabelMemoryIsolation)), row.memory_label);
  EXPECT_EQ(labels.at(std::string(names::kLabelMps)), row.mps_label);
  for (const auto& gpu : node.gpus) {
    EXPECT_EQ(gpu.memory_partitions && gpu.mps_v3, gpu.reason.empty()) << gpu.uuid;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, CapabilityTest,
    ::testing::Values(
        CapabilityRow{
            "R615CgroupV2ApiIsDriverTier", "615.20.03", true, true, false, {}, "driver", "v3"},
        CapabilityRow{"R620IsDriverTier", "620.1", true, true, false, {}, "driver", "v3"},
        CapabilityRow{"R580FallsBackToShim", "580.65.06", true, true, false, {}, "shim", "v2"},
        CapabilityRow{
            "CgroupV1FallsBackToShimKeepsMpsV3", "615.20.03", false, true, false, {}, "shim", "v3"},
        CapabilityRow{
            "NoApiSymbolFallsBackToShim", "615.20.03", true, false, false, {}, "shim", "v3"},
        CapabilityRow{"OneGpuUnsupportedMakesNodeShim",
                      "615.20.03",
                      true,
                      true,
                      false,
                      {"GPU-b"},
                      "shim",
                      "v3"},
        CapabilityRow{"MigGpuIsNeverDriverPartitionedAndNotCounted",
                      "615.20.03",
                      true,
                      true,
                      true,
                      {},
                      "driver",
                      "v3"},
        CapabilityRow{"UnparsableVersionIsShim", "abc", true, true, false, {}, "shim", "v2"}),
    [](const auto& row_info) { return row_info.param.name; });

TEST(CapabilityTest, MpsLabelIsNoneWithoutMpsSharing) {
  const NodeIsolation node = DetectIsolation({"615.20.03", 13040}, {Gpu("GPU-a")}, true, true);
  EXPECT_EQ(IsolationLabels(node, false).at(std::string(names::kLabelMps)), "none");
}

TEST(CapabilityTest, MigDevicesAreLeftOut) {
  const NodeIsolation node =
      DetectIsolation({"615.20.03", 13040}, {Gpu("GPU-a"), Gpu("GPU-m", true)}, true, true);
  ASSERT_EQ(node.gpus.size(), 1u);
  EXPECT_EQ(node.Find("GPU-m"), nullptr);
}

TEST(CapabilityTest, DriverMajorVersion) {
  EXPECT_EQ(DriverMajorVersion("615.20.03"), 615);
  EXPECT_EQ(DriverMajorVersion("550"), 550);
  EXPECT_EQ(DriverMajorVersion(""), 0);
  EXPECT_EQ(DriverMajorVersion("x615"), 0);
  EXPECT_EQ(DriverMajorVersion("615x"), 0);
}

TEST(CapabilityTest, FakeCgroupTreeCountsAsCgroupV2AndEmptyDirDoesNot) {
  testing::FakeCgroupTree tree;
  EXPECT_TRUE(IsCgroupV2(tree.cgroup_mount()));
  EXPECT_FALSE(IsCgroupV2(tree.proc_root()));
}

struct StateRow {
  std::string name;
  std::string json;
  std::string error;  // "" = parses
};

class OciStateTest : public ::testing::TestWithParam<StateRow> {};

TEST_P(OciStateTest, Parses) {
  Result<OciState> state = ParseOciState(GetParam().json);
  if (GetParam().error.empty()) {
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    EXPECT_EQ(state->id, "abc");
    EXPECT_EQ(state->pid, 42);
    EXPECT_EQ(state->bundle, "/run/b");
  } else {
    ASSERT_FALSE(state.ok());
    EXPECT_NE(state.status().message().find(GetParam().error), std::string::npos)
        << state.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, OciStateTest,
    ::testing::Values(
        StateRow{
            "Valid",
            R"({"ociVersion":"1.1.0","id":"abc","status":"created","pid":42,"bundle":"/run/b"})",
            ""},
        StateRow{"NotJson", "{", "not a JSON object"},
        StateRow{"NoId", R"({"pid":42,"bundle":"/run/b"})", "\"id\""},
        StateRow{"IdWithSlash", R"({"id":"../x","pid":42,"bundle":"/run/b"})", "container id"},
        StateRow{"NoPidAsInPrestartOfCreate", R"({"id":"abc","bundle":"/run/b"})", "\"pid\""},
        StateRow{"NegativePid", R"({"id":"abc","pid":-1,"bundle":"/run/b"})", "\"pid\""},
        StateRow{"NoBundle", R"({"id":"abc","pid":42})", "\"bundle\""}),
    [](const auto& row_info) { return row_info.param.name; });

TEST(CgroupPathTest, FindsTheUnifiedEntry) {
  auto path = ParseCgroupV2Path("12:pids:/x\n0::/kubepods.slice/cri-containerd-abc.scope\n");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "/kubepods.slice/cri-containerd-abc.scope");
  EXPECT_EQ(ParseCgroupV2Path("4:memory:/x\n").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(ParseCgroupV2Path("0::relative\n").ok());
  EXPECT_FALSE(ParseCgroupV2Path("0::/a/../../etc\n").ok());
}

TEST(BundleEnvTest, LastDefinitionWins) {
  testing::FakeCgroupTree tree;
  const std::string bundle = tree.AddBundle("x", {"A=1", "GPUSLICE_ISOLATION_TOKEN=t1", "A=2"});
  EXPECT_EQ(*ReadBundleEnv(bundle, "A"), "2");
  EXPECT_EQ(*ReadBundleEnv(bundle, "GPUSLICE_ISOLATION_TOKEN"), "t1");
  EXPECT_EQ(*ReadBundleEnv(bundle, "MISSING"), "");
  EXPECT_FALSE(ReadBundleEnv(tree.root() + "/nope", "A").ok());
}

TEST(MpsV3Test, TomlHasOnlyDocumentedKeys) {
  const std::string toml = RenderMpsV3Toml(
      {{"gpu-aaaa", "GPU-aaaa"}},
      {{"gpu-aaaa", "c-ctr1", 10ULL << 30, 25, 0}, {"gpu-aaaa", "c-ctr2", 512ULL << 20, 75, 1}});
  EXPECT_NE(toml.find("schema_version = \"1.0\""), std::string::npos);
  EXPECT_NE(toml.find("[servers.gpu-aaaa]\nallowed_devices = \"GPU-aaaa\""), std::string::npos);
  EXPECT_NE(toml.find("[servers.gpu-aaaa.namespaces.c-ctr1]\npinned_memory_limit = \"10G\"\n"
                      "active_thread_percentage = \"25\"\nclient_priority = \"0\""),
            std::string::npos)
      << toml;
  EXPECT_NE(toml.find("pinned_memory_limit = \"512M\""), std::string::npos);
}

TEST(MpsV3Test, Names) {
  EXPECT_TRUE(ValidateMpsV3Name("c-ctr1").ok());
  EXPECT_FALSE(ValidateMpsV3Name("default").ok());
  EXPECT_FALSE(ValidateMpsV3Name("A").ok());
  EXPECT_FALSE(ValidateMpsV3Name("a/b").ok());
  EXPECT_FALSE(ValidateMpsV3Name("").ok());
  EXPECT_EQ(MpsV3NamespaceDirectory("/run/mps", {"s", "n"}), "/run/mps/s/n");
  EXPECT_EQ(MpsV3MemoryString(1536ULL << 20), "1536M");
  EXPECT_EQ(MpsV3MemoryString(1000), "1000");
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

struct PodAnnotationRow {
  const char* name;
  std::map<std::string, std::string> annotations;
  std::string want;
};

TEST(BundlePodAnnotationTest, ReadsContainerdAndCrioStyles) {
  const std::string key(names::kAnnotationPodMpsClientPriority);
  const std::string crio(names::kCrioPodAnnotations);
  const PodAnnotationRow rows[] = {
      {"absent", {}, ""},
      {"containerd_pod_annotations_allowlist", {{key, "1"}}, "1"},
      {"crio_all_pod_annotations",
       {{crio, R"({"gpuslice.io/mps-client-priority":"1","a":"b"})"}},
       "1"},
      {"crio_without_the_key", {{crio, R"({"a":"b"})"}}, ""},
      {"crio_not_json", {{crio, "{nope"}}, ""},
      {"own_annotation_wins",
       {{key, "0"}, {crio, R"({"gpuslice.io/mps-client-priority":"1"})"}},
       "0"},
  };
  testing::FakeCgroupTree tree;
  for (const PodAnnotationRow& row : rows) {
    const std::string bundle = tree.AddBundle(row.name, {}, row.annotations);
    Result<std::string> got = ReadBundlePodAnnotation(bundle, key);
    ASSERT_TRUE(got.ok()) << row.name << ": " << got.status().ToString();
    EXPECT_EQ(*got, row.want) << row.name;
  }
  EXPECT_FALSE(ReadBundlePodAnnotation(tree.root() + "/nope", key).ok());
}

TEST(MpsClientPriorityTest, OnlyNvidiasValuesAreAccepted) {
  EXPECT_EQ(ParseMpsClientPriority("0", "x").value_or(-1), 0);
  EXPECT_EQ(ParseMpsClientPriority("1", "x").value_or(-1), 1);
  for (const char* bad : {"2", "-1", "", "01", " 1", "high", "1.0"}) {
    Result<int> parsed =
        ParseMpsClientPriority(bad, "pod annotation gpuslice.io/mps-client-priority");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().message(),
              "pod annotation gpuslice.io/mps-client-priority: '" + std::string(bad) +
                  "' is not an MPS client priority; accepted: \"0\" (normal) or \"1\" (below "
                  "normal), as NVIDIA's CUDA_MPS_CLIENT_PRIORITY");
  }
}

// The hook's options over `tree` (its spool, /proc and cgroup mount).
HookOptions HookOptionsOn(const testing::FakeCgroupTree& tree) {
  HookOptions options;
  options.spool_dir = tree.spool();
  options.proc_root = tree.proc_root();
  options.cgroup_mount = tree.cgroup_mount();
  return options;
}

TEST(MpsClientPriorityTest, TheHookRefusesABadValueOfASharedContainerOnly) {
  testing::FakeCgroupTree tree;
  tree.AddCgroup("/kubepods/p1/c1", {4401});
  const HookOptions options = HookOptionsOn(tree);
  const std::string key(names::kAnnotationPodMpsClientPriority);
  const std::string token = std::string(names::kIsolationTokenEnv) + "=t1";
  Result<HookRequest> bad = BuildHookRequest(
      options,
      testing::FakeCgroupTree::State("c1", 4401, tree.AddBundle("c1", {token}, {{key, "9"}})));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("container c1: pod annotation "
                                        "gpuslice.io/mps-client-priority: '9' is not"),
            std::string::npos)
      << bad.status().message();
  Result<HookRequest> good = BuildHookRequest(
      options,
      testing::FakeCgroupTree::State("c2", 4401, tree.AddBundle("c2", {token}, {{key, "1"}})));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->mps_client_priority, "1");
  Result<HookRequest> round = HookRequestFromJson(HookRequestToJson(*good));
  ASSERT_TRUE(round.ok());
  EXPECT_EQ(round->mps_client_priority, "1");
  // Not shared (no token): the hook has nothing to do with the pod's annotations.
  EXPECT_TRUE(BuildHookRequest(options, testing::FakeCgroupTree::State(
                                            "c3", 4401, tree.AddBundle("c3", {}, {{key, "9"}})))
                  .ok());
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

// The hook names the container's pod to the agent, from the annotations each runtime writes:
// containerd's CRI plugin (pkg/cri/annotations: sandbox-namespace/-name/-uid) and CRI-O (the
// kubelet's io.kubernetes.pod.* labels).
TEST(BundlePodRefTest, TheHookPassesThePodNamedByEitherRuntime) {
  struct Row {
    const char* name;
    std::map<std::string, std::string> annotations;
    PodRef want;
  };
  const std::string cd_ns(names::kContainerdPodNamespace), cd_name(names::kContainerdPodName),
      cd_uid(names::kContainerdPodUid), crio_ns(names::kCrioPodNamespace),
      crio_name(names::kCrioPodName), crio_uid(names::kCrioPodUid);
  const Row rows[] = {
      {"containerd",
       {{cd_ns, "team-a"}, {cd_name, "train-0"}, {cd_uid, "u-1"}},
       {"team-a", "train-0", "u-1"}},
      {"containerd_before_1_6_11_no_uid",
       {{cd_ns, "team-a"}, {cd_name, "train-0"}},
       {"team-a", "train-0", ""}},
      {"crio",
       {{crio_ns, "team-b"}, {crio_name, "infer-1"}, {crio_uid, "u-2"}},
       {"team-b", "infer-1", "u-2"}},
      {"neither", {{"io.kubernetes.cri.container-type", "container"}}, {}},
      {"name_without_namespace", {{cd_name, "train-0"}, {crio_name, "infer-1"}}, {}},
  };
  testing::FakeCgroupTree tree;
  tree.AddCgroup("/kubepods/p/c", {4402});
  const HookOptions options = HookOptionsOn(tree);
  const std::string token = std::string(names::kIsolationTokenEnv) + "=t1";
  for (const Row& row : rows) {
    const std::string bundle = tree.AddBundle(row.name, {token}, row.annotations);
    Result<HookRequest> request =
        BuildHookRequest(options, testing::FakeCgroupTree::State(row.name, 4402, bundle));
    ASSERT_TRUE(request.ok()) << row.name << ": " << request.status().ToString();
    EXPECT_EQ(request->pod.namespace_name, row.want.namespace_name) << row.name;
    EXPECT_EQ(request->pod.name, row.want.name) << row.name;
    EXPECT_EQ(request->pod.uid, row.want.uid) << row.name;
    // Through the spool file to the agent.
    Result<HookRequest> round = HookRequestFromJson(HookRequestToJson(*request));
    ASSERT_TRUE(round.ok()) << row.name;
    EXPECT_EQ(round->pod.Describe(), row.want.Describe()) << row.name;
    EXPECT_EQ(round->pod.uid, row.want.uid) << row.name;
  }
}

// Older and newer hooks and agents read each other's requests: the pod fields are optional, and
// the required ones are unchanged.
TEST(BundlePodRefTest, RequestsWithAndWithoutThePodParse) {
  Result<HookRequest> old_hook =
      HookRequestFromJson(R"({"id":"c1","pid":7,"cgroup":"/sys/fs/cgroup/x","token":"t"})");
  ASSERT_TRUE(old_hook.ok()) << old_hook.status().ToString();
  EXPECT_TRUE(old_hook->pod.empty());
  const std::string text =
      HookRequestToJson({"c1", 7, "/sys/fs/cgroup/x", "t", "", PodRef{"team-a", "train-0", "u-1"}});
  EXPECT_NE(text.find(R"("podNamespace":"team-a")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("podName":"train-0")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("podUid":"u-1")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("token":"t")"), std::string::npos) << text;
  Result<HookRequest> bad =
      HookRequestFromJson(R"({"id":"c1","pid":7,"cgroup":"/x","token":"t","podName":7})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"podName\" is not a string"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice
