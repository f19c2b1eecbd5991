// ObjectStore: the fake API server's state and semantics, without HTTP. Core/v1 objects in
// memory, one global monotonically increasing resourceVersion, a bounded event history for
// watches, optimistic concurrency, selectors, patches, pods/binding and status subresources.
// Every operation returns the HTTP code and body the real API server would send (an object, a
// list, or a metav1.Status). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gpuslice::fake {

using Json = nlohmann::json;

struct ResourceType {
  std::string plural;  // "pods"
  std::string singular;
  std::string kind;  // "Pod"
  bool namespaced;
  std::vector<std::string> short_names;
  std::vector<std::string> subresources;  // "status", "binding"
};

// The core/v1 resources the fake serves: pods, nodes, events, configmaps, namespaces.
const std::vector<ResourceType>& CoreResources();
const ResourceType* FindResource(std::string_view plural);

// The HTTP answer to one request.
struct Outcome {
  int code = 200;
  Json body;
  bool ok() const { return code < 300; }
};

// metav1.Status for an error, exactly shaped like the real server's.
Outcome ErrorOutcome(int code, std::string reason, std::string message, const Json& details = {});

// One change, as watches replay it.
struct StoredEvent {
  std::uint64_t resource_version;
  std::string type;  // ADDED, MODIFIED, DELETED
  std::string resource;
  Json object;    // the object after the change (for DELETED: its last state, new version)
  Json previous;  // before the change (null for ADDED): selector transitions need it
};

// What a watcher gets: events after its version, or `expired` when its version is older than
// the retained history (the server then sends ERROR 410).
struct EventBatch {
  bool expired = false;
  std::uint64_t compacted_version = 0;
  std::uint64_t current_version = 0;
  std::vector<StoredEvent> events;
};

class ObjectStore {
 public:
  explicit ObjectStore(std::size_t max_history = 1000);

  Outcome Create(const ResourceType& type, const std::string& ns, Json object);
  Outcome Get(const ResourceType& type, const std::string& ns, const std::string& name);
  // `ns` empty lists every namespace. Selectors are already-validated text.
  Outcome List(const ResourceType& type, const std::string& ns, const std::string& label_selector,
               const std::string& field_selector);
  // PUT. `subresource` "status" replaces only .status; "" replaces everything but .status.
  Outcome Update(const ResourceType& type, const std::string& ns, const std::string& name,
                 const std::string& subresource, Json object);
  Outcome Patch(const ResourceType& type, const std::string& ns, const std::string& name,
                const std::string& subresource, const std::string& content_type, const Json& patch);
  Outcome Delete(const ResourceType& type, const std::string& ns, const std::string& name);
  // POST pods/<name>/binding: sets spec.nodeName and merges the Binding's annotations in one
  // resourceVersion; 409 when the pod is already bound.
  Outcome Bind(const std::string& ns, const std::string& pod_name, const Json& binding);

  // Current objects of a resource (the initial ADDED events of a watch without a version) and,
  // in `version`, the resourceVersion they are current at.
  std::vector<Json> Snapshot(const std::string& resource, const std::string& ns,
                             std::uint64_t& version);
  // Events of `resource` after `after_version`; waits up to `wait` for one to arrive.
  EventBatch EventsAfter(const std::string& resource, std::uint64_t after_version,
                         std::chrono::milliseconds wait);
  std::uint64_t CurrentVersion();

  // Test knob: forget the whole history; a watch from any older version then gets 410.
  void Compact();
  // Wakes every waiting watcher (used with the break-watches knob and on shutdown).
  void WakeWatchers();

 private:
  using Objects = std::map<std::string, Json>;  // "ns/name" -> object

  Outcome CheckNamespace(const ResourceType& type, const std::string& ns);
  void Record(const std::string& type, const std::string& resource, const Json& object,
              Json previous);
  void Stamp(Json& object, const ResourceType& type);
  Outcome Replace(const ResourceType& type, const std::string& key, Json updated,
                  const std::string& expected_version);

  std::mutex mutex_;
  std::condition_variable changed_cv_;
  std::map<std::string, Objects> objects_;  // resource -> objects
  std::deque<StoredEvent> history_;
  std::size_t max_history_;
  std::uint64_t version_ = 1;
  std::uint64_t compacted_version_ = 0;
  std::uint64_t next_uid_ = 1;
};

}  // namespace gpuslice::fake
