#include "fake_apiserver/object_store.h"

#include <cstdio>

#include "fake_apiserver/patches.h"
#include "fake_apiserver/selectors.h"

namespace gpuslice::fake {
namespace {

std::string Key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string StringAt(const Json& object, const char* outer, const char* inner) {
  const auto o = object.find(outer);
  if (o == object.end() || !o->is_object()) return "";
  const auto i = o->find(inner);
  return i != o->end() && i->is_string() ? i->get<std::string>() : "";
}

bool HasStatus(const ResourceType& type) {
  return std::find(type.subresources.begin(), type.subresources.end(), "status") !=
         type.subresources.end();
}

// DNS-1123 subdomain, as the API server requires for most names.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

Json Details(const ResourceType& type, const std::string& name) {
  return {{"name", name}, {"kind", type.plural}};
}

Outcome NotFoundOutcome(const ResourceType& type, const std::string& name) {
  return ErrorOutcome(404, "NotFound", type.plural + " \"" + name + "\" not found",
                      Details(type, name));
}

Outcome ConflictOutcome(const ResourceType& type, const std::string& name) {
  return ErrorOutcome(409, "Conflict",
                      "Operation cannot be fulfilled on " + type.plural + " \"" + name +
                          "\": the object has been modified; please apply your changes to the "
                          "latest version and try again",
                      Details(type, name));
}

Outcome InvalidOutcome(const ResourceType& type, const std::string& name, const std::string& why) {
  return ErrorOutcome(422, "Invalid", type.kind + " \"" + name + "\" is invalid: " + why,
                      Details(type, name));
}

// Deterministic timestamps: 2026-01-01T00:00:00Z plus one second per created object.
std::string Timestamp(std::uint64_t seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "2026-01-01T%02u:%02u:%02uZ",
                static_cast<unsigned>(seconds / 3600 % 24),
                static_cast<unsigned>(seconds / 60 % 60), static_cast<unsigned>(seconds % 60));
  return text;
}

}  // namespace

const std::vector<ResourceType>& CoreResources() {
  static const std::vector<ResourceType> kTypes = {
      {"pods", "pod", "Pod", true, {"po"}, {"status", "binding"}},
      {"nodes", "node", "Node", false, {"no"}, {"status"}},
      {"events", "event", "Event", true, {"ev"}, {}},
      {"configmaps", "configmap", "ConfigMap", true, {"cm"}, {}},
      {"namespaces", "namespace", "Namespace", false, {"ns"}, {"status"}},
  };
  return kTypes;
}

const ResourceType* FindResource(std::string_view plural) {
  for (const ResourceType& type : CoreResources())
    if (type.plural == plural) return &type;
  return nullptr;
}

Outcome ErrorOutcome(int code, std::string reason, std::string message, const Json& details) {
  Json body = {{"kind", "Status"},
               {"apiVersion", "v1"},
               {"metadata", Json::object()},
               {"status", "Failure"},
               {"message", std::move(message)},
               {"reason", std::move(reason)},
               {"code", code}};
  if (!details.is_null()) body["details"] = details;
  return {code, std::move(body)};
}

ObjectStore::ObjectStore(std::size_t max_history) : max_history_(max_history) {
  for (const char* ns : {"default", "kube-system"}) {
    Json object = {{"metadata", {{"name", ns}}}};
    (void)Create(*FindResource("namespaces"), "", std::move(object));
  }
}

void ObjectStore::Stamp(Json& object, const ResourceType& type) {
  object["apiVersion"] = "v1";
  object["kind"] = type.kind;
  Json& metadata = object["metadata"];
  char uid[40];
  std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(next_uid_));
  metadata["uid"] = uid;
  metadata["creationTimestamp"] = Timestamp(next_uid_);
  metadata["generation"] = 1;
  ++next_uid_;
  if (type.kind == "Pod") {
    if (!object["spec"].contains("schedulerName"))
      object["spec"]["schedulerName"] = "default-scheduler";
    if (!object["status"].contains("phase")) object["status"]["phase"] = "Pending";
  }
  if (type.kind == "Namespace") object["status"]["phase"] = "Active";
}

