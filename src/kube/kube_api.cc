#include "kube/kube_api.h"

#include <array>

#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

void AddParam(std::string& query, std::string_view key, std::string_view value) {
  query += query.empty() ? '?' : '&';
  query += key;
  query += '=';
  query += UrlEncode(value);
}

constexpr std::array<std::pair<WatchEventType, std::string_view>, 5> kEventNames = {{
    {WatchEventType::kAdded, "ADDED"},
    {WatchEventType::kModified, "MODIFIED"},
    {WatchEventType::kDeleted, "DELETED"},
    {WatchEventType::kBookmark, "BOOKMARK"},
    {WatchEventType::kError, "ERROR"},
}};

}  // namespace

std::string ResourceRef::Path() const {
  std::string path = group_version.find('/') == std::string::npos ? "/api/" : "/apis/";
  path += group_version;
  if (!namespace_name.empty()) path += "/namespaces/" + namespace_name;
  path += "/" + resource;
  if (!name.empty()) path += "/" + name;
  if (!subresource.empty()) path += "/" + subresource;
  return path;
}

std::string ResourceRef::Describe() const {
  std::string text = resource;
  if (!subresource.empty()) text += "/" + subresource;
  if (!namespace_name.empty() || !name.empty()) text += " ";
  if (!namespace_name.empty()) text += namespace_name + (name.empty() ? "" : "/");
  return text + name;
}

ResourceRef Pods(std::string namespace_name) {
  ResourceRef ref;
  ref.resource = "pods";
  ref.namespace_name = std::move(namespace_name);
  return ref;
}

ResourceRef Pod(std::string namespace_name, std::string name) {
  ResourceRef ref = Pods(std::move(namespace_name));
  ref.name = std::move(name);
  return ref;
}

ResourceRef Nodes() {
  ResourceRef ref;
  ref.resource = "nodes";
  return ref;
}

ResourceRef Node(std::string name) {
  ResourceRef ref = Nodes();
  ref.name = std::move(name);
  return ref;
}

std::string ListOptions::Query(bool watch) const {
  std::string query;
  if (!label_selector.empty()) AddParam(query, "labelSelector", label_selector);
  if (!field_selector.empty()) AddParam(query, "fieldSelector", field_selector);
  if (!resource_version.empty()) AddParam(query, "resourceVersion", resource_version);
  if (timeout_seconds) AddParam(query, "timeoutSeconds", std::to_string(*timeout_seconds));
  if (watch) {
    AddParam(query, "watch", "true");
    if (allow_watch_bookmarks) AddParam(query, "allowWatchBookmarks", "true");
  }
  return query;
}

std::string_view PatchContentType(PatchType type) {
  switch (type) {
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
    case PatchType::kJson:
      return "application/json-patch+json";
  }
  return "application/merge-patch+json";
}

std::string_view WatchEventTypeName(WatchEventType type) {
  for (const auto& [t, name] : kEventNames)
    if (t == type) return name;
  return "UNKNOWN";
}

Result<WatchEvent> ParseWatchEventLine(std::string_view line) {
  Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return InvalidArgument("watch event is not a JSON object: '" +
                           std::string(line.substr(0, 120)) + "'");
  }
  const auto type = parsed.find("type");
  if (type == parsed.end() || !type->is_string())
    return InvalidArgument("watch event has no string field 'type'");
  const auto object = parsed.find("object");
  if (object == parsed.end() || !object->is_object())
    return InvalidArgument("watch event has no object field 'object'");
  for (const auto& [t, name] : kEventNames) {
    if (*type == name) return WatchEvent{t, std::move(*object)};
  }
  return InvalidArgument("watch event type '" + type->get<std::string>() +
                         "' is not one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR");
}

Result<Json> UpdateWithRetry(KubeApi& api, const ResourceRef& ref,
                             const std::function<Status(Json&)>& mutate, int max_attempts) {
  Status last = Internal("UpdateWithRetry: max_attempts must be at least 1");
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    GPUSLICE_ASSIGN_OR_RETURN(Json object, api.Get(ref));
    GPUSLICE_RETURN_IF_ERROR(mutate(object));
    Result<Json> stored = api.Update(ref, object);
    if (stored.ok() || !IsConflict(stored.status())) return stored;
    last = stored.status();
  }
  return last.WithContext("gave up after " + std::to_string(max_attempts) + " conflicts");
}

Status BindPod(KubeApi& api, const std::string& namespace_name, const std::string& pod_name,
               const std::string& pod_uid, const std::string& node_name,
               const std::map<std::string, std::string>& annotations) {
  ResourceRef ref = Pod(namespace_name, pod_name);
  ref.subresource = "binding";
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", pod_name}, {"namespace", namespace_name}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node_name}}}};
  if (!pod_uid.empty()) binding["metadata"]["uid"] = pod_uid;
  if (!annotations.empty()) binding["metadata"]["annotations"] = annotations;
  return api.Create(ref, binding).status();
}

std::string ObjectKey(const Json& object) {
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  const auto text = [&](const char* key) {
    const auto it = metadata->find(key);
    return it != metadata->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string name = text("name");
  const std::string ns = text("namespace");
  if (name.empty()) return "";
  return ns.empty() ? name : ns + "/" + name;
}

}  // namespace gpuslice::kube
