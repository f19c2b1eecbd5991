#include "scheduler/extender_wire.h"

#include <utility>

#include "scheduler/kube_objects.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;

Result<json> ParseBody(std::string_view body, std::string_view what) {
  json value = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return InvalidArgument(std::string(what) + ": body is not valid JSON");
  if (!value.is_object()) {
    return InvalidArgument(std::string(what) + ": body must be a JSON object, got " +
                           std::string(value.type_name()));
  }
  return value;
}

}  // namespace

Result<ExtenderArgs> ParseExtenderArgs(std::string_view body) {
  constexpr std::string_view kWhat = "ExtenderArgs";
  GPUSLICE_ASSIGN_OR_RETURN(const json value, ParseBody(body, kWhat));
  ExtenderArgs args;
  const json* pod = FindKey(value, "Pod");
  if (pod == nullptr || !pod->is_object()) {
    return InvalidArgument("ExtenderArgs: 'Pod' must be a v1 Pod object");
  }
  args.pod = *pod;
  const json* names = FindKey(value, "NodeNames");
  const json* nodes = FindKey(value, "Nodes");
  if (names != nullptr && !names->is_null()) {
    if (!names->is_array()) return InvalidArgument("ExtenderArgs: 'NodeNames' must be a list");
    if (names->size() > kMaxNodesPerRequest) {
      return InvalidArgument("ExtenderArgs: more than 100000 node names");
    }
    for (const json& name : *names) {
      if (!name.is_string()) return InvalidArgument("ExtenderArgs: 'NodeNames' holds a non-string");
      args.node_names.push_back(name.get<std::string>());
    }
  } else if (nodes != nullptr && !nodes->is_null()) {
    const json* items = FindKey(*nodes, "items");
    if (items == nullptr || !(items->is_array() || items->is_null())) {
      return InvalidArgument("ExtenderArgs: 'Nodes' must be a v1 NodeList with 'items'");
    }
    args.node_objects.emplace();
    if (items->is_array()) {
      if (items->size() > kMaxNodesPerRequest) {
        return InvalidArgument("ExtenderArgs: more than 100000 nodes");
      }
      for (const json& node : *items) {
        const json* metadata = FindKey(node, "metadata");
        const std::string name = metadata != nullptr ? StringKey(*metadata, "name") : "";
        if (name.empty()) return InvalidArgument("ExtenderArgs: a node in 'Nodes' has no name");
        args.node_names.push_back(name);
        args.node_objects->push_back(node);
      }
    }
  }
  return args;
}

Result<BindArgs> ParseBindingArgs(std::string_view body) {
  GPUSLICE_ASSIGN_OR_RETURN(const json value, ParseBody(body, "ExtenderBindingArgs"));
  BindArgs args;
  const std::pair<std::string_view, std::string*> fields[] = {{"PodName", &args.pod_name},
                                                              {"PodNamespace", &args.pod_namespace},
                                                              {"PodUID", &args.pod_uid},
                                                              {"Node", &args.node}};
  for (const auto& [key, target] : fields) {
    *target = StringKey(value, key);
    if (target->empty()) {
      return InvalidArgument("ExtenderBindingArgs: '" + std::string(key) +
                             "' must be a non-empty string");
    }
  }
  return args;
}

json FilterResultJson(const FilterResult& result, const ExtenderArgs& args) {
  json out = {{"Nodes", nullptr},
              {"NodeNames", nullptr},
              {"FailedNodes", result.failed},
              {"FailedAndUnresolvableNodes", result.unresolvable},
              {"Error", ""}};
  if (args.node_objects) {
    json items = json::array();
    std::size_t next = 0;
    for (std::size_t i = 0; i < args.node_names.size() && next < result.nodes.size(); ++i) {
      if (args.node_names[i] == result.nodes[next]) {
        items.push_back((*args.node_objects)[i]);
        ++next;
      }
    }
    out["Nodes"] = {{"metadata", json::object()}, {"items", items}};
  } else {
    out["NodeNames"] = result.nodes;
  }
  return out;
}

json FilterErrorJson(const std::string& message) {
  return {{"Nodes", nullptr},
          {"NodeNames", nullptr},
          {"FailedNodes", nullptr},
          {"FailedAndUnresolvableNodes", nullptr},
          {"Error", message}};
}

json PriorityListJson(const std::vector<HostScore>& scores) {
  json out = json::array();
  for (const HostScore& score : scores)
    out.push_back({{"Host", score.host}, {"Score", score.score}});
  return out;
}

json BindingResultJson(const std::string& error) { return {{"Error", error}}; }

}  // namespace gpuslice::scheduler
