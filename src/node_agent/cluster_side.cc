#include "node_agent/cluster_side.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "node_agent/api_node_labels.h"
#include "node_agent/atomic_file.h"

namespace gpuslice {

Result<std::string> PodAnnotationFromApi(kube::KubeApi& api, const PodRef& pod,
                                         const std::string& key) {
  GPUSLICE_ASSIGN_OR_RETURN(kube::Json object, api.Get(kube::Pod(pod.namespace_name, pod.name)));
  const kube::Json& metadata = object.value("metadata", kube::Json::object());
  if (!pod.uid.empty() && metadata.value("uid", std::string()) != pod.uid) {
    return NotFound("pod " + pod.Describe() + " in the API server has UID " +
                    metadata.value("uid", std::string()) + ", not the container's " + pod.uid +
                    " (that pod was deleted and another created under its name)");
  }
  const kube::Json annotations = metadata.value("annotations", kube::Json::object());
  auto it = annotations.find(key);
  if (it == annotations.end()) return std::string();
  if (!it->is_string())
    return InvalidArgument("pod " + pod.Describe() + ": " + key + " is not a string");
  return it->get<std::string>();
}

PodAnnotationSource PodLookupWithBackoff(
    PodAnnotationSource lookup, std::chrono::milliseconds backoff,
    std::function<std::chrono::steady_clock::time_point()> now) {
  struct State {
    std::mutex mu;
    std::chrono::steady_clock::time_point failed_at{};
    std::string error;  // "" = the last lookup reached the API server
  };
  auto state = std::make_shared<State>();
  return [lookup = std::move(lookup), backoff, now = std::move(now), state](
             const PodRef& pod, const std::string& key) -> Result<std::string> {
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (!state->error.empty() && now() - state->failed_at < backoff) {
        return Unavailable("not asked: the API server failed less than " +
                           std::to_string(backoff.count()) + " ms ago (" + state->error + ")");
      }
    }
    Result<std::string> value = lookup(pod, key);
    std::lock_guard<std::mutex> lock(state->mu);
    const bool failed = !value.ok() && value.status().code() != ErrorCode::kNotFound;
    state->error = failed ? value.status().ToString() : "";
    if (failed) state->failed_at = now();
    return value;
  };
}

PodAnnotationSource ClusterSide::MakePodAnnotationSource() {
  kube::KubeApi* api = lookup_api_ != nullptr ? lookup_api_.get() : api_.get();
  return PodLookupWithBackoff(
      [api](const PodRef& pod, const std::string& key) {
        return PodAnnotationFromApi(*api, pod, key);
      },
      options_.pod_lookup_backoff);
}

Result<std::unique_ptr<ClusterSide>> ClusterSide::Create(ClusterSideOptions options,
                                                         std::unique_ptr<kube::KubeApi> api) {
  if (options.node_name.empty()) {
    return InvalidArgument("the node name is empty (give --node-name or NODE_NAME)");
  }
  // Fractional containers get the shims; without them they would run unlimited.
  GPUSLICE_RETURN_IF_ERROR(CheckShimDir(options.handoff.shim_dir));
  std::unique_ptr<ClusterSide> side(new ClusterSide(std::move(options)));
  if (api == nullptr) {
    Result<kube::KubeConfig> config = kube::LoadDefaultConfig(side->options_.kubeconfig);
    if (!config.ok()) return config.status().WithContext("Kubernetes API configuration");
    GPUSLICE_ASSIGN_OR_RETURN(std::unique_ptr<kube::KubeClient> client,
                              kube::KubeClient::Create(*config));
    api = std::move(client);
    // The isolation tier looks pods up from the agent's loop: a client that gives up quickly.
    kube::KubeConfig lookup = *config;
    lookup.connect_timeout = side->options_.pod_lookup_connect_timeout;
    lookup.request_timeout = side->options_.pod_lookup_timeout;
    GPUSLICE_ASSIGN_OR_RETURN(side->lookup_api_, kube::KubeClient::Create(lookup));
  }
  side->api_ = std::move(api);
  side->publisher_ = std::make_unique<NodeCapacityPublisher>(*side->api_, side->options_.node_name);
  side->pod_resources_ = std::make_unique<GrpcPodResources>(side->options_.pod_resources_socket);
  HandoffOptions handoff = side->options_.handoff;
  handoff.node_name = side->options_.node_name;
  side->handoff_ = std::make_unique<AllocationHandoff>(handoff, *side->api_, *side->pod_resources_);
  side->event_sink_ = std::make_unique<KubeEventSink>(
      *side->api_, side->options_.node_name, watchdog::WatchdogOptions{}.kill_grace, true,
      [](const std::string& line) { spdlog::warn("{}", line); });
  return side;
}

ClusterSide::~ClusterSide() { Stop(); }

std::unique_ptr<NodeLabelSource> ClusterSide::MakeLabelSource() {
  return std::make_unique<ApiNodeLabelSource>(*api_, options_.node_name);
}

void ClusterSide::Attach(NodeAgent& agent) {
  agent.SetPublishListener([this](const NodeAdvertisement& advertisement,
                                  const std::vector<GpuInfo>& gpus,
                                  const std::function<bool(const AdvertisedDevice&)>& healthy) {
    const std::vector<NodeGpu> capacity = FractionalCapacity(advertisement, gpus, healthy);
    handoff_->SetGpus(capacity);
    if (Status s = publisher_->Publish(capacity); !s.ok()) {
      spdlog::error("{} (retried every {} ms)", s.message(), options_.publish_retry.count());
    }
  });
  agent.SetFractionalAllocateHook(
      [this](const std::vector<std::string>& ids, v1beta1::ContainerAllocateResponse& response) {
        return handoff_->PrepareAllocation(ids, response);
      });
}

void ClusterSide::AttachWatchdog(watchdog::MemoryWatchdog* watchdog) {
  if (watchdog == nullptr) return;
  handoff_->SetLimitsListener([this, watchdog](const HandoffResult& result) {
    watchdog::WatchedContainer container;
    container.name = result.pod + "/" + result.container;
    container.cgroup = PodCgroupPath(options_.cgroup_driver, result.pod_uid, result.qos_class);
    if (container.cgroup.empty()) {
      spdlog::warn("{}: unknown pod UID or QoS class; the memory watchdog does not cover it",
                   container.name);
      return;
    }
    container.limit_bytes = result.limit_bytes;  // the same figures as the limits file
    spdlog::info("memory watchdog watches {} (cgroup {})", container.name, container.cgroup);
    const std::size_t slash = result.pod.find('/');
    event_sink_->SetPod(container.name,
                        {slash == std::string::npos ? "" : result.pod.substr(0, slash),
                         slash == std::string::npos ? result.pod : result.pod.substr(slash + 1),
                         result.pod_uid, result.container});
    watchdog->Watch(std::move(container));
  });
  handoff_->SetReleasedListener([this, watchdog](const HandoffResult& result) {
    watchdog->Unwatch(result.pod + "/" + result.container);
    event_sink_->ForgetPod(result.pod + "/" + result.container);
  });
  event_sink_->SetKillPolicy(watchdog->options().kill_grace, watchdog->options().kill);
}

void ClusterSide::Start() { handoff_->Start(); }

void ClusterSide::Tick() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_retry_ < options_.publish_retry) return;
  last_retry_ = now;
  if (Status s = publisher_->RetryPending(); !s.ok()) spdlog::error("{}", s.message());
}

void ClusterSide::Stop() {
  if (handoff_ != nullptr) handoff_->Stop();
}

}  // namespace gpuslice