Outcome ObjectStore::CheckNamespace(const ResourceType& type, const std::string& ns) {
  if (!type.namespaced) return {};
  if (objects_["namespaces"].contains(ns)) return {};
  return ErrorOutcome(404, "NotFound", "namespaces \"" + ns + "\" not found",
                      {{"name", ns}, {"kind", "namespaces"}});
}

Outcome ObjectStore::Create(const ResourceType& type, const std::string& ns, Json object) {
  std::lock_guard lock(mutex_);
  if (!object.is_object() || !object["metadata"].is_object())
    return ErrorOutcome(400, "BadRequest", "the body must be a JSON object with metadata");
  if (object.contains("kind") && object["kind"] != type.kind)
    return ErrorOutcome(400, "BadRequest",
                        "the kind of the object (" + object["kind"].dump() +
                            ") does not match the URL (" + type.kind + ")");
  if (Outcome missing = CheckNamespace(type, ns); !missing.ok()) return missing;
  Json& metadata = object["metadata"];
  std::string name = StringAt(object, "metadata", "name");
  if (name.empty() && !StringAt(object, "metadata", "generateName").empty()) {
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%05llu", static_cast<unsigned long long>(next_uid_));
    name = StringAt(object, "metadata", "generateName") + suffix;
  }
  if (name.empty())
    return InvalidOutcome(type, "",
                          "metadata.name: Required value: name or generateName is required");
  if (!ValidName(name))
    return InvalidOutcome(type, name,
                          "metadata.name: Invalid value: \"" + name +
                              "\": a lowercase RFC 1123 subdomain must consist of "
                              "lower case alphanumeric characters, '-' or '.'");
  const std::string body_ns = StringAt(object, "metadata", "namespace");
  if (type.namespaced && !body_ns.empty() && body_ns != ns)
    return ErrorOutcome(400, "BadRequest",
                        "the namespace of the provided object does not match "
                        "the namespace sent on the request");
  const std::string key = Key(type.namespaced ? ns : "", name);
  if (objects_[type.plural].contains(key))
    return ErrorOutcome(409, "AlreadyExists", type.plural + " \"" + name + "\" already exists",
                        Details(type, name));
  metadata["name"] = name;
  if (type.namespaced) metadata["namespace"] = ns;
  Stamp(object, type);
  metadata["resourceVersion"] = std::to_string(++version_);
  objects_[type.plural][key] = object;
  Record("ADDED", type.plural, object, nullptr);
  return {201, std::move(object)};
}

Outcome ObjectStore::Get(const ResourceType& type, const std::string& ns, const std::string& name) {
  std::lock_guard lock(mutex_);
  const Objects& objects = objects_[type.plural];
  const auto it = objects.find(Key(type.namespaced ? ns : "", name));
  if (it == objects.end()) return NotFoundOutcome(type, name);
  return {200, it->second};
}

Outcome ObjectStore::List(const ResourceType& type, const std::string& ns,
                          const std::string& label_selector, const std::string& field_selector) {
  Result<LabelSelector> labels = LabelSelector::Parse(label_selector);
  if (!labels.ok()) return ErrorOutcome(400, "BadRequest", labels.status().message());
  Result<FieldSelector> fields = FieldSelector::Parse(field_selector);
  if (!fields.ok()) return ErrorOutcome(400, "BadRequest", fields.status().message());
  std::lock_guard lock(mutex_);
  Json items = Json::array();
  for (const auto& [key, object] : objects_[type.plural]) {
    if (type.namespaced && !ns.empty() && StringAt(object, "metadata", "namespace") != ns) continue;
    if (labels->Matches(object) && fields->Matches(object)) items.push_back(object);
  }
  return {200,
          {{"kind", type.kind + "List"},
           {"apiVersion", "v1"},
           {"metadata", {{"resourceVersion", std::to_string(version_)}}},
           {"items", std::move(items)}}};
}

