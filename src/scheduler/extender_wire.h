// The kube-scheduler extender wire format (k8s.io/kube-scheduler/extender/v1): request bodies
// in, response bodies out. Keys are read case-insensitively (as Go's encoding/json does) and
// written in the canonical PascalCase.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "scheduler/extender.h"

namespace gpuslice::scheduler {

// ExtenderArgs {Pod, Nodes (v1 NodeList) | NodeNames}.
struct ExtenderArgs {
  nlohmann::json pod;
  std::vector<std::string> node_names;  // from NodeNames, or the names of Nodes.items
  // Nodes.items when the scheduler sent whole nodes (nodeCacheCapable: false), to echo back.
  std::optional<std::vector<nlohmann::json>> node_objects;
};

inline constexpr std::size_t kMaxNodesPerRequest = 100000;

// Errors are InvalidArgument and say which key is wrong and what is expected.
Result<ExtenderArgs> ParseExtenderArgs(std::string_view body);
// ExtenderBindingArgs {PodName, PodNamespace, PodUID, Node}; all four must be non-empty strings.
Result<BindArgs> ParseBindingArgs(std::string_view body);

// ExtenderFilterResult; answers with Nodes when the request carried Nodes, else NodeNames.
nlohmann::json FilterResultJson(const FilterResult& result, const ExtenderArgs& args);
// ExtenderFilterResult with only Error set.
nlohmann::json FilterErrorJson(const std::string& message);
// HostPriorityList: [{"Host": ..., "Score": ...}].
nlohmann::json PriorityListJson(const std::vector<HostScore>& scores);
// ExtenderBindingResult {Error}; "" on success.
nlohmann::json BindingResultJson(const std::string& error);

}  // namespace gpuslice::scheduler
