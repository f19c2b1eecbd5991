#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "node_agent/atomic_file.h"
#include "node_agent/cdi_spec_writer.h"
#include "node_agent/feature_file_writer.h"
#include "temp_dir.h"
#include "test_nodes.h"

namespace gpuslice {
namespace {

using testing::TempDir;

std::uint64_t Inode(const std::string& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return static_cast<std::uint64_t>(st.st_ino);
}

TEST(FeatureFileWriterTest, WritesSortedKeyValueLinesOnlyWhenChanged) {
  TempDir dir;
  FeatureFileWriter writer(dir / "features.d/gpuslice");
  const std::map<std::string, std::string> labels = {{"nvidia.com/gpu.product", "A100"},
                                                     {"nvidia.com/gpu.count", "4"}};
  auto wrote = writer.Write(labels);
  ASSERT_TRUE(wrote.ok()) << wrote.status().ToString();
  EXPECT_TRUE(*wrote);
  EXPECT_EQ(ReadFileOrEmpty(writer.path()),
            "nvidia.com/gpu.count=4\nnvidia.com/gpu.product=A100\n");
  const std::uint64_t inode = Inode(writer.path());
  wrote = writer.Write(labels);
  ASSERT_TRUE(wrote.ok());
  EXPECT_FALSE(*wrote);
  EXPECT_EQ(Inode(writer.path()), inode);  // untouched

  wrote = writer.Write({{"nvidia.com/gpu.count", "3"}});
  ASSERT_TRUE(wrote.ok());
  EXPECT_TRUE(*wrote);
  EXPECT_EQ(ReadFileOrEmpty(writer.path()), "nvidia.com/gpu.count=3\n");
  // Replaced by rename, so readers never see a partly written file; no temp files left behind.
  EXPECT_NE(Inode(writer.path()), inode);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir / "features.d")) {
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(AtomicFileTest, ReportsUnwritableDirectory) {
  Status s = WriteFileAtomically("/proc/gpuslice-cannot-write/x", "y");
  EXPECT_FALSE(s.ok());
}

TEST(CdiSpecWriterTest, ListsEveryDeviceByIndexAndUuid) {
  const std::vector<GpuInfo> gpus = testing::GpusOf(testing::kA100WithMig);
  const GpuInfo& mig_gpu = gpus[2];
  const MigDeviceInfo& mig = mig_gpu.mig_devices[0];
  const std::string gi =
      "gpu" + std::to_string(mig_gpu.minor_number) + "/gi" + std::to_string(mig.gpu_instance_id);
  const std::map<std::string, int> minors = {{gi + "/access", 21}};
  TempDir dir;
  CdiSpecWriter writer(dir.path());
  auto wrote = writer.Write(gpus, minors);
  ASSERT_TRUE(wrote.ok());
  EXPECT_TRUE(*wrote);
  EXPECT_FALSE(*writer.Write(gpus, minors));
  const nlohmann::json spec = nlohmann::json::parse(ReadFileOrEmpty(writer.path()));
  EXPECT_EQ(spec["kind"], "nvidia.com/gpu");
  EXPECT_TRUE(spec.contains("cdiVersion"));
  std::map<std::string, std::vector<std::string>> nodes;
  for (const auto& d : spec["devices"]) {
    for (const auto& n : d["containerEdits"]["deviceNodes"]) {
      nodes[d["name"].get<std::string>()].push_back(n["path"].get<std::string>());
    }
  }
  const std::string gpu0 = "/dev/nvidia" + std::to_string(gpus[0].minor_number);
  EXPECT_EQ(nodes["0"], std::vector<std::string>{gpu0});
  EXPECT_EQ(nodes[gpus[0].uuid], std::vector<std::string>{gpu0});
  const std::vector<std::string> mig_nodes = {"/dev/nvidia" + std::to_string(mig_gpu.minor_number),
                                              "/dev/nvidia-caps/nvidia-cap21"};
  EXPECT_EQ(nodes["2:0"], mig_nodes);
  EXPECT_EQ(nodes[mig.uuid], mig_nodes);
  EXPECT_EQ(nodes["all"].size(), gpus.size());
  EXPECT_EQ(spec["containerEdits"]["deviceNodes"].size(), 3u);
}

}  // namespace
}  // namespace gpuslice
