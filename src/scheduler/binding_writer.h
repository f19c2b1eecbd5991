// BindingWriter: how the extender binds a pod. The real one POSTs a v1 Binding to
// pods/<name>/binding (the annotations travel in the Binding's metadata, so the API server sets
// spec.nodeName and the annotations in one write); tests use an in-test fake.
#pragma once

#include <map>
#include <string>

#include "core/status.h"

namespace gpuslice::scheduler {

struct BindingRequest {
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;  // the Binding's metadata.uid precondition
  std::string node;
  std::map<std::string, std::string> annotations;
};

class BindingWriter {
 public:
  virtual ~BindingWriter() = default;
  // Creates the Binding. Thread-safe: called concurrently, without the extender's locks held.
  virtual Status Bind(const BindingRequest& request) = 0;
};

}  // namespace gpuslice::scheduler
