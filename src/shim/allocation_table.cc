#include "shim/allocation_table.h"

namespace gpuslice::shim {

bool AllocationTable::Insert(AllocationKind kind, std::uint64_t key,
                             const AllocationRecord& record) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    maps_[static_cast<std::size_t>(kind)][key] = record;
    return true;
  } catch (...) {
    return false;
  }
}

bool AllocationTable::Remove(AllocationKind kind, std::uint64_t key,
                             AllocationRecord* record) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& map = maps_[static_cast<std::size_t>(kind)];
  auto it = map.find(key);
  if (it == map.end()) return false;
  *record = it->second;
  map.erase(it);
  return true;
}

std::size_t AllocationTable::Size() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t n = 0;
  for (const auto& map : maps_) n += map.size();
  return n;
}

}  // namespace gpuslice::shim