// Stores `updated` in place of the object at `key` (which must exist) unless the caller's
// expected version is stale (409). An update that changes nothing keeps the version, as on the
// real server.
Outcome ObjectStore::Replace(const ResourceType& type, const std::string& key, Json updated,
                             const std::string& expected_version) {
  Json& current = objects_[type.plural][key];
  const std::string current_version = StringAt(current, "metadata", "resourceVersion");
  if (!expected_version.empty() && expected_version != current_version)
    return ConflictOutcome(type, StringAt(current, "metadata", "name"));
  for (const char* kept : {"name", "namespace", "uid", "creationTimestamp", "generation"}) {
    if (current["metadata"].contains(kept)) updated["metadata"][kept] = current["metadata"][kept];
  }
  updated["apiVersion"] = "v1";
  updated["kind"] = type.kind;
  updated["metadata"]["resourceVersion"] = current_version;
  if (updated == current) return {200, current};
  if (updated.value("spec", Json()) != current.value("spec", Json()))
    updated["metadata"]["generation"] = current["metadata"].value("generation", 1) + 1;
  updated["metadata"]["resourceVersion"] = std::to_string(++version_);
  Json previous = std::exchange(current, updated);
  Record("MODIFIED", type.plural, updated, std::move(previous));
  return {200, std::move(updated)};
}

Outcome ObjectStore::Update(const ResourceType& type, const std::string& ns,
                            const std::string& name, const std::string& subresource, Json object) {
  std::lock_guard lock(mutex_);
  const std::string key = Key(type.namespaced ? ns : "", name);
  const auto it = objects_[type.plural].find(key);
  if (it == objects_[type.plural].end()) return NotFoundOutcome(type, name);
  if (!object.is_object() || !object["metadata"].is_object())
    return ErrorOutcome(400, "BadRequest", "the body must be a JSON object with metadata");
  const std::string body_name = StringAt(object, "metadata", "name");
  if (!body_name.empty() && body_name != name)
    return ErrorOutcome(400, "BadRequest",
                        "the name of the object (" + body_name +
                            ") does not match the name on the URL (" + name + ")");
  const std::string expected = StringAt(object, "metadata", "resourceVersion");
  Json updated = object;
  if (subresource == "status") {
    updated = it->second;
    updated["status"] = object.value("status", Json::object());
  } else if (HasStatus(type)) {
    updated["status"] = it->second.value("status", Json::object());
  }
  return Replace(type, key, std::move(updated), expected);
}

Outcome ObjectStore::Patch(const ResourceType& type, const std::string& ns, const std::string& name,
                           const std::string& subresource, const std::string& content_type,
                           const Json& patch) {
  std::lock_guard lock(mutex_);
  const std::string key = Key(type.namespaced ? ns : "", name);
  const auto it = objects_[type.plural].find(key);
  if (it == objects_[type.plural].end()) return NotFoundOutcome(type, name);
  Result<Json> patched = ApplyPatch(content_type, it->second, patch);
  if (!patched.ok()) {
    if (patched.status().code() == ErrorCode::kFailedPrecondition)
      return ErrorOutcome(415, "UnsupportedMediaType", patched.status().message());
    return InvalidOutcome(type, name, patched.status().message());
  }
  if (!patched->is_object() || !(*patched)["metadata"].is_object())
    return InvalidOutcome(type, name, "metadata: Required value: the patch removed the metadata");
  // A patch that sets metadata.resourceVersion is a precondition (409 when stale).
  std::string expected = StringAt(*patched, "metadata", "resourceVersion");
  if (expected == StringAt(it->second, "metadata", "resourceVersion")) expected.clear();
  Json updated = *patched;
  if (subresource == "status") {
    updated = it->second;
    updated["status"] = patched->value("status", Json::object());
  } else if (HasStatus(type)) {
    updated["status"] = it->second.value("status", Json::object());
  }
  if (!expected.empty()) return ConflictOutcome(type, name);
  return Replace(type, key, std::move(updated), "");
}

Outcome ObjectStore::Delete(const ResourceType& type, const std::string& ns,
                            const std::string& name) {
  std::lock_guard lock(mutex_);
  Objects& objects = objects_[type.plural];
  const auto it = objects.find(Key(type.namespaced ? ns : "", name));
  if (it == objects.end()) return NotFoundOutcome(type, name);
  Json object = std::move(it->second);
  objects.erase(it);
  Json previous = object;
  object["metadata"]["resourceVersion"] = std::to_string(++version_);
  Record("DELETED", type.plural, object, std::move(previous));
  return {200, std::move(object)};
}

