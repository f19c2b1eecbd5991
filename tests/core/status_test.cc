#include "core/status.h"

#include <gtest/gtest.h>

namespace gpuslice {
namespace {

Result<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgument("must be positive, got " + std::to_string(v));
  return v;
}

Result<int> Doubled(int v) {
  GPUSLICE_ASSIGN_OR_RETURN(int x, ParsePositive(v));
  return 2 * x;
}

Status Check(int v) {
  GPUSLICE_RETURN_IF_ERROR(ParsePositive(v).status());
  return Status::Ok();
}

TEST(StatusTest, OkAndErrorsPropagate) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(*Doubled(4), 8);
  Result<int> bad = Doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().ToString(), "INVALID_ARGUMENT: must be positive, got -1");
  EXPECT_FALSE(Check(0).ok());
  EXPECT_TRUE(Check(3).ok());
}

TEST(StatusTest, WithContextPrefixesTheMessage) {
  Status s = NotFound("no GPU 9").WithContext("node.yaml");
  EXPECT_EQ(s.message(), "node.yaml: no GPU 9");
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

}  // namespace
}  // namespace gpuslice
