// The gpuslice.io/assignment and gpuslice.io/gpus codecs the extender and the node agent share.
#include "core/gpu_annotations.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gpuslice {
namespace {

constexpr std::int64_t kGiB = std::int64_t{1} << 30;

TEST(GpuAnnotationsTest, AssignmentRoundTrips) {
  const GpuAssignment assignment{"node-a", "main", {{1, "GPU-x"}, {3, "GPU-y"}}, 8 * kGiB, 30};
  const Result<GpuAssignment> decoded = DecodeAssignment(EncodeAssignment(assignment));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, assignment);
}

TEST(GpuAnnotationsTest, KeysAreReadCaseInsensitivelyLikeGo) {
  const Result<GpuAssignment> decoded = DecodeAssignment(
      R"({"Version":"v1","NODE":"a","Gpus":[{"Index":2,"UUID":"GPU-z"}],"memorybytes":5,)"
      R"("ComputePercent":7})");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->node, "a");
  EXPECT_EQ(decoded->gpus, (std::vector<AssignedGpu>{{2, "GPU-z"}}));
  EXPECT_EQ(decoded->memory_bytes, 5);
  EXPECT_EQ(decoded->compute_percent, 7);
}

struct BadText {
  const char* name;
  const char* text;
  const char* message;  // part of the error
};

class BadAssignmentTest : public ::testing::TestWithParam<BadText> {};
TEST_P(BadAssignmentTest, IsRejectedWithTheField) {
  const Result<GpuAssignment> result = DecodeAssignment(GetParam().text);
  ASSERT_FALSE(result.ok()) << GetParam().text;
  EXPECT_NE(result.status().message().find(GetParam().message), std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find("gpuslice.io/assignment"), std::string::npos);
}
INSTANTIATE_TEST_SUITE_P(
    Rows, BadAssignmentTest,
    ::testing::Values(
        BadText{"Empty", "", "not a JSON object"}, BadText{"Truncated", "{", "not a JSON object"},
        BadText{"UnknownVersion", R"({"version":"v2","node":"a","gpus":[{"index":0}]})",
                "version must be \"v1\""},
        BadText{"NoNode", R"({"version":"v1","gpus":[{"index":0}]})", "'node' is missing"},
        BadText{"NoGpus", R"({"version":"v1","node":"a","gpus":[]})", "non-empty list"},
        BadText{"NegativeIndex", R"({"version":"v1","node":"a","gpus":[{"index":-1}]})",
                "'index' must be a non-negative integer"},
        BadText{"ComputeOver100",
                R"({"version":"v1","node":"a","gpus":[{"index":0}],"memoryBytes":1,)"
                R"("computePercent":101})",
                "computePercent must be 0..100"}),
    [](const ::testing::TestParamInfo<BadText>& row) { return std::string(row.param.name); });

TEST(GpuAnnotationsTest, NodeGpusRoundTripSortedByIndex) {
  const std::vector<NodeGpu> gpus{{1, "GPU-b", "A100", 40 * kGiB}, {0, "GPU-a", "A100", 40 * kGiB}};
  const Result<std::vector<NodeGpu>> decoded = DecodeNodeGpus(EncodeNodeGpus(gpus));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, (std::vector<NodeGpu>{gpus[1], gpus[0]}));
}

class BadNodeGpusTest : public ::testing::TestWithParam<BadText> {};
TEST_P(BadNodeGpusTest, IsRejectedWithTheReason) {
  const Result<std::vector<NodeGpu>> result = DecodeNodeGpus(GetParam().text);
  ASSERT_FALSE(result.ok()) << GetParam().text;
  EXPECT_NE(result.status().message().find(GetParam().message), std::string::npos)
      << result.status().message();
}
INSTANTIATE_TEST_SUITE_P(
    Rows, BadNodeGpusTest,
    ::testing::Values(
        BadText{"NoVersion", R"({"gpus":[]})", "version must be \"v1\""},
        BadText{
            "ZeroMemory",
            R"({"version":"v1","gpus":[{"index":0,"uuid":"a","model":"A100","memoryBytes":0}]})",
            "'memoryBytes' must be > 0"},
        BadText{"IndexTwice",
                R"({"version":"v1","gpus":[{"index":0,"uuid":"a","model":"A100","memoryBytes":1},)"
                R"({"index":0,"uuid":"b","model":"A100","memoryBytes":1}]})",
                "index listed twice"},
        BadText{"UuidTwice",
                R"({"version":"v1","gpus":[{"index":0,"uuid":"a","model":"A100","memoryBytes":1},)"
                R"({"index":1,"uuid":"a","model":"A100","memoryBytes":1}]})",
                "uuid 'a' listed twice"},
        BadText{"TwoModels",
                R"({"version":"v1","gpus":[{"index":0,"uuid":"a","model":"A100","memoryBytes":1},)"
                R"({"index":1,"uuid":"b","model":"H100","memoryBytes":1}]})",
                "different models"},
        BadText{"NoUuid", R"({"version":"v1","gpus":[{"index":0,"model":"A100","memoryBytes":1}]})",
                "'uuid' and 'model'"}),
    [](const ::testing::TestParamInfo<BadText>& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace gpuslice