Outcome ObjectStore::Bind(const std::string& ns, const std::string& pod_name, const Json& binding) {
  const ResourceType& pods = *FindResource("pods");
  std::lock_guard lock(mutex_);
  const std::string key = Key(ns, pod_name);
  const auto it = objects_["pods"].find(key);
  if (it == objects_["pods"].end()) return NotFoundOutcome(pods, pod_name);
  const std::string node = binding.is_object() ? StringAt(binding, "target", "name") : "";
  if (node.empty()) return InvalidOutcome(pods, pod_name, "target.name: Required value");
  const std::string uid = StringAt(binding, "metadata", "uid");
  const std::string bound = StringAt(it->second, "spec", "nodeName");
  if (!bound.empty() || (!uid.empty() && uid != StringAt(it->second, "metadata", "uid"))) {
    const std::string why =
        bound.empty() ? "the pod's UID does not match the Binding's"
                      : "pod " + pod_name + " is already assigned to node \"" + bound + "\"";
    return ErrorOutcome(
        409, "Conflict",
        "Operation cannot be fulfilled on pods/binding \"" + pod_name + "\": " + why,
        Details(pods, pod_name));
  }
  Json updated = it->second;
  updated["spec"]["nodeName"] = node;
  const auto annotations = binding["metadata"].find("annotations");
  if (annotations != binding["metadata"].end() && annotations->is_object())
    for (const auto& [k, v] : annotations->items()) updated["metadata"]["annotations"][k] = v;
  Json& conditions = updated["status"]["conditions"];
  if (!conditions.is_array()) conditions = Json::array();
  conditions.push_back({{"type", "PodScheduled"}, {"status", "True"}});
  Outcome stored = Replace(pods, key, std::move(updated), "");
  if (!stored.ok()) return stored;
  return {201,
          {{"kind", "Status"},
           {"apiVersion", "v1"},
           {"metadata", Json::object()},
           {"status", "Success"},
           {"code", 201}}};
}

void ObjectStore::Record(const std::string& type, const std::string& resource, const Json& object,
                         Json previous) {
  history_.push_back({version_, type, resource, object, std::move(previous)});
  while (history_.size() > max_history_) {
    compacted_version_ = history_.front().resource_version;
    history_.pop_front();
  }
  changed_cv_.notify_all();
}

std::vector<Json> ObjectStore::Snapshot(const std::string& resource, const std::string& ns,
                                        std::uint64_t& version) {
  std::lock_guard lock(mutex_);
  version = version_;
  std::vector<Json> objects;
  for (const auto& [key, object] : objects_[resource])
    if (ns.empty() || StringAt(object, "metadata", "namespace") == ns) objects.push_back(object);
  return objects;
}

EventBatch ObjectStore::EventsAfter(const std::string& resource, std::uint64_t after_version,
                                    std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  const auto has_news = [&] {
    if (after_version < compacted_version_) return true;
    for (auto it = history_.rbegin(); it != history_.rend() && it->resource_version > after_version;
         ++it)
      if (it->resource == resource) return true;
    return false;
  };
  changed_cv_.wait_for(lock, wait, has_news);
  EventBatch batch;
  batch.compacted_version = compacted_version_;
  batch.current_version = version_;
  if (after_version < compacted_version_) {
    batch.expired = true;
    return batch;
  }
  for (const StoredEvent& event : history_)
    if (event.resource_version > after_version && event.resource == resource)
      batch.events.push_back(event);
  return batch;
}

std::uint64_t ObjectStore::CurrentVersion() {
  std::lock_guard lock(mutex_);
  return version_;
}

void ObjectStore::Compact() {
  std::lock_guard lock(mutex_);
  history_.clear();
  compacted_version_ = version_;
  changed_cv_.notify_all();
}

void ObjectStore::WakeWatchers() { changed_cv_.notify_all(); }

}  // namespace gpuslice::fake
