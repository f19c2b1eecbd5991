// ClusterSide: the node agent's Kubernetes API half (issue 13 parts 5 and 7), composed in one
// place for main: the API client, the Node's `gpuslice.io/gpus` capacity annotation, the node
// label source for named configs, and the Allocate -> PodResources -> limits-file hand-off with
// memory-watchdog registration. Off unless a node name is given (--node-name / NODE_NAME).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "isolation/isolation_manager.h"
#include "kube/kube_api.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/config_source.h"
#include "node_agent/kube_event_sink.h"
#include "node_agent/node_agent.h"
#include "node_agent/node_capacity.h"
#include "watchdog/memory_watchdog.h"

namespace gpuslice {

// Annotation `key` of `pod` read from the API server: "" when the pod has none. NotFound when
// the pod does not exist or has another UID than pod.uid (a pod recreated under the same name);
// the API's error when the server cannot be reached.
Result<std::string> PodAnnotationFromApi(kube::KubeApi& api, const PodRef& pod,
                                         const std::string& key);

// `lookup` that, after an unreachable or failing API server (any error but NotFound), answers
// Unavailable at once for `backoff` instead of asking again: each lookup waits up to its timeout,
// and the agent's loop must not spend that on every container created meanwhile.
PodAnnotationSource PodLookupWithBackoff(
    PodAnnotationSource lookup, std::chrono::milliseconds backoff,
    std::function<std::chrono::steady_clock::time_point()> now = std::chrono::steady_clock::now);

struct ClusterSideOptions {
  std::string node_name;
  std::string kubeconfig;  // "": in-cluster config, else $KUBECONFIG / ~/.kube/config
  std::string pod_resources_socket = "/var/lib/kubelet/pod-resources/kubelet.sock";
  HandoffOptions handoff;  // node_name is filled in from node_name
  CgroupDriver cgroup_driver = CgroupDriver::kSystemd;
  std::chrono::milliseconds publish_retry{5000};
  // Bounds of the pod lookups the isolation tier makes from the agent's loop
  // (MakePodAnnotationSource): connect and whole-request timeouts of their own client.
  std::chrono::milliseconds pod_lookup_connect_timeout{1000};
  std::chrono::milliseconds pod_lookup_timeout{2000};
  std::chrono::milliseconds pod_lookup_backoff{10000};  // PodLookupWithBackoff
};

class ClusterSide {
 public:
  // Connects the client (no request is made yet). `api` may be given (tests); else one is built
  // from the kubeconfig or in-cluster config.
  static Result<std::unique_ptr<ClusterSide>> Create(ClusterSideOptions options,
                                                     std::unique_ptr<kube::KubeApi> api = nullptr);
  ~ClusterSide();

  // The named-config label source backed by the Node's labels in the API server.
  std::unique_ptr<NodeLabelSource> MakeLabelSource();
  // Pod annotations for the isolation tier (an MPS v3 container's client priority when its
  // bundle lacks it; docs/isolation.md), read with a client bounded by pod_lookup_*timeout (the
  // given `api` in tests).
  PodAnnotationSource MakePodAnnotationSource();
  // Hooks the agent (capacity publishing, the Allocate hand-off); call before agent.Start().
  void Attach(NodeAgent& agent);
  // Registers limited containers with `watchdog` (may be null: not registered), and their pods
  // with event_sink(), so the watchdog's breaches and kills become Events on the pod.
  void AttachWatchdog(watchdog::MemoryWatchdog* watchdog);
  // The sink to build the watchdog with: logs every event and posts a core/v1 Event on the pod
  // of a container registered by AttachWatchdog (docs/shim.md).
  KubeEventSink& event_sink() { return *event_sink_; }
  // Starts the reconciler thread.
  void Start();
  // Once per agent loop turn: retries a failed capacity publish (at most every publish_retry).
  void Tick();
  void Stop();

  kube::KubeApi& api() { return *api_; }
  AllocationHandoff& handoff() { return *handoff_; }
  NodeCapacityPublisher& publisher() { return *publisher_; }

 private:
  explicit ClusterSide(ClusterSideOptions options) : options_(std::move(options)) {}

  ClusterSideOptions options_;
  std::unique_ptr<kube::KubeApi> api_;
  std::unique_ptr<kube::KubeApi> lookup_api_;  // short timeouts; null: api_ (tests)
  std::unique_ptr<GrpcPodResources> pod_resources_;
  std::unique_ptr<NodeCapacityPublisher> publisher_;
  std::unique_ptr<AllocationHandoff> handoff_;
  std::unique_ptr<KubeEventSink> event_sink_;
  std::chrono::steady_clock::time_point last_retry_{};
};

}  // namespace gpuslice
