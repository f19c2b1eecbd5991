#include "shim/container_limits.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <ostream>
#include <string>

namespace gpuslice::shim {
namespace {

struct ParseCase {
  const char* name;
  const char* text;
  bool ok;
  const char* error_contains;
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.name; }
};

class ParseContainerLimitsTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseContainerLimitsTest, AcceptsOrExplains) {
  const ParseCase& c = GetParam();
  ContainerLimits limits;
  char error[256];
  EXPECT_EQ(ParseContainerLimits(c.text, std::strlen(c.text), &limits, error, sizeof(error)), c.ok)
      << error;
  if (!c.ok) {
    EXPECT_NE(std::strstr(error, c.error_contains), nullptr) << error;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseContainerLimitsTest,
    ::testing::Values(
        ParseCase{"Minimal", "gpuslice-limits 1\nregion /r\n", true, ""},
        ParseCase{"Full",
                  "# comment\ngpuslice-limits 1\nregion /run/a\ncuda-driver /x/libcuda.so.1\n"
                  "nvml-driver /x/libnvidia-ml.so.1\ncontext-overhead-bytes 100\n"
                  "device index=0 uuid=GPU-1 memory-bytes=4294967296 compute-percent=50  # c\n",
                  true, ""},
        ParseCase{"Empty", "", false, "expected 'gpuslice-limits 2'"},
        ParseCase{"ComputeArbiterAndCap",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 compute-percent=30 "
                  "compute-arbiter=/run/gpuslice/gpu/GPU-1/arbiter compute-cap-percent=40\n",
                  true, ""},
        ParseCase{"ComputeRequests",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 compute-percent=30 "
                  "compute-arbiter=/run/gpuslice-arbiter/grant "
                  "compute-requests=/run/gpuslice/compute-requests\n",
                  true, ""},
        ParseCase{"RelativeComputeRequests",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 "
                  "compute-requests=r\n",
                  false, "compute-requests must be an absolute path"},
        ParseCase{"ComputeRequestsNeedVersion2",
                  "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=1 "
                  "compute-requests=/r\n",
                  false, "need 'gpuslice-limits 2'"},
        ParseCase{"ComputeArbiterNeedsVersion2",
                  "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=1 "
                  "compute-arbiter=/a\n",
                  false, "need 'gpuslice-limits 2'"},
        ParseCase{"RelativeArbiter",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 compute-arbiter=a\n",
                  false, "compute-arbiter must be an absolute path"},
        ParseCase{"CapBelowRequest",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 compute-percent=50 "
                  "compute-cap-percent=40\n",
                  false, "at least compute-percent"},
        ParseCase{"CapOutOfRange",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 "
                  "compute-cap-percent=101\n",
                  false, "compute-cap-percent must be an integer 1-100"},
        ParseCase{"NoVersionLine", "region /r\n", false, "must start with"},
        ParseCase{"FutureVersion", "gpuslice-limits 3\nregion /r\n", false, "unsupported"},
        ParseCase{"NoRegion", "gpuslice-limits 1\n", false, "missing 'region"},
        ParseCase{"RelativeRegion", "gpuslice-limits 1\nregion r\n", false, "absolute"},
        ParseCase{"RegionWithSpaces", "gpuslice-limits 1\nregion /run/a b\n", false,
                  "without spaces"},
        ParseCase{"UnknownKey", "gpuslice-limits 1\nregion /r\nmemory 5\n", false,
                  "line 3: unknown setting"},
        ParseCase{"DeviceWithoutMemory", "gpuslice-limits 1\nregion /r\ndevice index=0\n", false,
                  "needs memory-bytes"},
        ParseCase{"DeviceWithoutIdentity", "gpuslice-limits 1\nregion /r\ndevice memory-bytes=1\n",
                  false, "needs index or uuid"},
        ParseCase{"NegativeMemory",
                  "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=-1\n", false,
                  "non-negative"},
        ParseCase{
            "OverflowingMemory",
            "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=99999999999999999999\n",
            false, "non-negative"},
        ParseCase{"ComputeOutOfRange",
                  "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=1 compute-percent=0\n",
                  false, "1-100"},
        ParseCase{"DriverEnforcer",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 enforcer=driver\n",
                  true, ""},
        ParseCase{"ShimEnforcer",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 enforcer=shim\n",
                  true, ""},
        ParseCase{"UnknownEnforcer",
                  "gpuslice-limits 2\nregion /r\ndevice index=0 memory-bytes=1 enforcer=none\n",
                  false, "enforcer must be 'driver' or 'shim'"},
        ParseCase{"UnknownDeviceField",
                  "gpuslice-limits 1\nregion /r\ndevice index=0 memory-bytes=1 color=red\n", false,
                  "unknown device field"}),
    [](const ::testing::TestParamInfo<ParseCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(ContainerLimitsTest, APathWithANulByteIsRefused) {
  // Found by container_limits_fuzzer: it would not survive formatting and parsing again.
  const char text[] = "gpuslice-limits 1\nregion /r\0x\n";
  ContainerLimits limits;
  char error[256];
  EXPECT_FALSE(ParseContainerLimits(text, sizeof(text) - 1, &limits, error, sizeof(error)));
  EXPECT_NE(std::strstr(error, "without spaces"), nullptr) << error;
}

TEST(ContainerLimitsTest, FormatRoundTripsThroughTheParser) {
  ContainerLimits limits;
  std::strcpy(limits.region_path, "/run/gpuslice/c1/accounting");
  std::strcpy(limits.cuda_driver_path, "/usr/lib/libcuda.so.1");
  limits.context_overhead_bytes = 1234;
  limits.device_count = 2;
  limits.devices[0] = {0, "GPU-abc", 4ULL << 30, 50};
  limits.devices[1] = {3, "", 1ULL << 30, 100};
  std::strcpy(limits.devices[0].arbiter_path, "/run/gpuslice/gpu/GPU-abc/arbiter");
  std::strcpy(limits.devices[0].requests_path, "/run/gpuslice/compute-requests");
  limits.devices[0].compute_cap_percent = 60;
  limits.devices[1].driver_enforced = true;
  auto text = FormatContainerLimits(limits);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  ContainerLimits parsed;
  char error[256];
  ASSERT_TRUE(ParseContainerLimits(text->data(), text->size(), &parsed, error, sizeof(error)))
      << error << "\n"
      << *text;
  EXPECT_STREQ(parsed.region_path, limits.region_path);
  EXPECT_STREQ(parsed.cuda_driver_path, limits.cuda_driver_path);
  EXPECT_EQ(parsed.nvml_driver_path[0], '\0');
  EXPECT_EQ(parsed.context_overhead_bytes, 1234u);
  ASSERT_EQ(parsed.device_count, 2u);
  EXPECT_STREQ(parsed.devices[0].uuid, "GPU-abc");
  EXPECT_EQ(parsed.devices[0].memory_bytes, 4ULL << 30);
  EXPECT_EQ(parsed.devices[0].compute_percent, 50u);
  EXPECT_STREQ(parsed.devices[0].arbiter_path, "/run/gpuslice/gpu/GPU-abc/arbiter");
  EXPECT_STREQ(parsed.devices[0].requests_path, "/run/gpuslice/compute-requests");
  EXPECT_EQ(parsed.devices[0].compute_cap_percent, 60u);
  EXPECT_EQ(parsed.devices[1].arbiter_path[0], '\0');
  EXPECT_EQ(parsed.devices[1].compute_cap_percent, 0u);
  EXPECT_EQ(parsed.devices[1].nvml_index, 3);
  EXPECT_EQ(parsed.devices[1].uuid[0], '\0');
  EXPECT_FALSE(parsed.devices[0].driver_enforced);
  EXPECT_TRUE(parsed.devices[1].driver_enforced);
}

TEST(ContainerLimitsTest, WrittenFileIsReadOnlyAndReadsBack) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gpuslice-limits-test-" + std::to_string(::getpid())))
                               .string();
  ContainerLimits limits;
  std::strcpy(limits.region_path, "/r");
  limits.device_count = 1;
  limits.devices[0] = {0, "", 100, 100};
  ASSERT_TRUE(WriteContainerLimitsFile(path, limits).ok());
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                std::filesystem::perms::others_read);
  auto read = ReadContainerLimitsFile(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->devices[0].memory_bytes, 100u);
  std::filesystem::remove(path);
  EXPECT_FALSE(ReadContainerLimitsFile(path).ok());
}

struct QuantityCase {
  const char* text;
  bool ok;
  std::uint64_t bytes;
};

class ParseByteQuantityTest : public ::testing::TestWithParam<QuantityCase> {};

TEST_P(ParseByteQuantityTest, Parses) {
  std::uint64_t bytes = 0;
  EXPECT_EQ(ParseByteQuantity(GetParam().text, &bytes), GetParam().ok);
  if (GetParam().ok) {
    EXPECT_EQ(bytes, GetParam().bytes);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseByteQuantityTest,
    ::testing::Values(QuantityCase{"4096", true, 4096}, QuantityCase{"4Gi", true, 4ULL << 30},
                      QuantityCase{"512Mi", true, 512ULL << 20},
                      QuantityCase{"2G", true, 2000000000ULL}, QuantityCase{"0", true, 0},
                      QuantityCase{"", false, 0}, QuantityCase{"Gi", false, 0},
                      QuantityCase{"-1Gi", false, 0}, QuantityCase{"1.5Gi", false, 0},
                      QuantityCase{"99999999999Ti", false, 0}));

}  // namespace
}  // namespace gpuslice::shim
