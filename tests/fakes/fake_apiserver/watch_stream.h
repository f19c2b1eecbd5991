// WatchStream: what one watch request sees, independent of HTTP. It turns the store's change
// history into the lines of a watch response: initial ADDED events (watch without a version),
// changes seen through the request's selectors, BOOKMARKs, and ERROR 410 for a version older
// than the retained history.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fake_apiserver/object_store.h"
#include "fake_apiserver/selectors.h"

namespace gpuslice::fake {

struct WatchRequest {
  const ResourceType* type = nullptr;
  std::string ns;  // empty: every namespace
  LabelSelector labels;
  FieldSelector fields;
  std::uint64_t after_version = 0;  // 0: start with ADDED for every current object
  bool bookmarks = false;
  std::chrono::seconds timeout{1800};
  std::chrono::milliseconds bookmark_interval{1000};
};

class WatchStream {
 public:
  WatchStream(ObjectStore& store, WatchRequest request);

  enum class Step { kMore, kEnd };
  // Waits up to `wait` for changes and appends their event lines to `out`. kEnd once the stream
  // is over (its timeout passed, or after the ERROR 410 line).
  Step Next(std::string& out, std::chrono::milliseconds wait);

 private:
  bool Selected(const Json& object) const;
  // The event type a watcher with selectors sees for a stored change, or "" for none.
  std::string VisibleType(const StoredEvent& event) const;

  ObjectStore& store_;
  const WatchRequest request_;
  std::uint64_t after_;
  std::vector<Json> initial_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point next_bookmark_;
};

}  // namespace gpuslice::fake
