#include "fake_apiserver/patches.h"

#include <map>
#include <string>

namespace gpuslice::fake {
namespace {

using Json = nlohmann::json;

// Kubernetes' patchMergeKey for the list fields gpuslice and kubectl touch.
std::string MergeKeyFor(const std::string& field) {
  static const std::map<std::string, std::string> kKeys = {
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"volumes", "name"},
      {"env", "name"},
      {"imagePullSecrets", "name"},
      {"ports", "containerPort"},
      {"volumeMounts", "mountPath"},
      {"conditions", "type"},
      {"addresses", "type"},
      {"containerStatuses", "name"},
  };
  const auto it = kKeys.find(field);
  return it == kKeys.end() ? "" : it->second;
}

Json StrategicMerge(Json target, const Json& patch);

Json MergeList(Json target, const Json& patch, const std::string& key) {
  for (const Json& item : patch) {
    if (!item.is_object() || !item.contains(key)) {
      target.push_back(item);
      continue;
    }
    auto match = std::find_if(target.begin(), target.end(), [&](const Json& existing) {
      return existing.is_object() && existing.contains(key) && existing[key] == item[key];
    });
    const bool remove = item.value("$patch", "") == "delete";
    if (match == target.end()) {
      if (!remove) target.push_back(StrategicMerge(Json::object(), item));
    } else if (remove) {
      target.erase(match);
    } else {
      *match = StrategicMerge(*match, item);
    }
  }
  return target;
}

Json StrategicMerge(Json target, const Json& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = Json::object();
  for (const auto& [field, value] : patch.items()) {
    if (field == "$patch" || field.rfind("$setElementOrder/", 0) == 0) continue;
    if (value.is_null()) {
      target.erase(field);
      continue;
    }
    const std::string key = MergeKeyFor(field);
    const auto existing = target.find(field);
    if (value.is_array() && !key.empty() && existing != target.end() && existing->is_array()) {
      target[field] = MergeList(*existing, value, key);
    } else if (value.is_object()) {
      target[field] = StrategicMerge(existing != target.end() ? *existing : Json(), value);
    } else {
      target[field] = value;
    }
  }
  return target;
}

}  // namespace

Result<Json> ApplyPatch(std::string_view content_type, const Json& target, const Json& patch) {
  const std::string type(content_type.substr(0, content_type.find(';')));
  try {
    if (type == "application/merge-patch+json") {
      if (!patch.is_object()) return InvalidArgument("a merge patch must be a JSON object");
      Json result = target;
      result.merge_patch(patch);
      return result;
    }
    if (type == "application/strategic-merge-patch+json") {
      if (!patch.is_object())
        return InvalidArgument("a strategic merge patch must be a JSON object");
      return StrategicMerge(target, patch);
    }
    if (type == "application/json-patch+json") {
      if (!patch.is_array()) return InvalidArgument("a JSON patch must be an array of operations");
      return target.patch(patch);
    }
  } catch (const Json::exception& e) {
    return InvalidArgument(std::string("the patch cannot be applied: ") + e.what());
  }
  return FailedPrecondition(
      "the body of a PATCH must be application/merge-patch+json, "
      "application/strategic-merge-patch+json or "
      "application/json-patch+json, not '" +
      type + "'");
}

}  // namespace gpuslice::fake
