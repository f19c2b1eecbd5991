// InstallOciHook and OciHookCommand (src/node_agent/oci_hook_install.*): the static hook copied
// from the image into a host directory, and the argv the CDI spec gets for each way of naming
// the hook. The agent doing both end to end: isolation_integration_test.cc.
#include "node_agent/oci_hook_install.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "node_agent/atomic_file.h"
#include "temp_dir.h"

namespace gpuslice {
namespace {

using testing::TempDir;

TEST(InstallOciHookTest, CopiesExecutableAndReplacesByRenameSoARunningCopyStaysIntact) {
  TempDir dir;
  const std::string image = std::filesystem::path(GPUSLICE_OCI_HOOK).parent_path().string();
  Result<std::string> installed = InstallOciHook(image, dir / "host");
  ASSERT_TRUE(installed.ok()) << installed.status().ToString();
  EXPECT_EQ(*installed, dir / "host/gpuslice-oci-hook");
  // Binaries: compared as a boolean, so a failure does not print megabytes.
  EXPECT_TRUE(ReadFileOrEmpty(*installed) == ReadFileOrEmpty(GPUSLICE_OCI_HOOK)) << *installed;
  struct stat before {};
  ASSERT_EQ(::stat(installed->c_str(), &before), 0);
  EXPECT_EQ(before.st_mode & 0777, 0755u);
  // Unchanged source: the file is left alone (same inode), its mode repaired.
  ::chmod(installed->c_str(), 0600);
  ASSERT_TRUE(InstallOciHook(image, dir / "host").ok());
  struct stat same {};
  ASSERT_EQ(::stat(installed->c_str(), &same), 0);
  EXPECT_EQ(same.st_ino, before.st_ino);
  EXPECT_EQ(same.st_mode & 0777, 0755u);
  // A new image: a new inode; a hook running from the old copy (an open descriptor) keeps it.
  std::filesystem::create_directories(dir / "image");
  std::filesystem::copy_file(GPUSLICE_OCI_HOOK, dir / "image/gpuslice-oci-hook");
  std::ofstream(dir / "image/gpuslice-oci-hook", std::ios::app) << "new build";
  std::ifstream old_copy(*installed, std::ios::binary);
  const std::string old_bytes = ReadFileOrEmpty(*installed);
  ASSERT_TRUE(InstallOciHook(dir / "image", dir / "host").ok());
  struct stat after {};
  ASSERT_EQ(::stat(installed->c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode & 0777, 0755u);
  std::string still((std::istreambuf_iterator<char>(old_copy)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(still == old_bytes);
  EXPECT_TRUE(ReadFileOrEmpty(*installed) == ReadFileOrEmpty(dir / "image/gpuslice-oci-hook"));
}

TEST(InstallOciHookTest, MissingSourceSaysWhichFlagAndWhatToDo) {
  TempDir dir;
  Result<std::string> installed = InstallOciHook(dir / "nothing", dir / "host");
  ASSERT_FALSE(installed.ok());
  const std::string message = installed.status().message();
  EXPECT_NE(message.find("--install-hook-from"), std::string::npos) << message;
  EXPECT_NE(message.find(dir / "nothing/gpuslice-oci-hook"), std::string::npos) << message;
  EXPECT_NE(message.find("--hook-path"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(dir / "host/gpuslice-oci-hook"));
}

TEST(OciHookCommandTest, InstalledHookUsesItsOwnFormHookPathTheAgentsForm) {
  EXPECT_EQ(OciHookCommand("/var/lib/gpuslice/bin/gpuslice-oci-hook", false, "/iso/spool", "/cg"),
            (std::vector<std::string>{"/var/lib/gpuslice/bin/gpuslice-oci-hook", "create-container",
                                      "--spool-dir", "/iso/spool", "--cgroup-mount", "/cg"}));
  EXPECT_EQ(OciHookCommand("/usr/bin/gpuslice-node-agent", true, "/iso/spool", "/cg"),
            (std::vector<std::string>{"/usr/bin/gpuslice-node-agent", "hook", "create-container",
                                      "--spool-dir", "/iso/spool", "--cgroup-mount", "/cg"}));
}

}  // namespace
}  // namespace gpuslice
