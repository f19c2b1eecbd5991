#include "watchdog/memory_watchdog.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

namespace gpuslice::watchdog {

namespace {

// `process_cgroup` is `container_cgroup` or below it. No allocation: called for every process
// and container on every check.
bool InCgroup(const std::string& process_cgroup, const std::string& container_cgroup) {
  const std::size_t n = container_cgroup.size();
  return process_cgroup.size() >= n && process_cgroup.compare(0, n, container_cgroup) == 0 &&
         (process_cgroup.size() == n || process_cgroup[n] == '/');
}

}  // namespace

Status WatchdogOptions::Validate() const {
  if (check_interval.count() < 1 || check_interval > kMaxCheckInterval) {
    return InvalidArgument("watchdog check interval " + std::to_string(check_interval.count()) +
                           " ms: accepted 1-1000 ms");
  }
  if (kill_grace.count() < 0) {
    return InvalidArgument("watchdog kill grace period " + std::to_string(kill_grace.count()) +
                           " ms: must be 0 or more");
  }
  return Status::Ok();
}

std::string FormatWatchdogEvent(const WatchdogEvent& e) {
  std::ostringstream line;
  line << "gpuslice watchdog: container " << e.container << " ";
  switch (e.kind) {
    case WatchdogEventKind::kOverLimit:
      line << "uses " << e.used_bytes << " bytes of GPU " << e.gpu_index << ", over its limit of "
           << e.limit_bytes << " bytes";
      break;
    case WatchdogEventKind::kKilled:
      line << "killed process " << e.pid << " (" << e.pid_bytes << " bytes on GPU " << e.gpu_index
           << "): the container used " << e.used_bytes << " of " << e.limit_bytes
           << " bytes past the grace period";
      break;
    case WatchdogEventKind::kBackUnderLimit:
      line << "is back within its limit on GPU " << e.gpu_index << " (" << e.used_bytes << " of "
           << e.limit_bytes << " bytes)";
      break;
  }
  return line.str();
}

void SigkillProcessKiller::Kill(std::int32_t pid) {
  // Never init, never the watchdog's own process (a supervisor watching its descendants).
  if (pid > 1 && pid != ::getpid()) ::kill(pid, SIGKILL);
}

MemoryWatchdog::MemoryWatchdog(WatchdogOptions options, GpuProcessUsageSource& usage,
                               ProcessTable& processes, ProcessKiller& killer,
                               WatchdogEventSink& events, const Clock& clock)
    : options_(options),
      usage_(usage),
      processes_(processes),
      killer_(killer),
      events_(events),
      clock_(clock) {}

MemoryWatchdog::~MemoryWatchdog() { Stop(); }

void MemoryWatchdog::Watch(WatchedContainer container) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string name = container.name;
  containers_[name] = std::move(container);
}

void MemoryWatchdog::Unwatch(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  containers_.erase(name);
  for (auto it = over_since_.begin(); it != over_since_.end();) {
    it = it->first.container == name ? over_since_.erase(it) : std::next(it);
  }
}

const WatchedContainer* MemoryWatchdog::ContainerOf(std::int32_t pid) {
  std::optional<std::string> cgroup;
  bool cgroup_read = false;
  for (const auto& [name, container] : containers_) {
    if (container.cgroup.empty()) continue;
    if (!cgroup_read) {
      cgroup = processes_.CgroupOf(pid);
      cgroup_read = true;
    }
    if (cgroup && InCgroup(*cgroup, container.cgroup)) return &container;
  }
  // Ancestry: bounded walk up the parent chain.
  std::int32_t current = pid;
  for (int depth = 0; depth < 64 && current > 1; ++depth) {
    for (const auto& [name, container] : containers_) {
      if (container.root_pid > 0 && container.root_pid == current) return &container;
    }
    const std::optional<std::int32_t> parent = processes_.ParentOf(current);
    if (!parent) break;
    current = *parent;
  }
  return nullptr;
}

