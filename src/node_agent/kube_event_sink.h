// KubeEventSink: turns the memory watchdog's events into core/v1 Events on the pod (issue 11),
// next to the log line. The node side registers each limited container with the pod it belongs
// to (SetPod, by the watchdog's container name); an event of a container with no pod is logged
// only. Posting happens on the sink's own thread, so a slow or unreachable API server never
// delays the watchdog's checks or kills; a failed post is logged and dropped (the log line has
// already been written).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "kube/kube_api.h"
#include "watchdog/memory_watchdog.h"

namespace gpuslice {

struct EventPodRef {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string container;  // the container name in the pod (for involvedObject.fieldPath)
};

// Event reasons (CamelCase, as kubectl shows them).
inline constexpr char kReasonGpuMemoryLimitExceeded[] = "GPUMemoryLimitExceeded";
inline constexpr char kReasonGpuMemoryProcessKilled[] = "GPUMemoryProcessKilled";
inline constexpr char kReasonGpuMemoryBackUnderLimit[] = "GPUMemoryBackUnderLimit";

// The Event object for `event` on `pod` (pure; `now_rfc3339` is the timestamp written).
// `kill_grace` and `kill` say what the watchdog will do, for the over-limit message.
kube::Json MakeWatchdogKubeEvent(const watchdog::WatchdogEvent& event, const EventPodRef& pod,
                                 const std::string& node_name, std::chrono::milliseconds kill_grace,
                                 bool kill, const std::string& now_rfc3339);

class KubeEventSink final : public watchdog::WatchdogEventSink {
 public:
  // `log` gets FormatWatchdogEvent's line for every event (and post failures).
  KubeEventSink(kube::KubeApi& api, std::string node_name, std::chrono::milliseconds kill_grace,
                bool kill, std::function<void(const std::string&)> log);
  ~KubeEventSink() override;
  KubeEventSink(const KubeEventSink&) = delete;
  KubeEventSink& operator=(const KubeEventSink&) = delete;

  void SetPod(const std::string& watched_name, EventPodRef pod);
  void ForgetPod(const std::string& watched_name);
  // Kill policy of the watchdog this sink serves (for "will be killed in N s").
  void SetKillPolicy(std::chrono::milliseconds kill_grace, bool kill);

  void OnEvent(const watchdog::WatchdogEvent& event) override;
  // Waits until every queued Event has been posted (or failed); for tests and shutdown.
  bool Flush(std::chrono::milliseconds timeout);
  std::size_t posted() const;

 private:
  void Run();

  kube::KubeApi& api_;
  const std::string node_name_;
  std::function<void(const std::string&)> log_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable cv_;
  std::chrono::milliseconds kill_grace_;
  bool kill_;
  std::map<std::string, EventPodRef> pods_;
  std::deque<kube::Json> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::size_t posted_ = 0;
  std::thread thread_;
};

}  // namespace gpuslice
