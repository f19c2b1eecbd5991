#include "scheduler/kube_source.h"

#include <utility>
#include <vector>

#include "kube/api_status.h"
#include "scheduler/kube_objects.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;

// Why `pod` (as the API server holds it) is not the result of `request`, or "" when it is.
std::string DiffersFromBinding(const json& pod, const BindingRequest& request) {
  const json* metadata = FindKey(pod, "metadata");
  const json* spec = FindKey(pod, "spec");
  const std::string uid = metadata != nullptr ? StringKey(*metadata, "uid") : "";
  if (!request.pod_uid.empty() && uid != request.pod_uid) {
    return "the pod now has uid " + uid + ", not " + request.pod_uid + " (recreated)";
  }
  const std::string node = spec != nullptr ? StringKey(*spec, "nodeName") : "";
  if (node != request.node) return "it is bound to node '" + node + "'";
  const json* annotations = metadata != nullptr ? FindKey(*metadata, "annotations") : nullptr;
  for (const auto& [key, value] : request.annotations) {
    const auto it = annotations != nullptr && annotations->is_object() ? annotations->find(key)
                                                                       : json::const_iterator();
    if (annotations == nullptr || !annotations->is_object() || it == annotations->end() ||
        !it->is_string() || it->get<std::string>() != value) {
      return "its annotation " + key + " differs from this bind's";
    }
  }
  return "";
}

}  // namespace

Status KubeBindingWriter::Bind(const BindingRequest& request) {
  Status bound = kube::BindPod(api_, request.pod_namespace, request.pod_name, request.pod_uid,
                               request.node, request.annotations);
  if (bound.ok() || !kube::IsConflict(bound)) return bound;
  // 409: already bound (or recreated under the same name). Success only if it is this binding.
  Result<json> pod = api_.Get(kube::Pod(request.pod_namespace, request.pod_name));
  if (!pod.ok()) return bound;
  const std::string why = DiffersFromBinding(*pod, request);
  if (why.empty()) return Status::Ok();
  return FailedPrecondition(bound.message() + "; " + why);
}

KubeSource::KubeSource(kube::KubeApi& api, Extender& extender, KubeSourceOptions options)
    : extender_(extender), options_(std::move(options)) {
  kube::InformerHandlers node_handlers;
  node_handlers.on_added = [this](const json& node) {
    Apply([&] { return extender_.UpsertNode(node); });
  };
  node_handlers.on_modified = [this](const json&, const json& node) {
    Apply([&] { return extender_.UpsertNode(node); });
  };
  node_handlers.on_deleted = [this](const json& node) {
    const json* metadata = FindKey(node, "metadata");
    const std::string name = metadata != nullptr ? StringKey(*metadata, "name") : "";
    Apply([&] {
      extender_.DeleteNode(name);
      return Status::Ok();
    });
  };
  node_handlers.on_relisted = [this] { OnRelisted(); };

  kube::InformerHandlers pod_handlers;
  pod_handlers.on_added = [this](const json& pod) {
    Apply([&] { return extender_.UpsertPod(pod); });
  };
  pod_handlers.on_modified = [this](const json&, const json& pod) {
    Apply([&] { return extender_.UpsertPod(pod); });
  };
  pod_handlers.on_deleted = [this](const json& pod) {
    const json* metadata = FindKey(pod, "metadata");
    const std::string uid = metadata != nullptr ? StringKey(*metadata, "uid") : "";
    Apply([&] {
      extender_.DeletePod(uid);
      return Status::Ok();
    });
  };
  pod_handlers.on_relisted = [this] { OnRelisted(); };

  kube::InformerOptions node_options = options_.informer;
  node_options.label_selector.clear();
  node_options.field_selector.clear();
  kube::InformerOptions pod_options = node_options;
  pod_options.field_selector = std::string(kPodFieldSelector);
  nodes_ =
      std::make_unique<kube::Informer>(api, kube::Nodes(), node_options, std::move(node_handlers));
  pods_ = std::make_unique<kube::Informer>(api, kube::Pods(), pod_options, std::move(pod_handlers));
}

KubeSource::~KubeSource() { Stop(); }

void KubeSource::Start() {
  nodes_->Start();
  pods_->Start();
}

void KubeSource::Stop() {
  nodes_->Stop();
  pods_->Stop();
}

int KubeSource::rebuilds() const {
  std::lock_guard lock(mutex_);
  return rebuilds_;
}

void KubeSource::OnRelisted() {
  std::lock_guard lock(mutex_);
  // Ready only when both collections were listed once; until then events are not applied
  // either: the first rebuild reads both stores, which already hold them.
  if (!nodes_->HasSynced() || !pods_->HasSynced()) return;
  const std::vector<json> nodes = nodes_->List();
  const std::vector<json> pods = pods_->List();
  const SyncReport report = extender_.Rebuild(nodes, pods);
  rebuilt_ = true;
  ++rebuilds_;
  if (options_.on_problem) {
    for (const std::string& problem : report.problems) options_.on_problem(problem);
  }
  if (options_.on_rebuilt) options_.on_rebuilt(report);
}

void KubeSource::Apply(const std::function<Status()>& change) {
  std::lock_guard lock(mutex_);
  if (!rebuilt_) return;
  Report(change());
}

void KubeSource::Report(const Status& status) {
  if (!status.ok() && options_.on_problem) options_.on_problem(status.message());
}

}  // namespace gpuslice::scheduler
