// The standalone gpuslice-fake-apiserver: it writes its port and a kubeconfig, serves the API and
// the HTTP knobs, and exits cleanly on SIGTERM.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "command_runner.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"

namespace gpuslice::kube {
namespace {

TEST(FakeApiServerBinaryTest, WritesKubeconfigServesKnobsAndExitsOnSigterm) {
  if (!CommandExists("command -v curl")) GTEST_SKIP() << "curl is not installed";
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("gpuslice-fakebin-" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  const std::string script = std::string(GPUSLICE_FAKE_APISERVER_BIN) + " --port-file " + dir +
                             "/port --kubeconfig-out " + dir +
                             "/kc & pid=$!; for i in $(seq 200); do [ -s " + dir +
                             "/port ] && break; sleep 0.05; done; "
                             "url=http://127.0.0.1:$(cat " +
                             dir +
                             "/port); "
                             "curl -sf $url/api/v1/namespaces/default >/dev/null && echo served; "
                             "curl -sf -d \"\" $url/fake/compact && echo; "
                             "kill -TERM $pid; wait $pid; echo exit=$?";
  const CommandResult result = RunCommand("sh -c '" + script + "'", 30);
  EXPECT_NE(result.output.find("served"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("{\"open\":0}"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("exit=0"), std::string::npos) << result.output;
  Result<KubeConfig> config = LoadKubeconfigFile(dir + "/kc");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server.rfind("http://127.0.0.1:", 0), 0u);
  EXPECT_EQ(config->token, "fake-token");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gpuslice::kube
