#include "test_pod_resources.h"

#include <unistd.h>

namespace gpuslice::testing {

bool TestPodResources::Start() {
  ::unlink(socket_path_.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket_path_, grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  return server_ != nullptr;
}

void TestPodResources::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown();
  server_->Wait();
  server_.reset();
  ::unlink(socket_path_.c_str());
}

void TestPodResources::RecordAllocation(const std::string& pod_namespace,
                                        const std::string& pod_name, const std::string& container,
                                        const std::string& resource,
                                        const std::vector<std::string>& device_ids) {
  std::lock_guard<std::mutex> lock(mu_);
  pods_[{pod_namespace, pod_name}][container][resource] = device_ids;
}

void TestPodResources::ForgetPod(const std::string& pod_namespace, const std::string& pod_name) {
  std::lock_guard<std::mutex> lock(mu_);
  pods_.erase({pod_namespace, pod_name});
}

int TestPodResources::list_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return list_calls_;
}

void TestPodResources::Fill(const PodKey& key, const Containers& containers,
                            ::v1::PodResources* out) {
  out->set_namespace_(key.first);
  out->set_name(key.second);
  for (const auto& [name, resources] : containers) {
    auto* c = out->add_containers();
    c->set_name(name);
    for (const auto& [resource, ids] : resources) {
      auto* d = c->add_devices();
      d->set_resource_name(resource);
      for (const std::string& id : ids) d->add_device_ids(id);
    }
  }
}

grpc::Status TestPodResources::List(grpc::ServerContext* /*context*/,
                                    const ::v1::ListPodResourcesRequest* /*request*/,
                                    ::v1::ListPodResourcesResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  ++list_calls_;
  for (const auto& [key, containers] : pods_) Fill(key, containers, response->add_pod_resources());
  return grpc::Status::OK;
}

grpc::Status TestPodResources::Get(grpc::ServerContext* /*context*/,
                                   const ::v1::GetPodResourcesRequest* request,
                                   ::v1::GetPodResourcesResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pods_.find({request->pod_namespace(), request->pod_name()});
  if (it == pods_.end()) {
    // The kubelet's message for an unknown pod.
    return {grpc::StatusCode::NOT_FOUND,
            "pod " + request->pod_name() + " not found in namespace " + request->pod_namespace()};
  }
  Fill(it->first, it->second, response->mutable_pod_resources());
  return grpc::Status::OK;
}

}  // namespace gpuslice::testing
