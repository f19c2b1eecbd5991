#include "node_agent/plugin_manager.h"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace gpuslice {
namespace {
constexpr std::chrono::milliseconds kRegisterTimeout(2000);
}  // namespace

PluginManager::PluginManager(std::string plugin_dir, std::string kubelet_socket)
    : plugin_dir_(std::move(plugin_dir)), kubelet_socket_(std::move(kubelet_socket)) {}

PluginManager::~PluginManager() { StopAll(); }

Status PluginManager::StartServer(const std::string& name,
                                  std::shared_ptr<const ResourceState> state) {
  auto server = std::make_unique<DevicePluginServer>(name, plugin_dir_);
  server->SetState(std::move(state));
  GPUSLICE_RETURN_IF_ERROR(server->Start());
  if (std::filesystem::exists(kubelet_socket_)) {
    Status s = server->Register(kubelet_socket_, kRegisterTimeout);
    if (!s.ok()) spdlog::error("{}; will retry", s.message());
  } else {
    spdlog::warn("kubelet socket {} does not exist yet; {} registers when it appears",
                 kubelet_socket_, name);
  }
  servers_[name] = std::move(server);
  return Status::Ok();
}

Status PluginManager::Reconcile(
    const std::map<std::string, std::shared_ptr<const ResourceState>>& states) {
  for (auto it = servers_.begin(); it != servers_.end();) {
    if (states.count(it->first)) {
      ++it;
      continue;
    }
    spdlog::info("{} is no longer advertised; stopping its server", it->first);
    it->second->Stop();
    it = servers_.erase(it);
  }
  Status first_error;
  for (const auto& [name, state] : states) {
    auto found = servers_.find(name);
    if (found != servers_.end()) {
      found->second->SetState(state);
      continue;
    }
    Status s = StartServer(name, state);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

Status PluginManager::RestartAll() {
  std::map<std::string, std::shared_ptr<const ResourceState>> states;
  for (auto& [name, server] : servers_) {
    states[name] = server->state();
    server->Stop();
  }
  servers_.clear();
  Status first_error;
  for (const auto& [name, state] : states) {
    Status s = StartServer(name, state);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

void PluginManager::RegisterPending(std::chrono::milliseconds min_interval) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_register_attempt_ < min_interval) return;
  bool any = false;
  for (auto& [name, server] : servers_) any = any || !server->registered();
  if (!any || !std::filesystem::exists(kubelet_socket_)) return;
  last_register_attempt_ = now;
  for (auto& [name, server] : servers_) {
    if (server->registered()) continue;
    Status s = server->Register(kubelet_socket_, kRegisterTimeout);
    if (!s.ok()) spdlog::warn("{}; will retry", s.message());
  }
}

void PluginManager::StopAll() {
  for (auto& [name, server] : servers_) server->Stop();
  servers_.clear();
}

std::vector<std::string> PluginManager::resource_names() const {
  std::vector<std::string> out;
  for (const auto& [name, server] : servers_) out.push_back(name);
  return out;
}

DevicePluginServer* PluginManager::Find(const std::string& resource_name) const {
  auto it = servers_.find(resource_name);
  return it == servers_.end() ? nullptr : it->second.get();
}

}  // namespace gpuslice
