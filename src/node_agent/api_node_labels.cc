#include "node_agent/api_node_labels.h"

namespace gpuslice {

ApiNodeLabelSource::ApiNodeLabelSource(kube::KubeApi& api, std::string node_name,
                                       std::chrono::milliseconds sync_timeout)
    : node_name_(std::move(node_name)), sync_timeout_(sync_timeout) {
  kube::InformerOptions options;
  options.field_selector = "metadata.name=" + node_name_;
  informer_ =
      std::make_unique<kube::Informer>(api, kube::Nodes(), options, kube::InformerHandlers{});
  informer_->Start();
}

ApiNodeLabelSource::~ApiNodeLabelSource() { informer_->Stop(); }

Result<std::string> ApiNodeLabelSource::Get(const std::string& key) {
  if (!informer_->HasSynced()) {
    // Wait once (at start); later polls do not block the agent's loop.
    const bool synced = !waited_ && informer_->WaitForSync(sync_timeout_);
    waited_ = true;
    if (!synced) {
      return Unavailable("node " + node_name_ +
                         ": no answer yet from the Kubernetes API server for its labels (check "
                         "--kubeconfig or the in-cluster service account, and RBAC: nodes "
                         "get/list/watch)");
    }
  }
  std::optional<kube::Json> node = informer_->Get(node_name_);
  if (!node) return std::string();
  const kube::Json* labels = nullptr;
  if (auto m = node->find("metadata"); m != node->end() && m->is_object()) {
    if (auto l = m->find("labels"); l != m->end() && l->is_object()) labels = &*l;
  }
  if (labels == nullptr) return std::string();
  auto value = labels->find(key);
  if (value == labels->end() || !value->is_string()) return std::string();
  return value->get<std::string>();
}

}  // namespace gpuslice
