// KubeApi: the small interface every gpuslice component uses to reach the Kubernetes API server,
// with the request and event types it speaks. KubeClient (kube_client.h) implements it over
// HTTP; tests run it against the fake API server (tests/fakes/fake_apiserver).
//
// Objects are plain Kubernetes JSON (nlohmann::json), exactly as the API server sends them.
// Errors are gpuslice::Status values built by api_status.h: they carry the API's Status message,
// HTTP code and reason (ApiHttpCode, ApiReason, IsNotFound, IsConflict, IsExpired ...).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/status.h"

namespace gpuslice::kube {

using Json = nlohmann::json;

// Names one resource or one collection: /api/v1/namespaces/<ns>/pods/<name>/<subresource>.
struct ResourceRef {
  std::string group_version = "v1";  // "v1" is the core group (/api/v1); "apps/v1" → /apis/apps/v1
  std::string resource;              // plural, lower case: "pods", "nodes"
  std::string namespace_name;        // empty: cluster-scoped, or all namespaces for a collection
  std::string name;                  // empty: the collection
  std::string subresource;           // "status", "binding"; empty: the object itself

  // The URL path, e.g. "/api/v1/namespaces/default/pods/p1/binding".
  std::string Path() const;
  // "pods default/p1", for messages.
  std::string Describe() const;
};

ResourceRef Pods(std::string namespace_name = "");  // all namespaces when empty
ResourceRef Pod(std::string namespace_name, std::string name);
ResourceRef Nodes();
ResourceRef Node(std::string name);

// Query parameters of list and watch calls; empty fields are not sent.
struct ListOptions {
  std::string label_selector;    // "app=x,tier!=db"
  std::string field_selector;    // "spec.nodeName=node-1"
  std::string resource_version;  // list: "0" serves from cache; watch: start after this version
  std::optional<int> timeout_seconds;  // watch: the server ends the stream after this long
  bool allow_watch_bookmarks = true;   // watch only

  // "?labelSelector=...&..." (URL-encoded), with watch=true and bookmarks when `watch`.
  std::string Query(bool watch) const;
};

enum class PatchType {
  kMerge,           // application/merge-patch+json (RFC 7386)
  kStrategicMerge,  // application/strategic-merge-patch+json
  kJson,            // application/json-patch+json (RFC 6902)
};
std::string_view PatchContentType(PatchType type);

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view WatchEventTypeName(WatchEventType type);

// One line of a watch stream: {"type": "...", "object": {...}}. For kError the object is a
// metav1.Status (code 410 reason Expired means "relist"); for kBookmark only
// metadata.resourceVersion is meaningful.
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  Json object;
};

// Parses one watch-stream line. Errors (kInvalidArgument) say what was wrong with the line.
Result<WatchEvent> ParseWatchEventLine(std::string_view line);

// Called for every event of a watch; return false to end the watch (Watch then returns OK).
using WatchHandler = std::function<bool(const WatchEvent&)>;

// The calls gpuslice makes. Thread-safe: calls may run concurrently from several threads.
class KubeApi {
 public:
  virtual ~KubeApi() = default;

  virtual Result<Json> Get(const ResourceRef& ref) = 0;
  // The list object ({"kind": "PodList", "metadata": {"resourceVersion": ...}, "items": [...]}).
  virtual Result<Json> List(const ResourceRef& collection, const ListOptions& options) = 0;
  // Streams events until the server ends the stream (OK), `handler` returns false (OK), `stop`
  // becomes true (OK, noticed within ~100 ms), or the connection breaks or the request fails
  // (error: kUnavailable for a broken stream, the API's Status for a refused request).
  virtual Status Watch(const ResourceRef& collection, const ListOptions& options,
                       const WatchHandler& handler, const std::atomic<bool>& stop) = 0;
  // POST to the collection (or to a subresource such as pods/<name>/binding); returns the body.
  virtual Result<Json> Create(const ResourceRef& ref, const Json& object) = 0;
  // PUT; `object` carries metadata.resourceVersion for optimistic concurrency (409 on mismatch).
  virtual Result<Json> Update(const ResourceRef& ref, const Json& object) = 0;
  virtual Result<Json> Patch(const ResourceRef& ref, PatchType type, const Json& patch) = 0;
  // Returns the deleted object (or the Status the server sent).
  virtual Result<Json> Delete(const ResourceRef& ref) = 0;
};

// Optimistic concurrency: reads `ref`, applies `mutate` to the object, writes it back with PUT,
// and on 409 Conflict re-reads and tries again, at most `max_attempts` times. `mutate` returning
// an error aborts without writing. Returns the object the server stored.
Result<Json> UpdateWithRetry(KubeApi& api, const ResourceRef& ref,
                             const std::function<Status(Json&)>& mutate, int max_attempts = 5);

// Binds a pod to a node with one POST pods/<name>/binding; `annotations` land on the pod in the
// same write (how the scheduler extender records its GPU choice with the node). A non-empty
// `pod_uid` makes the server refuse a different pod recreated under the same name. A pod that is
// already bound gives IsConflict().
Status BindPod(KubeApi& api, const std::string& namespace_name, const std::string& pod_name,
               const std::string& pod_uid, const std::string& node_name,
               const std::map<std::string, std::string>& annotations);

// "namespace/name" (or "name" for cluster-scoped objects): the informer's store key.
std::string ObjectKey(const Json& object);

}  // namespace gpuslice::kube
