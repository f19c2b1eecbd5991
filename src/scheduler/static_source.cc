#include "scheduler/static_source.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "scheduler/kube_objects.h"

namespace gpuslice::scheduler {

using nlohmann::json;

Result<StaticObjects> ParseStaticObjects(std::string_view text, const std::string& source) {
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    return InvalidArgument(source + ": not a JSON object");
  }
  StaticObjects objects;
  if (const json* items = FindKey(value, "items"); items != nullptr && items->is_array()) {
    for (const json& item : *items) {
      const std::string kind = StringKey(item, "kind");
      if (kind == "Node") {
        objects.nodes.push_back(item);
      } else if (kind == "Pod") {
        objects.pods.push_back(item);
      } else {
        return InvalidArgument(source + ": list item of kind '" + kind + "'; accepted: Node, Pod");
      }
    }
    return objects;
  }
  for (const auto& [key, target] :
       {std::pair{"nodes", &objects.nodes}, std::pair{"pods", &objects.pods}}) {
    const json* list = FindKey(value, key);
    if (list == nullptr) continue;
    if (!list->is_array()) return InvalidArgument(source + ": '" + key + "' must be a list");
    target->assign(list->begin(), list->end());
  }
  return objects;
}

Result<StaticObjects> ReadStaticObjects(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot read state file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return ParseStaticObjects(text.str(), path);
}

LoopbackBindingWriter::LoopbackBindingWriter(std::vector<json> pods) {
  for (json& pod : pods) {
    const json* metadata = FindKey(pod, "metadata");
    const std::string uid = metadata != nullptr ? StringKey(*metadata, "uid") : "";
    if (!uid.empty()) pods_[uid] = std::move(pod);
  }
}

void LoopbackBindingWriter::Attach(Extender* extender) {
  std::lock_guard lock(mutex_);
  extender_ = extender;
}

Status LoopbackBindingWriter::Bind(const BindingRequest& request) {
  json pod;
  Extender* extender = nullptr;
  {
    std::lock_guard lock(mutex_);
    const auto it = pods_.find(request.pod_uid);
    if (it == pods_.end()) {
      return NotFound("pod uid " + request.pod_uid + " is not in the state file");
    }
    json& stored = it->second;
    if (stored["spec"].value("nodeName", "") != "") {
      return FailedPrecondition("pod " + request.pod_name + " is already bound");
    }
    stored["spec"]["nodeName"] = request.node;
    for (const auto& [key, value] : request.annotations) {
      stored["metadata"]["annotations"][key] = value;
    }
    pod = stored;
    extender = extender_;
  }
  if (extender != nullptr) return extender->UpsertPod(pod);
  return Status::Ok();
}

std::vector<json> LoopbackBindingWriter::Pods() const {
  std::lock_guard lock(mutex_);
  std::vector<json> out;
  for (const auto& [uid, pod] : pods_) out.push_back(pod);
  return out;
}

}  // namespace gpuslice::scheduler
