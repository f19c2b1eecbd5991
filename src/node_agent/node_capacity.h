// What the node offers to fractional pods, published on its Node as the annotation
// `gpuslice.io/gpus` (format v1, docs/scheduler.md) for the scheduler extender.
//
// FractionalCapacity lists the healthy GPUs whose `gpuslice.io/gpu` slots the agent advertises
// (the config's `gpuslice.fractional`). NodeCapacityPublisher writes that list to the Node with
// a merge patch when it differs from what it last wrote; an empty list removes the annotation
// (the node is then not a gpuslice GPU node for the extender).
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/advertised_resources.h"
#include "core/gpu.h"
#include "core/gpu_annotations.h"
#include "core/status.h"
#include "kube/kube_api.h"

namespace gpuslice {

// The fractional GPUs of `advertisement` that are healthy per `healthy(device)`, sorted by
// index, with the model as the `nvidia.com/gpu.product` label spells it and their full memory.
std::vector<NodeGpu> FractionalCapacity(
    const NodeAdvertisement& advertisement, const std::vector<GpuInfo>& gpus,
    const std::function<bool(const AdvertisedDevice&)>& healthy);

// The annotation's value for `gpus`; "" for none (the annotation is removed).
std::string NodeGpusAnnotation(const std::vector<NodeGpu>& gpus);

class NodeCapacityPublisher {
 public:
  // `api` must outlive the publisher.
  NodeCapacityPublisher(kube::KubeApi& api, std::string node_name)
      : api_(api), node_name_(std::move(node_name)) {}

  // Patches the Node when `gpus` differs from the last successful write (or none was made).
  // Thread-safe. An error leaves the next call to retry.
  Status Publish(const std::vector<NodeGpu>& gpus);
  // Retries the last failed Publish, if any (the control loop calls it).
  Status RetryPending();

  const std::string& node_name() const { return node_name_; }

 private:
  Status PublishLocked(const std::string& value);

  kube::KubeApi& api_;
  const std::string node_name_;
  std::mutex mu_;
  bool written_ = false;
  std::string written_value_;
  bool pending_ = false;
  std::string pending_value_;
};

}  // namespace gpuslice
