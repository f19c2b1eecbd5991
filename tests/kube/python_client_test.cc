// The Debian python3-kubernetes client against the fake API server: list, watch, and a Binding
// created with create_namespaced_binding (see python_client_test.py for the client's quirk).
#include <gtest/gtest.h>

#include "command_runner.h"
#include "fake_cluster.h"

namespace gpuslice::kube {
namespace {

TEST(PythonClientTest, ListWatchAndBindAgainstTheFake) {
  if (!CommandExists("/usr/bin/python3 -c 'import kubernetes'"))
    GTEST_SKIP()
        << "/usr/bin/python3 has no kubernetes module (install Debian's python3-kubernetes)";
  FakeCluster cluster;
  CommandResult result =
      RunCommand("/usr/bin/python3 " GPUSLICE_KUBE_TEST_DIR "/python_client_test.py " +
                     cluster.kubeconfig_path(),
                 60);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("python client: OK"), std::string::npos) << result.output;
  Result<Json> pod = cluster.client().Get(Pod("default", "bound-by-python"));
  ASSERT_TRUE(pod.ok()) << pod.status().ToString();
  EXPECT_EQ((*pod)["spec"]["nodeName"], "node-1");
  EXPECT_EQ((*pod)["metadata"]["annotations"]["gpuslice.io/gpu"], "GPU-1");
  std::printf("%s", result.output.c_str());  // records the observed client quirk in the log
}

}  // namespace
}  // namespace gpuslice::kube
