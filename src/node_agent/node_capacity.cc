#include "node_agent/node_capacity.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "core/resource_names.h"

namespace gpuslice {

std::vector<NodeGpu> FractionalCapacity(
    const NodeAdvertisement& advertisement, const std::vector<GpuInfo>& gpus,
    const std::function<bool(const AdvertisedDevice&)>& healthy) {
  const AdvertisedResource* slots = advertisement.Find(names::kGpusliceGpu);
  if (slots == nullptr) return {};
  // A GPU is offered when it has at least one healthy slot (health is per GPU, so all or none).
  std::map<int, bool> offered;  // gpu index -> any healthy slot
  for (const AdvertisedDevice& d : slots->devices) {
    offered[d.gpu_index] = offered[d.gpu_index] || healthy(d);
  }
  std::vector<NodeGpu> out;
  for (const GpuInfo& gpu : gpus) {
    auto it = offered.find(gpu.index);
    if (it == offered.end() || !it->second || gpu.memory_bytes == 0) continue;
    out.push_back({gpu.index, gpu.uuid, SanitiseLabelValue(gpu.product_name),
                   static_cast<std::int64_t>(gpu.memory_bytes)});
  }
  std::sort(out.begin(), out.end(),
            [](const NodeGpu& a, const NodeGpu& b) { return a.index < b.index; });
  return out;
}

std::string NodeGpusAnnotation(const std::vector<NodeGpu>& gpus) {
  return gpus.empty() ? std::string() : EncodeNodeGpus(gpus);
}

Status NodeCapacityPublisher::Publish(const std::vector<NodeGpu>& gpus) {
  std::lock_guard<std::mutex> lock(mu_);
  return PublishLocked(NodeGpusAnnotation(gpus));
}

Status NodeCapacityPublisher::RetryPending() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_) return Status::Ok();
  return PublishLocked(pending_value_);
}

Status NodeCapacityPublisher::PublishLocked(const std::string& value) {
  if (written_ && value == written_value_) {
    pending_ = false;
    return Status::Ok();
  }
  kube::Json annotation = value.empty() ? kube::Json(nullptr) : kube::Json(value);
  const kube::Json patch = {
      {"metadata", {{"annotations", {{std::string(names::kAnnotationNodeGpus), annotation}}}}}};
  Result<kube::Json> patched = api_.Patch(kube::Node(node_name_), kube::PatchType::kMerge, patch);
  if (!patched.ok()) {
    pending_ = true;
    pending_value_ = value;
    return Status(patched.status().code(),
                  "cannot publish " + std::string(names::kAnnotationNodeGpus) + " on node " +
                      node_name_ + ": " + patched.status().message());
  }
  written_ = true;
  written_value_ = value;
  pending_ = false;
  spdlog::info("node {}: {} {}", node_name_, names::kAnnotationNodeGpus,
               value.empty() ? std::string("removed (no fractional GPUs)") : "= " + value);
  return Status::Ok();
}

}  // namespace gpuslice
