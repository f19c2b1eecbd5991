// TestKubelet: the kubelet's side of the device-plugin API over real gRPC, for tests and
// benchmarks. It serves v1beta1.Registration on <dir>/kubelet.sock and, like the kubelet, talks
// to each registered plugin as a DevicePlugin client (ListAndWatch stream, Allocate,
// GetPreferredAllocation).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node_agent/device_plugin_api.grpc.pb.h"

namespace gpuslice::testing {

// A DevicePlugin client for one plugin socket, with a background ListAndWatch reader.
class PluginClient {
 public:
  explicit PluginClient(std::string socket_path);
  ~PluginClient();

  // Opens the ListAndWatch stream; every response replaces latest().
  void StartWatching();
  void StopWatching();
  // Waits until the latest device list satisfies `pred`; false on timeout.
  bool WaitForDevices(const std::function<bool(const v1beta1::ListAndWatchResponse&)>& pred,
                      std::chrono::milliseconds timeout);
  // Waits for the next response after `seen` responses; false on timeout.
  bool WaitForUpdate(int seen, std::chrono::milliseconds timeout);
  v1beta1::ListAndWatchResponse latest() const;
  int updates() const;

  grpc::Status GetOptions(v1beta1::DevicePluginOptions* out);
  grpc::Status Allocate(const std::vector<std::vector<std::string>>& containers,
                        v1beta1::AllocateResponse* out);
  grpc::Status GetPreferredAllocation(const std::vector<std::string>& available,
                                      const std::vector<std::string>& must_include, int size,
                                      std::vector<std::string>* out);

 private:
  std::string socket_path_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  v1beta1::ListAndWatchResponse latest_;
  int updates_ = 0;
  std::unique_ptr<grpc::ClientContext> watch_context_;
  std::thread watcher_;
};

class TestKubelet final : public v1beta1::Registration::Service {
 public:
  explicit TestKubelet(std::string plugin_dir);
  ~TestKubelet() override;

  // Serves Registration on <plugin_dir>/kubelet.sock (replacing a stale file).
  bool Start();
  // Stops serving and removes kubelet.sock.
  void Stop();

  grpc::Status Register(grpc::ServerContext* context, const v1beta1::RegisterRequest* request,
                        v1beta1::Empty* response) override;

  std::vector<v1beta1::RegisterRequest> registrations() const;
  // Waits until `resource_name` has registered at least `count` times; false on timeout.
  bool WaitForRegistration(const std::string& resource_name, int count,
                           std::chrono::milliseconds timeout);
  // A client for the endpoint `resource_name` last registered (nullptr when it has not).
  std::unique_ptr<PluginClient> Connect(const std::string& resource_name) const;

  std::string socket_path() const { return plugin_dir_ + "/kubelet.sock"; }

 private:
  const std::string plugin_dir_;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1beta1::RegisterRequest> registrations_;
};

}  // namespace gpuslice::testing
