// kubectl (the one on PATH; Debian's kubernetes-client provides it where the machine has none)
// against the fake API server: discovery, create -f, get -o json, get -w, annotate, label, patch.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include "command_runner.h"
#include "fake_cluster.h"

namespace gpuslice::kube {
namespace {

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kubectl_ = KubectlBinary();
    if (!CommandExists("command -v " + kubectl_))
      GTEST_SKIP() << kubectl_ << " is not installed (install Debian's kubernetes-client)";
    minor_version_ = KubectlMinorVersion(kubectl_);
  }
  CommandResult Kubectl(const std::string& args, int timeout_s = 30,
                        const std::function<void(const std::string&)>& on_line = {}) {
    return RunCommand(kubectl_ + " --kubeconfig " + cluster_.kubeconfig_path() + " --cache-dir " +
                          cluster_.dir() + "/cache " + args,
                      timeout_s, on_line);
  }
  std::string ValidateFlag() const { return KubectlValidateFlag(minor_version_); }

  std::string kubectl_;
  int minor_version_ = 0;
  Json GetPod(const std::string& name) {
    Result<Json> pod = cluster_.client().Get(Pod("default", name));
    EXPECT_TRUE(pod.ok()) << pod.status().ToString();
    return pod.ok() ? *pod : Json();
  }
  void CreatePod(const std::string& name) {
    ASSERT_TRUE(cluster_.client().Create(Pods("default"), PodManifest(name)).ok());
  }

  FakeCluster cluster_;
};

TEST_F(KubectlTest, DiscoveryListsCoreResourcesAndServerVersion) {
  CommandResult resources = Kubectl("api-resources");
  ASSERT_EQ(resources.exit_code, 0) << resources.output;
  EXPECT_NE(resources.output.find("pods "), std::string::npos) << resources.output;
  EXPECT_NE(resources.output.find(" po "), std::string::npos) << resources.output;
  EXPECT_NE(resources.output.find("nodes "), std::string::npos) << resources.output;
  CommandResult version = Kubectl("version -o json");
  ASSERT_EQ(version.exit_code, 0) << version.output;
  const Json parsed = Json::parse(version.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << version.output;
  EXPECT_EQ(parsed["serverVersion"]["gitVersion"], "v1.29.0-gpuslice-fake");
}

TEST_F(KubectlTest, CreateFromFileThenGetPodsAsJson) {
  const std::string manifest = cluster_.dir() + "/pod.yaml";
  std::ofstream(manifest) << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-file\n"
                             "  labels: {app: demo}\nspec:\n  containers:\n  - name: main\n"
                             "    image: busybox\n";
  CommandResult created = Kubectl("create -f " + manifest + ValidateFlag());
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_NE(created.output.find("pod/from-file created"), std::string::npos) << created.output;
  CommandResult got = Kubectl("get pods -o json");
  ASSERT_EQ(got.exit_code, 0) << got.output;
  const Json list = Json::parse(got.output, nullptr, false);
  ASSERT_FALSE(list.is_discarded()) << got.output;
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "from-file");
  EXPECT_EQ(list["items"][0]["metadata"]["labels"]["app"], "demo");
}

TEST_F(KubectlTest, GetWatchSeesAModification) {
  CreatePod("watched");
  std::mutex mutex;
  std::condition_variable cv;
  int lines = 0;  // "pod/watched" once for the initial list, once per change
  CommandResult result;
  std::thread watcher([&] {
    result = Kubectl("get pods -w -o name", 20, [&](const std::string& line) {
      std::lock_guard lock(mutex);
      if (line.find("pod/watched") != std::string::npos) ++lines;
      cv.notify_all();
    });
  });
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, std::chrono::seconds(15)));
  ASSERT_TRUE(cluster_.client()
                  .Patch(Pod("default", "watched"), PatchType::kMerge,
                         {{"metadata", {{"labels", {{"touched", "yes"}}}}}})
                  .ok());
  {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return lines >= 2; });
  }
  cluster_.server().BreakWatches();  // ends kubectl's watch, so the command exits
  watcher.join();
  EXPECT_EQ(lines, 2) << result.output;
}

TEST_F(KubectlTest, AnnotateLabelAndPatchChangeThePod) {
  CreatePod("p");
  CommandResult annotated = Kubectl("annotate pod p gpuslice.io/note=hello");
  ASSERT_EQ(annotated.exit_code, 0) << annotated.output;
  CommandResult labeled = Kubectl("label pod p tier=gpu");
  ASSERT_EQ(labeled.exit_code, 0) << labeled.output;
  Json pod = GetPod("p");
  EXPECT_EQ(pod["metadata"]["annotations"]["gpuslice.io/note"], "hello");
  EXPECT_EQ(pod["metadata"]["labels"]["tier"], "gpu");
  CommandResult strategic = Kubectl(
      "patch pod p -p '{\"spec\":{\"containers\":[{\"name\":\"main\",\"image\":\"b:2\"}]}}'");
  ASSERT_EQ(strategic.exit_code, 0) << strategic.output;
  CommandResult merge =
      Kubectl("patch pod p --type merge -p '{\"metadata\":{\"labels\":{\"m\":\"1\"}}}'");
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  CommandResult json = Kubectl(
      "patch pod p --type json -p '[{\"op\":\"remove\",\"path\":\"/metadata/labels/tier\"}]'");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  pod = GetPod("p");
  EXPECT_EQ(pod["spec"]["containers"][0]["image"], "b:2");
  EXPECT_EQ(pod["metadata"]["labels"]["m"], "1");
  EXPECT_FALSE(pod["metadata"]["labels"].contains("tier"));
  CommandResult missing = Kubectl("annotate pod nope a=b");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("pods \"nope\" not found"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace gpuslice::kube
