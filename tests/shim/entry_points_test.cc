// The one entry-point list per shim agrees with what the built library exports (nm -D) and with
// the generated linker version script; both shims carry the SONAME they stand in for.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string RunCommand(const std::string& command) {
  std::array<char, 4096> buffer{};
  std::string output;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return output;
  while (std::fgets(buffer.data(), buffer.size(), pipe.get()) != nullptr) output += buffer.data();
  return output;
}

std::set<std::string> ListNames(const std::string& def_path) {
  std::ifstream in(def_path);
  std::set<std::string> names;
  const std::regex entry(R"(^GPUSLICE_[A-Z]+_(INTERCEPT|FORWARD)\(([A-Za-z0-9_]+))");
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, entry)) names.insert(m[2]);
  }
  return names;
}

std::set<std::string> ExportedNames(const std::string& library) {
  std::istringstream lines(RunCommand("nm -D --defined-only " + library));
  std::set<std::string> names;
  std::string address, type, name;
  while (lines >> address >> type >> name) names.insert(name);
  return names;
}

std::set<std::string> VersionScriptNames(const std::string& map_path) {
  std::ifstream in(map_path);
  std::set<std::string> names;
  const std::regex global(R"(^\s+([A-Za-z0-9_]+);\s*$)");
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, global)) names.insert(m[1]);
  }
  return names;
}

struct ShimCase {
  const char* name;
  const char* def;
  const char* library;
  const char* map;
  const char* soname;
  std::size_t min_symbols;
};
void PrintTo(const ShimCase& c, std::ostream* os) { *os << c.name; }

class EntryPointsTest : public ::testing::TestWithParam<ShimCase> {};

TEST_P(EntryPointsTest, ListLibraryAndVersionScriptAgree) {
  const ShimCase& c = GetParam();
  const std::set<std::string> listed = ListNames(c.def);
  ASSERT_GE(listed.size(), c.min_symbols);
  EXPECT_EQ(ExportedNames(c.library), listed) << "nm -D " << c.library;
  EXPECT_EQ(VersionScriptNames(c.map), listed) << c.map;
}

TEST_P(EntryPointsTest, CarriesTheDriversSoname) {
  const ShimCase& c = GetParam();
  const std::string dynamic = RunCommand(std::string("readelf -d ") + c.library);
  EXPECT_NE(dynamic.find(std::string("Library soname: [") + c.soname + "]"), std::string::npos)
      << dynamic;
  EXPECT_NE(dynamic.find("BIND_NOW"), std::string::npos) << "built with -z now";
}

INSTANTIATE_TEST_SUITE_P(
    Shims, EntryPointsTest,
    ::testing::Values(ShimCase{"Cuda", GPUSLICE_SOURCE_DIR "/src/shim/cuda_entry_points.def",
                               GPUSLICE_CUDA_SHIM_PATH, GPUSLICE_CUDA_SHIM_MAP, "libcuda.so.1",
                               600},
                      ShimCase{"Nvml", GPUSLICE_SOURCE_DIR "/src/shim/nvml_entry_points.def",
                               GPUSLICE_NVML_SHIM_PATH, GPUSLICE_NVML_SHIM_MAP, "libnvidia-ml.so.1",
                               250}),
    [](const ::testing::TestParamInfo<ShimCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(EntryPointsTest, EveryMemoryPathTheIssueNamesIsIntercepted) {
  const std::string def = GPUSLICE_SOURCE_DIR "/src/shim/cuda_entry_points.def";
  std::ifstream in(def);
  std::stringstream text;
  text << in.rdbuf();
  for (const char* name :
       {"cuMemAlloc_v2",       "cuMemAllocPitch_v2",      "cuMemAllocManaged",
        "cuMemAllocAsync",     "cuMemAllocFromPoolAsync", "cuMemCreate",
        "cuArrayCreate_v2",    "cuArray3DCreate_v2",      "cuMipmappedArrayCreate",
        "cuMemFree_v2",        "cuMemFreeAsync",          "cuMemRelease",
        "cuArrayDestroy",      "cuMipmappedArrayDestroy", "cuMemGetInfo_v2",
        "cuDeviceTotalMem_v2", "cuGetProcAddress",        "cuGetProcAddress_v2",
        "cuLaunchKernel",      "cuLaunchKernelEx",        "cuLaunchCooperativeKernel",
        "cuGraphLaunch"}) {
    EXPECT_NE(text.str().find(std::string("GPUSLICE_CUDA_INTERCEPT(") + name + ","),
              std::string::npos)
        << name;
  }
}

}  // namespace
