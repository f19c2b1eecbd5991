// DevicePluginServer: the kubelet device-plugin API (v1beta1) for one resource, served over gRPC
// on a Unix socket in the device-plugin directory and registered with the kubelet.
//
// What it serves (devices with their health, and how to allocate them) is a ResourceState that
// the agent replaces whole; ListAndWatch streams send the full device list whenever it changes.
// Thread-safe: gRPC threads read the state while the agent's loop replaces it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "node_agent/container_allocator.h"
#include "node_agent/device_plugin_api.grpc.pb.h"
#include "node_agent/preferred_allocator.h"

namespace gpuslice {

inline constexpr std::string_view kDevicePluginApiVersion = "v1beta1";
inline constexpr std::string_view kHealthy = "Healthy";
inline constexpr std::string_view kUnhealthy = "Unhealthy";

// Everything a server answers with for its resource at one moment.
struct ResourceState {
  v1beta1::ListAndWatchResponse devices;  // every device ID with health and NUMA node
  std::shared_ptr<const ContainerAllocator> allocator;
  std::shared_ptr<const PreferredAllocator> preferred;
  // Optional, after `allocator`: adds per-container isolation (driver tier, docs/isolation.md).
  std::function<Status(const std::vector<std::string>& ids, v1beta1::ContainerAllocateResponse&)>
      decorate;
  // Runs after the allocator for each container (the fractional hand-off: mounts the
  // per-allocation directory); an error refuses the Allocate.
  std::function<Status(const std::vector<std::string>& ids,
                       v1beta1::ContainerAllocateResponse& response)>
      after_allocate;
};

class DevicePluginServer final : public v1beta1::DevicePlugin::Service {
 public:
  // Serves `resource_name` on <plugin_dir>/<SocketNameFor(resource_name)>.
  DevicePluginServer(std::string resource_name, std::string plugin_dir);
  ~DevicePluginServer() override;

  // "nvidia.com/mig-1g.5gb" -> "gpuslice-nvidia.com_mig-1g.5gb.sock".
  static std::string SocketNameFor(std::string_view resource_name);

  // Replaces what the server answers with; wakes ListAndWatch streams if the device list (IDs,
  // health or topology) changed.
  void SetState(std::shared_ptr<const ResourceState> state);
  std::shared_ptr<const ResourceState> state() const;

  // Listens on the socket (a stale socket file is removed first).
  Status Start();
  // Registers with the kubelet at `kubelet_socket`.
  Status Register(const std::string& kubelet_socket, std::chrono::milliseconds timeout);
  // Ends the streams, stops serving and removes the socket. Idempotent.
  void Stop();

  bool serving() const { return server_ != nullptr; }
  bool registered() const { return registered_; }
  const std::string& resource_name() const { return resource_name_; }
  std::string socket_path() const;
  // Number of device-list changes so far (tests, benchmarks).
  std::uint64_t version() const;

  // v1beta1.DevicePlugin
  grpc::Status GetDevicePluginOptions(grpc::ServerContext* context, const v1beta1::Empty* request,
                                      v1beta1::DevicePluginOptions* response) override;
  grpc::Status ListAndWatch(grpc::ServerContext* context, const v1beta1::Empty* request,
                            grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override;
  grpc::Status GetPreferredAllocation(grpc::ServerContext* context,
                                      const v1beta1::PreferredAllocationRequest* request,
                                      v1beta1::PreferredAllocationResponse* response) override;
  grpc::Status Allocate(grpc::ServerContext* context, const v1beta1::AllocateRequest* request,
                        v1beta1::AllocateResponse* response) override;
  grpc::Status PreStartContainer(grpc::ServerContext* context,
                                 const v1beta1::PreStartContainerRequest* request,
                                 v1beta1::PreStartContainerResponse* response) override;

 private:
  const std::string resource_name_;
  const std::string plugin_dir_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::shared_ptr<const ResourceState> state_;
  std::uint64_t version_ = 0;
  bool stopping_ = false;

  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> registered_{false};
};

}  // namespace gpuslice
