// The Kubernetes API as gpuslice-scheduler's node and pod source and binding target.
//
// KubeBindingWriter: BindingWriter over kube::BindPod: one POST pods/<name>/binding carrying the
// node and the gpuslice.io/assignment annotation, with the pod's UID as a precondition. A 409
// because the pod is already bound is success when the pod is bound to the same node with the
// same annotations (a retried bind whose first write landed), and an error otherwise.
//
// KubeSource: two informers (nodes; pods of all namespaces that are not Succeeded/Failed) feeding
// an Extender. The extender is marked synced (verbs and /readyz answer) only once both initial
// lists arrived: then, and after every later relist (410 Expired, a broken watch, a failed
// request), the extender's whole cache is rebuilt from both informers' stores, so a pod deleted
// while a watch was broken releases its share. Watch events in between are applied one by one.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "kube/informer.h"
#include "kube/kube_api.h"
#include "scheduler/binding_writer.h"
#include "scheduler/extender.h"

namespace gpuslice::scheduler {

class KubeBindingWriter final : public BindingWriter {
 public:
  explicit KubeBindingWriter(kube::KubeApi& api) : api_(api) {}
  Status Bind(const BindingRequest& request) override;

 private:
  kube::KubeApi& api_;
};

// The pods informer's field selector: terminal pods hold nothing, and a pod turning terminal
// leaves the selection (the watch then sends DELETED), as kube-scheduler's own informer does.
inline constexpr std::string_view kPodFieldSelector =
    "status.phase!=Succeeded,status.phase!=Failed";

struct KubeSourceOptions {
  kube::InformerOptions informer;  // backoff, watch timeout; selectors are set by KubeSource
  // Called with every problem a sync or an event reports (unusable node or pod annotations).
  std::function<void(const std::string&)> on_problem;
  // Called after each full rebuild with its report (logging, tests).
  std::function<void(const SyncReport&)> on_rebuilt;
};

class KubeSource {
 public:
  KubeSource(kube::KubeApi& api, Extender& extender, KubeSourceOptions options = {});
  ~KubeSource();  // Stop()s
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  void Start();  // starts both informers' list+watch loops
  void Stop();   // stops both and joins their threads

  // How many full rebuilds of the extender ran (the first one marks it synced).
  int rebuilds() const;
  kube::InformerStats NodeStats() const { return nodes_->Stats(); }
  kube::InformerStats PodStats() const { return pods_->Stats(); }

 private:
  void OnRelisted();
  void Apply(const std::function<Status()>& change);
  void Report(const Status& status);

  Extender& extender_;
  const KubeSourceOptions options_;
  std::unique_ptr<kube::Informer> nodes_;
  std::unique_ptr<kube::Informer> pods_;

  // Serialises rebuilds and event application, so a rebuild from a store snapshot cannot
  // overwrite a newer event (each informer updates its store before calling the handler).
  mutable std::mutex mutex_;
  bool rebuilt_ = false;
  int rebuilds_ = 0;
};

}  // namespace gpuslice::scheduler
