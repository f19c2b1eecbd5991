// A static source of nodes and pods for gpuslice-scheduler until the Kubernetes API client is
// wired in: a JSON file holding v1 Nodes and Pods, and a BindingWriter that applies bindings to
// those pods in memory (what the API server and the informer would do).
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "scheduler/binding_writer.h"
#include "scheduler/extender.h"

namespace gpuslice::scheduler {

struct StaticObjects {
  std::vector<nlohmann::json> nodes;
  std::vector<nlohmann::json> pods;
};

// Accepts {"nodes": [...], "pods": [...]} or a v1 List (kubectl get nodes,pods -o json) whose
// items carry kind Node or Pod. Errors name the file and what is wrong.
Result<StaticObjects> ParseStaticObjects(std::string_view text, const std::string& source);
Result<StaticObjects> ReadStaticObjects(const std::string& path);

// Applies each Binding to its pod (spec.nodeName, annotations) and feeds the pod back to the
// extender, as a watch event would. Thread-safe.
class LoopbackBindingWriter final : public BindingWriter {
 public:
  explicit LoopbackBindingWriter(std::vector<nlohmann::json> pods);
  void Attach(Extender* extender);  // before the first Bind
  Status Bind(const BindingRequest& request) override;
  std::vector<nlohmann::json> Pods() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> pods_;  // by uid
  Extender* extender_ = nullptr;
};

}  // namespace gpuslice::scheduler
