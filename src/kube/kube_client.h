// KubeClient: KubeApi over HTTP(S) with libcurl. One client may be used from many threads; each
// call opens its own easy handle (connections are not shared between calls).
#pragma once

#include <memory>
#include <string>

#include "kube/kube_api.h"
#include "kube/kube_config.h"

namespace gpuslice::kube {

class KubeClient final : public KubeApi {
 public:
  // Fails when the config is unusable (no server, unreadable CA or client certificate file).
  static Result<std::unique_ptr<KubeClient>> Create(KubeConfig config);

  Result<Json> Get(const ResourceRef& ref) override;
  Result<Json> List(const ResourceRef& collection, const ListOptions& options) override;
  Status Watch(const ResourceRef& collection, const ListOptions& options,
               const WatchHandler& handler, const std::atomic<bool>& stop) override;
  Result<Json> Create(const ResourceRef& ref, const Json& object) override;
  Result<Json> Update(const ResourceRef& ref, const Json& object) override;
  Result<Json> Patch(const ResourceRef& ref, PatchType type, const Json& patch) override;
  Result<Json> Delete(const ResourceRef& ref) override;

  const KubeConfig& config() const { return config_; }

 private:
  explicit KubeClient(KubeConfig config) : config_(std::move(config)) {}

  // One non-streaming request; returns the parsed 2xx body or the API's error.
  Result<Json> Call(std::string_view method, const std::string& path_and_query,
                    std::string_view context, const std::string& body = "",
                    std::string_view content_type = "application/json");

  KubeConfig config_;
};

}  // namespace gpuslice::kube