Status MemoryWatchdog::CheckOnce() {
  Result<std::vector<GpuProcessUsage>> rows = usage_.ReadProcessUsage();
  if (!rows.ok()) return rows.status().WithContext("watchdog: reading per-process GPU memory");
  const Clock::TimePoint now = clock_.Now();
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<Key, std::vector<ProcessBytes>> by_key;
  for (const GpuProcessUsage& row : *rows) {
    const WatchedContainer* container = ContainerOf(row.pid);
    if (container == nullptr) continue;
    by_key[{container->name, row.gpu_index}].push_back({row.pid, row.used_bytes});
  }
  std::vector<ContainerGpuUsage> usage;
  std::set<Key> seen;
  for (auto& [key, list] : by_key) {
    std::uint64_t used = 0;
    for (const ProcessBytes& p : list) used += p.bytes;
    const WatchedContainer& container = containers_.at(key.container);
    const auto limit_it = container.limit_bytes.find(key.gpu_index);
    const std::uint64_t limit = limit_it != container.limit_bytes.end() ? limit_it->second : 0;
    usage.push_back({key.container, key.gpu_index, used, limit, used > limit});
    seen.insert(key);
    Enforce(key, used, limit, std::move(list), now);
  }
  // Containers that held too much and now hold nothing on that GPU.
  for (auto it = over_since_.begin(); it != over_since_.end();) {
    if (seen.count(it->first) != 0) {
      ++it;
      continue;
    }
    const auto c = containers_.find(it->first.container);
    std::uint64_t limit = 0;
    if (c != containers_.end()) {
      const auto l = c->second.limit_bytes.find(it->first.gpu_index);
      if (l != c->second.limit_bytes.end()) limit = l->second;
    }
    events_.OnEvent({WatchdogEventKind::kBackUnderLimit, it->first.container, it->first.gpu_index,
                     0, limit, 0, 0});
    it = over_since_.erase(it);
  }
  last_usage_ = std::move(usage);
  return Status::Ok();
}

void MemoryWatchdog::Enforce(const Key& key, std::uint64_t used, std::uint64_t limit,
                             std::vector<ProcessBytes> processes, Clock::TimePoint now) {
  auto over = over_since_.find(key);
  if (used <= limit) {
    if (over != over_since_.end()) {
      events_.OnEvent(
          {WatchdogEventKind::kBackUnderLimit, key.container, key.gpu_index, used, limit, 0, 0});
      over_since_.erase(over);
    }
    return;
  }
  if (over == over_since_.end()) {
    over = over_since_.emplace(key, now).first;
    events_.OnEvent(
        {WatchdogEventKind::kOverLimit, key.container, key.gpu_index, used, limit, 0, 0});
  }
  if (!options_.kill || now - over->second < options_.kill_grace) return;
  // Largest first, until what is left fits.
  std::sort(processes.begin(), processes.end(),
            [](const ProcessBytes& a, const ProcessBytes& b) { return a.bytes > b.bytes; });
  std::uint64_t remaining = used;
  for (const ProcessBytes& p : processes) {
    if (remaining <= limit) break;
    killer_.Kill(p.pid);
    events_.OnEvent(
        {WatchdogEventKind::kKilled, key.container, key.gpu_index, used, limit, p.pid, p.bytes});
    remaining -= p.bytes;
  }
}

void MemoryWatchdog::Start(std::function<void(const Status&)> on_error) {
  Stop();
  {
    std::lock_guard<std::mutex> lock(run_mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this, on_error = std::move(on_error)] {
    std::string last_error;
    std::unique_lock<std::mutex> lock(run_mutex_);
    while (!stopping_) {
      lock.unlock();
      const Status status = CheckOnce();
      if (!status.ok() && status.message() != last_error && on_error) on_error(status);
      last_error = status.ok() ? "" : status.message();
      lock.lock();
      run_cv_.wait_for(lock, options_.check_interval, [this] { return stopping_; });
    }
  });
}

void MemoryWatchdog::Stop() {
  {
    std::lock_guard<std::mutex> lock(run_mutex_);
    stopping_ = true;
  }
  run_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<ContainerGpuUsage> MemoryWatchdog::LastUsage() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_usage_;
}

}  // namespace gpuslice::watchdog
