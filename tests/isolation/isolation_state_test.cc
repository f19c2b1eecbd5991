// ParseIsolationState: the state file an agent restart reads. A corrupted file must be refused
// with the field named, never crash the agent (wrong types, floats where integers belong).
#include "isolation/isolation_state.h"

#include <gtest/gtest.h>

#include <string>

namespace gpuslice {
namespace {

struct BadState {
  const char* name;
  const char* text;
  const char* error_contains;
  friend void PrintTo(const BadState& c, std::ostream* os) { *os << c.name; }
};

class ParseIsolationStateTest : public ::testing::TestWithParam<BadState> {};

TEST_P(ParseIsolationStateTest, RefusesWithTheFieldNamed) {
  const BadState& c = GetParam();
  Result<IsolationState> parsed = ParseIsolationState(c.text, "/iso/state.json");
  ASSERT_FALSE(parsed.ok()) << c.text;
  EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
  const std::string message = parsed.status().message();
  EXPECT_NE(message.find("isolation state /iso/state.json: "), std::string::npos) << message;
  EXPECT_NE(message.find(c.error_contains), std::string::npos) << message;
  EXPECT_NE(message.find("move the file away"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ParseIsolationStateTest,
    ::testing::Values(
        BadState{"NotJson", "{garbage", "not valid JSON"},
        BadState{"NotAnObject", "[1]", "expected a JSON object"},
        BadState{"NoVersion", "{}", "\"version\" must be 1"},
        BadState{"VersionAsString", R"({"version":"1"})", "\"version\" must be 1"},
        BadState{"VersionAsFloat", R"({"version":1.0})", "\"version\" must be 1"},
        BadState{"FutureVersion", R"({"version":2})", "\"version\" must be 1"},
        BadState{"PendingNotAnObject", R"({"version":1,"pending":[]})",
                 "pending: expected an object"},
        BadState{"PartitionAsString", R"({"version":1,"pending":{"t1":"GPU-1"}})",
                 "pending[\"t1\"]: expected an object (a partition)"},
        BadState{"HardAsFloat", R"({"version":1,"pending":{"t1":{"hard":1e20}}})",
                 "pending[\"t1\"].hard: expected a byte count (an integer >= 0), got 1e+20"},
        BadState{"HardNegative", R"({"version":1,"pending":{"t1":{"hard":-1}}})",
                 "pending[\"t1\"].hard: expected a byte count"},
        BadState{"SoftAsString", R"({"version":1,"pending":{"t1":{"soft":"4Gi"}}})",
                 "pending[\"t1\"].soft: expected a byte count (an integer >= 0), got \"4Gi\""},
        BadState{"ThreadsOutOfRange", R"({"version":1,"pending":{"t1":{"threads":101}}})",
                 "pending[\"t1\"].threads: expected an integer 1-100, got 101"},
        BadState{"ThreadsHuge",
                 R"({"version":1,"pending":{"t1":{"threads":18446744073709551615}}})",
                 "threads: expected an integer 1-100"},
        BadState{"PriorityTwo", R"({"version":1,"pending":{"t1":{"priority":2}}})",
                 "priority: expected 0 or 1"},
        BadState{"MpsAsNumber", R"({"version":1,"pending":{"t1":{"mps":1}}})",
                 "mps: expected true or false"},
        BadState{"GpuAsNumber", R"({"version":1,"pending":{"t1":{"gpu":7}}})",
                 "gpu: expected a string"},
        BadState{"ContainersNotAnArray", R"({"version":1,"containers":{}})",
                 "containers: expected an array"},
        BadState{"ContainerAsString", R"({"version":1,"containers":["c1"]})",
                 "containers[0]: expected an object (a container)"},
        BadState{"PidAsFloat", R"({"version":1,"containers":[{"id":"c1","pid":1e20}]})",
                 "containers[0].pid: expected a pid (an integer 0-2147483647), got 1e+20"},
        BadState{"PidTooLarge", R"({"version":1,"containers":[{"id":"c1","pid":4294967296}]})",
                 "containers[0].pid: expected a pid"},
        BadState{"PartitionOfContainerAsString",
                 R"({"version":1,"containers":[{"id":"c1","partition":"x"}]})",
                 "containers[0].partition: expected an object, got \"x\""},
        BadState{"HardOfContainerAsBool",
                 R"({"version":1,"containers":[{"id":"c1","partition":{"hard":true}}]})",
                 "containers[0].partition.hard: expected a byte count"},
        BadState{"ContainerIdWithSlash", R"({"version":1,"containers":[{"id":"../x"}]})",
                 "containers[0].id: "},
        BadState{"MoreGpusNotAnArray", R"({"version":1,"pending":{"t1":{"moreGpus":{}}}})",
                 "pending[\"t1\"].moreGpus: expected an array"},
        BadState{"MoreGpuAsString", R"({"version":1,"pending":{"t1":{"moreGpus":["GPU-2"]}}})",
                 "pending[\"t1\"].moreGpus[0]: expected an object (a GPU share)"},
        BadState{"MoreGpuHardAsFloat",
                 R"({"version":1,"pending":{"t1":{"moreGpus":[{"gpu":"GPU-2","hard":1.5}]}}})",
                 "pending[\"t1\"].moreGpus[0].hard: expected a byte count"},
        BadState{"DeviceIdAsNumber", R"({"version":1,"pending":{"t1":{"devices":["a::1",2]}}})",
                 "pending[\"t1\"].devices[1]: expected a string (a device ID)"},
        BadState{"SecondContainerBad",
                 R"({"version":1,"containers":[{"id":"c1"},{"id":"c2","cgroup":["/a"]}]})",
                 "containers[1].cgroup: expected a string"}),
    [](const ::testing::TestParamInfo<BadState>& row) { return std::string(row.param.name); });

TEST(IsolationStateTest, WhatIsWrittenParsesBackTheSame) {
  IsolationState state;
  Partition fractional;
  fractional.awaiting_limits_from = "/var/lib/gpuslice/allocations/k/limits/limits";
  fractional.gpu_uuid = "GPU-1";
  fractional.more_gpus = {{"GPU-3", 5ULL << 30, 4ULL << 30}, {"GPU-4", 0, 0}};
  fractional.resource_name = "gpuslice.io/gpu";
  fractional.device_ids = {"GPU-1::1", "GPU-1::2"};
  state.pending["aa"] = fractional;
  Partition mps;
  mps.gpu_uuid = "GPU-2";
  mps.hard_limit_bytes = UINT64_MAX;
  mps.soft_limit_bytes = 10ULL << 30;
  mps.mps = true;
  mps.active_thread_percentage = 25;
  mps.client_priority = 1;
  mps.mps_namespace = "ns-0123456789abcdef";
  mps.pod_cgroup = "/sys/fs/cgroup/kubepods/pod1";
  state.pending["bb"] = mps;
  ContainerBinding b;
  b.container_id = "ctr1";
  b.pid = 2147483647;
  b.cgroup_path = "/sys/fs/cgroup/kubepods/pod1/ctr1";
  b.partition = mps;
  b.mps_server = "gpu-aaaaaaaa";
  b.mps_namespace = "ns-0123456789abcdef";
  b.token = "cc";
  state.containers = {b};
  const std::string text = FormatIsolationState(state);
  Result<IsolationState> parsed = ParseIsolationState(text, "state.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  EXPECT_TRUE(*parsed == state) << text;
}

TEST(IsolationStateTest, MissingFieldsTakeTheirDefaults) {
  Result<IsolationState> parsed =
      ParseIsolationState(R"({"version":1,"pending":{"t":{}},"containers":[{"id":"c1"}]})", "s");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->pending.at("t") == Partition{});
  ASSERT_EQ(parsed->containers.size(), 1u);
  EXPECT_EQ(parsed->containers[0].partition.active_thread_percentage, 100);
}

}  // namespace
}  // namespace gpuslice
