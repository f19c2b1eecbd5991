#include "fake_apiserver/watch_stream.h"

namespace gpuslice::fake {
namespace {

std::string EventLine(const std::string& type, const Json& object) {
  return Json{{"type", type}, {"object", object}}.dump() + "\n";
}

}  // namespace

WatchStream::WatchStream(ObjectStore& store, WatchRequest request)
    : store_(store), request_(std::move(request)), after_(request_.after_version) {
  if (after_ == 0) {
    for (Json& object : store_.Snapshot(request_.type->plural, request_.ns, after_))
      if (Selected(object)) initial_.push_back(std::move(object));
  }
  const auto now = std::chrono::steady_clock::now();
  deadline_ = now + request_.timeout;
  next_bookmark_ = now + request_.bookmark_interval;
}

bool WatchStream::Selected(const Json& object) const {
  if (!request_.ns.empty() && object["metadata"].value("namespace", "") != request_.ns)
    return false;
  return request_.labels.Matches(object) && request_.fields.Matches(object);
}

// An object that moves into the selection is ADDED, one that moves out is DELETED, as on the
// real server (a `spec.nodeName=` watch sees a pod being bound as ADDED).
std::string WatchStream::VisibleType(const StoredEvent& event) const {
  const bool now = event.type != "DELETED" && Selected(event.object);
  const bool before = !event.previous.is_null() && Selected(event.previous);
  if (now && before) return "MODIFIED";
  if (now) return "ADDED";
  if (before) return "DELETED";
  return "";
}

WatchStream::Step WatchStream::Next(std::string& out, std::chrono::milliseconds wait) {
  for (const Json& object : initial_) out += EventLine("ADDED", object);
  initial_.clear();
  const auto now = std::chrono::steady_clock::now();
  if (now >= deadline_) return Step::kEnd;
  const EventBatch batch = store_.EventsAfter(request_.type->plural, after_, wait);
  if (batch.expired) {
    const std::string message = "too old resource version: " + std::to_string(after_) + " (" +
                                std::to_string(batch.compacted_version) + ")";
    out += EventLine("ERROR", ErrorOutcome(410, "Expired", message).body);
    return Step::kEnd;
  }
  for (const StoredEvent& event : batch.events) {
    const std::string visible = VisibleType(event);
    if (!visible.empty()) out += EventLine(visible, event.object);
  }
  after_ = std::max(after_, batch.current_version);  // every change up to it has been seen
  if (request_.bookmarks && now >= next_bookmark_) {
    next_bookmark_ = now + request_.bookmark_interval;
    out += EventLine("BOOKMARK", {{"kind", request_.type->kind},
                                  {"apiVersion", "v1"},
                                  {"metadata", {{"resourceVersion", std::to_string(after_)}}}});
  }
  return Step::kMore;
}

}  // namespace gpuslice::fake
