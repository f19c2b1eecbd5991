// ApiNodeLabelSource: the node's labels from the Kubernetes API server, for NamedConfigSource
// (issue 13 part 7: the GPU Operator's `nvidia.com/device-plugin.config` label picks the named
// configuration). An informer lists and watches the one Node (fieldSelector metadata.name=<node>),
// so a label change reaches the agent's next config poll without a request per poll, and a broken
// watch is resumed or relisted by the informer.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kube/informer.h"
#include "kube/kube_api.h"
#include "node_agent/config_source.h"

namespace gpuslice {

class ApiNodeLabelSource final : public NodeLabelSource {
 public:
  // Starts watching `node_name` through `api` (which must outlive the source). The first Get
  // waits up to `sync_timeout` for the first list.
  ApiNodeLabelSource(kube::KubeApi& api, std::string node_name,
                     std::chrono::milliseconds sync_timeout = std::chrono::seconds(10));
  ~ApiNodeLabelSource() override;

  // The label's value; "" when the node or the label does not exist. Unavailable while the
  // first list has not succeeded (the API server is unreachable, RBAC refuses `nodes list`).
  Result<std::string> Get(const std::string& key) override;

 private:
  const std::string node_name_;
  const std::chrono::milliseconds sync_timeout_;
  std::unique_ptr<kube::Informer> informer_;
  bool waited_ = false;
};

}  // namespace gpuslice
