// FakeCluster: a FakeApiServer on loopback, its kubeconfig in a temporary file, and a KubeClient
// built from that kubeconfig, for the kube tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"

namespace gpuslice::kube {

class FakeCluster {
 public:
  explicit FakeCluster(fake::FakeApiServerOptions options = {}) : server_(std::move(options)) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "gpuslice-kube-XXXXXX").string();
    dir_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
    const Status started = server_.Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    kubeconfig_path_ = dir_ + "/kubeconfig";
    std::ofstream(kubeconfig_path_) << server_.Kubeconfig();
    Result<KubeConfig> config = LoadKubeconfigFile(kubeconfig_path_);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    config->request_timeout = std::chrono::milliseconds(5000);
    Result<std::unique_ptr<KubeClient>> client = KubeClient::Create(*config);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(*client);
  }
  ~FakeCluster() {
    server_.Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  fake::FakeApiServer& server() { return server_; }
  KubeClient& client() { return *client_; }
  const std::string& kubeconfig_path() const { return kubeconfig_path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  fake::FakeApiServer server_;
  std::string kubeconfig_path_;
  std::unique_ptr<KubeClient> client_;
};

// Server options with a bounded event history and a bookmark cadence.
inline fake::FakeApiServerOptions FakeOptions(std::size_t max_history,
                                              std::chrono::milliseconds bookmark_interval) {
  fake::FakeApiServerOptions options;
  options.max_history = max_history;
  options.bookmark_interval = bookmark_interval;
  return options;
}

// A minimal pod manifest.
inline Json PodManifest(const std::string& name, const Json& labels = Json::object(),
                        const std::string& node = "") {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"labels", labels}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", "busybox"}}}}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  return pod;
}

inline std::string VersionOf(const Json& object) {
  return object["metadata"]["resourceVersion"].get<std::string>();
}

}  // namespace gpuslice::kube
