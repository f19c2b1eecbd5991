#include "scheduler/kube_objects.h"

#include <gtest/gtest.h>

#include "test_objects.h"

namespace gpuslice::scheduler {
namespace {

using testing::kGiB;
using testing::MakeNode;
using testing::MakePod;

TEST(ParsePodTest, ReadsTheFractionalRequestOfTheGpuContainer) {
  nlohmann::json pod = MakePod("train", {.memory = "8Gi", .compute = "30", .models = "A100, H100"});
  pod["spec"]["containers"].push_back({{"name", "sidecar"}, {"image", "busybox"}});
  const Result<PodInfo> info = ParsePod(pod);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->uid, "uid-train");
  EXPECT_EQ(info->Describe(), "team-a/train");
  EXPECT_EQ(info->phase, PodPhase::kPending);
  EXPECT_EQ(info->request.container, "main");
  EXPECT_EQ(info->request.gpu_count, 1);  // implied by memory/compute
  EXPECT_EQ(info->request.memory_bytes, 8 * kGiB);
  EXPECT_EQ(info->request.compute_percent, 30);
  EXPECT_EQ(info->request.models, (std::vector<std::string>{"A100", "H100"}));
  EXPECT_FALSE(info->assignment);
}

TEST(ParsePodTest, ReadsKeysCaseInsensitivelyLikeGo) {
  nlohmann::json pod = {
      {"Metadata", {{"Name", "p"}, {"UID", "u"}, {"Namespace", "ns"}}},
      {"Spec",
       {{"Containers",
         {{{"Name", "c"}, {"Resources", {{"Limits", {{"gpuslice.io/gpu", "2"}}}}}}}}}},
      {"Status", {{"Phase", "Running"}}}};
  const Result<PodInfo> info = ParsePod(pod);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->Describe(), "ns/p");
  EXPECT_EQ(info->request.gpu_count, 2);
  EXPECT_FALSE(info->request.is_share());
  EXPECT_EQ(info->phase, PodPhase::kRunning);
}

struct BadPodCase {
  const char* name;
  testing::PodShape shape;
  const char* message;
};

class BadPodTest : public ::testing::TestWithParam<BadPodCase> {};

TEST_P(BadPodTest, IsRejectedNamingPodContainerAndField) {
  const Result<PodInfo> info = ParsePod(MakePod("bad", GetParam().shape));
  ASSERT_FALSE(info.ok());
  const std::string message = info.status().message();
  EXPECT_NE(message.find("pod 'team-a/bad' container 'main'"), std::string::npos) << message;
  EXPECT_NE(message.find(GetParam().message), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Requests, BadPodTest,
    ::testing::Values(
        BadPodCase{"ComputeAbove100", {.compute = "150"}, "gpu-compute must be 1..100"},
        BadPodCase{"ComputeZero", {.memory = "1Gi", .compute = "0"}, "gpu-compute must be 1..100"},
        BadPodCase{"MemoryGarbage", {.memory = "8GB"}, "gpuslice.io/gpu-memory]: quantity '8GB'"},
        BadPodCase{"MemoryNegative", {.memory = "-1Gi"}, "gpu-memory must be > 0"},
        BadPodCase{"ShareOfSeveralGpus", {.memory = "8Gi", .gpus = "2"}, "whole GPUs"},
        BadPodCase{"ZeroGpusWithMemory", {.memory = "8Gi", .gpus = "0"}, "gpuslice.io/gpu is 0"},
        BadPodCase{"TooManyGpus", {.gpus = "65"}, "gpuslice.io/gpu must be 0..64"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(ParsePodTest, RejectsTwoGpuContainersAndLimitsDifferentFromRequests) {
  nlohmann::json pod = MakePod("two", {.memory = "1Gi"});
  pod["spec"]["containers"].push_back(pod["spec"]["containers"][0]);
  pod["spec"]["containers"][1]["name"] = "second";
  Result<PodInfo> info = ParsePod(pod);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("only one container"), std::string::npos);

  pod = MakePod("differ", {.memory = "1Gi"});
  pod["spec"]["containers"][0]["resources"]["requests"]["gpuslice.io/gpu-memory"] = "2Gi";
  info = ParsePod(pod);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("differ"), std::string::npos);

  info = ParsePod(nlohmann::json{{"metadata", {{"name", "no-uid"}}}});
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("metadata.uid"), std::string::npos);
}

// The codecs themselves: tests/core/gpu_annotations_test.cc.
TEST(AnnotationTest, ABadAssignmentOnAPodIsRecordedNotFatal) {
  nlohmann::json pod = MakePod("p", {.memory = "1Gi"});
  pod["metadata"]["annotations"]["gpuslice.io/assignment"] = "{not json";
  const Result<PodInfo> info = ParsePod(pod);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->assignment);
  EXPECT_NE(info->assignment_error.find("not a JSON object"), std::string::npos);
}

TEST(ParseNodeTest, RecordsABadCapacityAnnotationInsteadOfFailing) {
  nlohmann::json node = MakeNode("n1", 2);
  Result<NodeInfo> info = ParseNode(node);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->gpus.size(), 2U);
  node["metadata"]["annotations"]["gpuslice.io/gpus"] = "garbage";
  info = ParseNode(node);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->gpus.empty());
  EXPECT_NE(info->capacity_error.find("node 'n1': gpuslice.io/gpus"), std::string::npos);
  EXPECT_FALSE(ParseNode(nlohmann::json::object()).ok());
}

}  // namespace
}  // namespace gpuslice::scheduler
