// TestPodResources: the kubelet's PodResources v1 API (List, Get) over real gRPC on a Unix socket,
// for the node agent's hand-off tests. Like the kubelet's device manager, the test records a
// container's devices only after the plugin's Allocate succeeded (RecordAllocation), and forgets
// them when the pod is gone (ForgetPod); List shows exactly what is recorded.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "node_agent/pod_resources_api.grpc.pb.h"

namespace gpuslice::testing {

class TestPodResources final : public ::v1::PodResourcesLister::Service {
 public:
  explicit TestPodResources(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  ~TestPodResources() override { Stop(); }

  bool Start();
  void Stop();
  const std::string& socket_path() const { return socket_path_; }

  void RecordAllocation(const std::string& pod_namespace, const std::string& pod_name,
                        const std::string& container, const std::string& resource,
                        const std::vector<std::string>& device_ids);
  void ForgetPod(const std::string& pod_namespace, const std::string& pod_name);
  int list_calls() const;

  grpc::Status List(grpc::ServerContext* context, const ::v1::ListPodResourcesRequest* request,
                    ::v1::ListPodResourcesResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const ::v1::GetPodResourcesRequest* request,
                   ::v1::GetPodResourcesResponse* response) override;

 private:
  using PodKey = std::pair<std::string, std::string>;  // namespace, name
  // container -> resource -> device IDs
  using Containers = std::map<std::string, std::map<std::string, std::vector<std::string>>>;
  static void Fill(const PodKey& key, const Containers& containers, ::v1::PodResources* out);

  const std::string socket_path_;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::map<PodKey, Containers> pods_;
  int list_calls_ = 0;
};

}  // namespace gpuslice::testing
