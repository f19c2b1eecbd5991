// An in-process MpsV3Control for the manager's unit tests: namespaces per server in a map, with
// the name rules of the v3 interface (unique names, "default" reserved) and a call log.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "isolation/mps_v3.h"

namespace gpuslice::testing {

class InMemoryMpsV3 final : public MpsV3Control {
 public:
  Status CreateNamespace(const MpsV3Namespace& ns) override {
    GPUSLICE_RETURN_IF_ERROR(ValidateMpsV3Name(ns.server));
    GPUSLICE_RETURN_IF_ERROR(ValidateMpsV3Name(ns.name));
    auto& list = servers[ns.server];
    if (list.count(ns.name) > 0) return AlreadyExists("namespace " + ns.name + " exists");
    list[ns.name] = ns;
    ++creates;
    return Status::Ok();
  }
  Status DeleteNamespace(const std::string& server, const std::string& name) override {
    servers[server].erase(name);
    ++deletes;
    return Status::Ok();
  }
  Result<std::vector<MpsV3Namespace>> ListNamespaces(const std::string& server) override {
    std::vector<MpsV3Namespace> out;
    for (const auto& [name, ns] : servers[server]) out.push_back(ns);
    return out;
  }
  std::map<std::string, std::map<std::string, MpsV3Namespace>> servers;
  int creates = 0;
  int deletes = 0;
};

}  // namespace gpuslice::testing
