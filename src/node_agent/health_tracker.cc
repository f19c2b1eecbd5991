#include "node_agent/health_tracker.h"

#include <charconv>

namespace gpuslice {

HealthTracker::HealthTracker(std::set<std::uint64_t> ignored_xids)
    : ignored_xids_(std::move(ignored_xids)) {}

std::set<std::uint64_t> HealthTracker::DefaultIgnoredXids() { return {13, 31, 43, 45, 68, 109}; }

Result<std::set<std::uint64_t>> HealthTracker::ParseXidList(std::string_view text) {
  std::set<std::uint64_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      std::uint64_t xid = 0;
      auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), xid);
      if (ec != std::errc() || ptr != item.data() + item.size()) {
        return InvalidArgument("ignored Xids: \"" + std::string(item) +
                               "\" is not a number; expected a comma-separated list such as "
                               "13,31,43");
      }
      out.insert(xid);
    }
    start = end + 1;
  }
  return out;
}

bool HealthTracker::Apply(const HealthEvent& event) {
  switch (event.kind) {
    case HealthEvent::Kind::kXid:
      if (ignored_xids_.count(event.xid)) return false;
      return MarkUnhealthy(event.device_uuid,
                           "Xid " + std::to_string(event.xid) +
                               (event.detail.empty() ? "" : " (" + event.detail + ")"));
    case HealthEvent::Kind::kRecovered:
      return unhealthy_.erase(event.device_uuid) > 0;
  }
  return false;
}

bool HealthTracker::MarkUnhealthy(const std::string& device_uuid, std::string reason) {
  auto [it, inserted] = unhealthy_.emplace(device_uuid, reason);
  if (!inserted) it->second = std::move(reason);
  return inserted;
}

bool HealthTracker::IsHealthy(const AdvertisedDevice& device) const {
  return Reason(device).empty();
}

std::string HealthTracker::Reason(const AdvertisedDevice& device) const {
  if (auto it = unhealthy_.find(device.device_uuid); it != unhealthy_.end()) return it->second;
  if (auto it = unhealthy_.find(device.gpu_uuid); it != unhealthy_.end()) return it->second;
  return {};
}

}  // namespace gpuslice
