// Informer: list + watch of one collection (pods, nodes; optionally filtered by label or field
// selector) into a local store keyed by "namespace/name", with added/modified/deleted handlers.
//
// No ghosts: whenever the watch cannot simply be resumed (410 Expired, a broken connection, an
// ERROR event, a failed request) the informer relists and diffs the new list against its store.
// Every object that disappeared meanwhile gets an on_deleted call with its last known state, so a
// consumer never keeps the allocation of a pod that was deleted while the watch was down.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "kube/kube_api.h"

namespace gpuslice::kube {

// Waits between reconnects; tests substitute one that records and returns at once.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Waits for `duration` or until Wake() is called, whichever is first.
  virtual void SleepFor(std::chrono::milliseconds duration) = 0;
  // Ends the current and every later SleepFor at once (used on shutdown).
  virtual void Wake() = 0;
};

// The real sleeper: a condition variable wait.
class InterruptibleSleeper final : public Sleeper {
 public:
  void SleepFor(std::chrono::milliseconds duration) override;
  void Wake() override;

 private:
  std::mutex mutex_;
  std::condition_variable woken_cv_;
  bool woken_ = false;
};

// Called on the informer's thread, in event order, never while the store lock is held (a
// handler may call Get/List on the informer).
struct InformerHandlers {
  std::function<void(const Json& object)> on_added;
  std::function<void(const Json& old_object, const Json& new_object)> on_modified;
  std::function<void(const Json& last_known)> on_deleted;
  // After every successful list (the first one included), once its diff has been delivered: a
  // consumer that keeps derived state may rebuild it from List() here (a full resync).
  std::function<void()> on_relisted = nullptr;  // (initialised: aggregate users may omit it)
};

struct InformerOptions {
  std::string label_selector;
  std::string field_selector;  // e.g. "spec.nodeName=node-1"
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{30000};
  int watch_timeout_seconds = 300;  // the server ends each watch after this; it is then resumed
  // A watch that ends normally sooner than this without delivering an event is treated like a
  // failure (backoff), so a proxy that closes watches at once cannot make the informer spin.
  std::chrono::milliseconds min_quiet_watch{1000};
  Sleeper* sleeper = nullptr;    // nullptr: an InterruptibleSleeper owned by the informer
  const Clock* clock = nullptr;  // nullptr: the steady clock
};

struct InformerStats {
  int lists = 0;                // successful lists (the first one included)
  int watches = 0;              // watch requests started
  int expired = 0;              // 410 Expired answers (relisted)
  int failures = 0;             // failed lists or watches (backed off, then relisted)
  int quiet_watches = 0;        // watches that ended at once without an event (backed off)
  int synthesized_deletes = 0;  // on_deleted calls produced by a relist's diff
};

class Informer {
 public:
  Informer(KubeApi& api, ResourceRef collection, InformerOptions options,
           InformerHandlers handlers);
  ~Informer();  // Stop()s
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the list/watch loop on a background thread.
  void Start();
  // Ends the loop and joins the thread (within ~100 ms). Safe to call twice.
  void Stop();

  // True once the first list has been applied to the store.
  bool HasSynced() const;
  // Waits until HasSynced() or `timeout`; returns HasSynced().
  bool WaitForSync(std::chrono::milliseconds timeout) const;

  std::optional<Json> Get(const std::string& key) const;  // "namespace/name" or "name"
  std::vector<Json> List() const;                         // ordered by key
  std::string ResourceVersion() const;  // the newest version seen (list, event or bookmark)
  InformerStats Stats() const;

  // One step of the loop, for tests that drive the informer synchronously (without Start):
  // Relist lists, diffs against the store and calls handlers; WatchOnce watches from the last
  // version until the stream ends (OK) or fails (the error; 410 is IsExpired()).
  Status Relist();
  Status WatchOnce();

 private:
  void Run();
  void Apply(const WatchEvent& event);
  void Upsert(Json object);
  void Remove(const Json& object);
  void NoteVersion(const Json& object);

  KubeApi& api_;
  const ResourceRef collection_;
  const InformerOptions options_;
  const InformerHandlers handlers_;
  InterruptibleSleeper own_sleeper_;
  Sleeper& sleeper_;
  SteadyClock steady_clock_;
  const Clock& clock_;
  int watch_events_ = 0;  // events delivered by the current WatchOnce

  mutable std::mutex mutex_;
  mutable std::condition_variable synced_cv_;
  std::map<std::string, Json> store_;
  std::string resource_version_;
  bool synced_ = false;
  InformerStats stats_;
  Status watch_error_;  // set by an ERROR event during WatchOnce

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gpuslice::kube
