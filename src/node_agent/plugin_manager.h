// PluginManager: one DevicePluginServer per advertised resource, kept in line with what the agent
// advertises. Resources that stay get their new state in place (their ListAndWatch streams see
// the new list, nothing restarts); new ones are started and registered; gone ones are stopped
// and their sockets removed. Not thread-safe; the agent's loop owns it.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node_agent/device_plugin_server.h"

namespace gpuslice {

class PluginManager {
 public:
  PluginManager(std::string plugin_dir, std::string kubelet_socket);
  ~PluginManager();

  // Brings the servers in line with `states` (resource name -> what to serve). Registration
  // failures are logged and retried by RegisterPending, not returned: the kubelet may be down.
  Status Reconcile(const std::map<std::string, std::shared_ptr<const ResourceState>>& states);
  // Replaces every server with a fresh one on a new socket and registers it (the kubelet
  // restarted, and a restarting kubelet removes plugin sockets).
  Status RestartAll();
  // Retries registration for servers not registered yet, at most once per `min_interval`.
  void RegisterPending(std::chrono::milliseconds min_interval);
  void StopAll();

  std::vector<std::string> resource_names() const;
  DevicePluginServer* Find(const std::string& resource_name) const;

 private:
  Status StartServer(const std::string& name, std::shared_ptr<const ResourceState> state);

  const std::string plugin_dir_;
  const std::string kubelet_socket_;
  std::map<std::string, std::unique_ptr<DevicePluginServer>> servers_;
  std::chrono::steady_clock::time_point last_register_attempt_{};
};

}  // namespace gpuslice
