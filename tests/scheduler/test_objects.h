// v1 Node and Pod JSON as the API server (and kube-scheduler's HTTPExtender) send them, and a
// fake BindingWriter that behaves like the API server's pods/binding: it records the Binding and
// returns the pod as the watch would then show it (spec.nodeName and annotations set together).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/resource_names.h"
#include "scheduler/binding_writer.h"
#include "scheduler/kube_objects.h"

namespace gpuslice::scheduler::testing {

using nlohmann::json;

inline constexpr std::int64_t kGiB = std::int64_t{1} << 30;

inline json MakeNode(const std::string& name, int gpus, const std::string& model = "A100",
                     std::int64_t memory_bytes = 16 * kGiB) {
  std::vector<NodeGpu> list;
  for (int i = 0; i < gpus; ++i) {
    list.push_back({i, "GPU-" + name + "-" + std::to_string(i), model, memory_bytes});
  }
  json node = {{"kind", "Node"},
               {"apiVersion", "v1"},
               {"metadata",
                {{"name", name},
                 {"uid", "node-uid-" + name},
                 {"resourceVersion", "100"},
                 {"labels", {{"kubernetes.io/hostname", name}}}}},
               {"spec", json::object()},
               {"status",
                {{"capacity", {{"cpu", "64"}, {"memory", "256Gi"}, {"pods", "110"}}},
                 {"allocatable", {{"cpu", "63500m"}, {"memory", "250Gi"}, {"pods", "110"}}}}}};
  if (gpus > 0) {
    node["metadata"]["annotations"][std::string(names::kAnnotationNodeGpus)] = EncodeNodeGpus(list);
  }
  return node;
}

struct PodShape {
  std::string memory = {};   // gpuslice.io/gpu-memory, "" = none
  std::string compute = {};  // gpuslice.io/gpu-compute, "" = none
  std::string gpus = {};     // gpuslice.io/gpu, "" = none
  std::string models = {};   // gpuslice.io/gpu-models annotation, "" = none
};

inline json MakePod(const std::string& name, const PodShape& shape,
                    const std::string& namespace_name = "team-a") {
  json limits = json::object();
  if (!shape.gpus.empty()) limits[std::string(names::kGpusliceGpu)] = shape.gpus;
  if (!shape.memory.empty()) limits[std::string(names::kGpusliceGpuMemory)] = shape.memory;
  if (!shape.compute.empty()) limits[std::string(names::kGpusliceGpuCompute)] = shape.compute;
  json pod = {{"kind", "Pod"},
              {"apiVersion", "v1"},
              {"metadata",
               {{"name", name},
                {"namespace", namespace_name},
                {"uid", "uid-" + name},
                {"resourceVersion", "7"},
                {"creationTimestamp", "2026-12-01T14:00:00Z"}}},
              {"spec",
               {{"schedulerName", "gpuslice-scheduler"},
                {"containers",
                 {{{"name", "main"},
                   {"image", "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"},
                   {"resources", {{"limits", limits}, {"requests", limits}}}}}},
                {"restartPolicy", "Always"}}},
              {"status", {{"phase", "Pending"}, {"qosClass", "BestEffort"}}}};
  if (!shape.models.empty()) {
    pod["metadata"]["annotations"][std::string(names::kAnnotationPodGpuModels)] = shape.models;
  }
  return pod;
}

// Records Bindings; optionally fails them. Thread-safe.
class FakeBindingWriter final : public BindingWriter {
 public:
  Status Bind(const BindingRequest& request) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (!fail_with_.ok()) return fail_with_;
    bindings_.push_back(request);
    return Status::Ok();
  }
  void FailWith(Status status) {
    std::lock_guard lock(mutex_);
    fail_with_ = std::move(status);
  }
  std::vector<BindingRequest> bindings() const {
    std::lock_guard lock(mutex_);
    return bindings_;
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<BindingRequest> bindings_;
  Status fail_with_;
  int calls_ = 0;
};

// `pod` as the API server shows it after `binding`: spec.nodeName and annotations set at once.
inline json BoundPod(json pod, const BindingRequest& binding,
                     const std::string& phase = "Running") {
  pod["spec"]["nodeName"] = binding.node;
  for (const auto& [key, value] : binding.annotations) pod["metadata"]["annotations"][key] = value;
  pod["status"]["phase"] = phase;
  return pod;
}

}  // namespace gpuslice::scheduler::testing
