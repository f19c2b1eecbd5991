#include "node_agent/kube_event_sink.h"

#include <ctime>
#include <sstream>

namespace gpuslice {
namespace {

constexpr char kComponent[] = "gpuslice-node-agent";
constexpr std::size_t kMaxQueued = 256;  // a flood of events beyond this is logged only

std::string NowRfc3339() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

std::string Message(const watchdog::WatchdogEvent& e, std::chrono::milliseconds grace, bool kill) {
  std::ostringstream m;
  switch (e.kind) {
    case watchdog::WatchdogEventKind::kOverLimit:
      m << "GPU memory limit exceeded on GPU " << e.gpu_index << ": uses " << e.used_bytes
        << " bytes, limit " << e.limit_bytes << " bytes; ";
      if (kill) {
        m << "will be killed in " << std::chrono::duration<double>(grace).count()
          << "s unless back under the limit";
      } else {
        m << "report only (the watchdog does not kill)";
      }
      break;
    case watchdog::WatchdogEventKind::kKilled:
      m << "killed pid " << e.pid << " (" << e.pid_bytes << " bytes on GPU " << e.gpu_index
        << "): the container used " << e.used_bytes << " bytes, limit " << e.limit_bytes
        << " bytes, past the grace period";
      break;
    case watchdog::WatchdogEventKind::kBackUnderLimit:
      m << "back within the GPU memory limit on GPU " << e.gpu_index << ": uses " << e.used_bytes
        << " bytes, limit " << e.limit_bytes << " bytes";
      break;
  }
  return m.str();
}

const char* Reason(watchdog::WatchdogEventKind kind) {
  switch (kind) {
    case watchdog::WatchdogEventKind::kOverLimit:
      return kReasonGpuMemoryLimitExceeded;
    case watchdog::WatchdogEventKind::kKilled:
      return kReasonGpuMemoryProcessKilled;
    case watchdog::WatchdogEventKind::kBackUnderLimit:
      return kReasonGpuMemoryBackUnderLimit;
  }
  return kReasonGpuMemoryLimitExceeded;
}

}  // namespace

kube::Json MakeWatchdogKubeEvent(const watchdog::WatchdogEvent& event, const EventPodRef& pod,
                                 const std::string& node_name, std::chrono::milliseconds kill_grace,
                                 bool kill, const std::string& now_rfc3339) {
  kube::Json involved = {
      {"apiVersion", "v1"}, {"kind", "Pod"}, {"namespace", pod.namespace_name}, {"name", pod.name}};
  if (!pod.uid.empty()) involved["uid"] = pod.uid;
  if (!pod.container.empty()) involved["fieldPath"] = "spec.containers{" + pod.container + "}";
  const bool warning = event.kind != watchdog::WatchdogEventKind::kBackUnderLimit;
  return {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", pod.name + ".gpuslice-"}, {"namespace", pod.namespace_name}}},
      {"involvedObject", involved},
      {"reason", Reason(event.kind)},
      {"message", Message(event, kill_grace, kill)},
      {"type", warning ? "Warning" : "Normal"},
      {"source", {{"component", kComponent}, {"host", node_name}}},
      {"reportingComponent", kComponent},
      {"reportingInstance", node_name},
      {"firstTimestamp", now_rfc3339},
      {"lastTimestamp", now_rfc3339},
      {"count", 1}};
}

KubeEventSink::KubeEventSink(kube::KubeApi& api, std::string node_name,
                             std::chrono::milliseconds kill_grace, bool kill,
                             std::function<void(const std::string&)> log)
    : api_(api),
      node_name_(std::move(node_name)),
      log_(std::move(log)),
      kill_grace_(kill_grace),
      kill_(kill),
      thread_([this] { Run(); }) {}

KubeEventSink::~KubeEventSink() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void KubeEventSink::SetPod(const std::string& watched_name, EventPodRef pod) {
  std::lock_guard<std::mutex> lock(mutex_);
  pods_[watched_name] = std::move(pod);
}

void KubeEventSink::ForgetPod(const std::string& watched_name) {
  std::lock_guard<std::mutex> lock(mutex_);
  pods_.erase(watched_name);
}

void KubeEventSink::SetKillPolicy(std::chrono::milliseconds kill_grace, bool kill) {
  std::lock_guard<std::mutex> lock(mutex_);
  kill_grace_ = kill_grace;
  kill_ = kill;
}

void KubeEventSink::OnEvent(const watchdog::WatchdogEvent& event) {
  if (log_) log_(watchdog::FormatWatchdogEvent(event));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pods_.find(event.container);
    if (it == pods_.end() || queue_.size() >= kMaxQueued) return;
    queue_.push_back(
        MakeWatchdogKubeEvent(event, it->second, node_name_, kill_grace_, kill_, NowRfc3339()));
  }
  cv_.notify_all();
}

void KubeEventSink::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    kube::Json object = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    const std::string ns = object["metadata"]["namespace"].get<std::string>();
    Result<kube::Json> created = api_.Create({"v1", "events", ns, "", ""}, object);
    if (!created.ok() && log_) {
      log_("gpuslice watchdog: cannot post the Kubernetes Event (" +
           object["reason"].get<std::string>() + " on pod " + ns + "/" +
           object["involvedObject"]["name"].get<std::string>() +
           "): " + created.status().message());
    }
    lock.lock();
    busy_ = false;
    if (created.ok()) ++posted_;
    cv_.notify_all();
  }
}

bool KubeEventSink::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

std::size_t KubeEventSink::posted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return posted_;
}

}  // namespace gpuslice
