// AllocationTable: what this process allocated through the shim, so a free knows how many bytes
// and which GPU to give back. Per process (frees happen in the allocating process; a process
// that dies has its whole slot reclaimed instead). Thread-safe; never throws.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace gpuslice::shim {

enum class AllocationKind : std::uint8_t {
  kDevicePointer = 0,  // cuMemAlloc*, cuMemAllocManaged, stream-ordered allocations
  kIpcPointer,         // cuIpcOpenMemHandle (VMM handles have their own ledger)
  kArray,              // cuArrayCreate, cuArray3DCreate
  kMipmappedArray,     // cuMipmappedArrayCreate
};
inline constexpr std::size_t kAllocationKinds = 4;

struct AllocationRecord {
  std::uint32_t device_entry = 0;  // index into the limits file's devices
  std::uint64_t bytes = 0;
  const void* context = nullptr;  // owning CUDA context; null when not context-bound
  const void* pool = nullptr;     // stream-ordered: the pool its memory returns to when freed
};

class AllocationTable {
 public:
  // False when memory for the record cannot be had (the caller undoes the allocation).
  bool Insert(AllocationKind kind, std::uint64_t key, const AllocationRecord& record) noexcept;
  // Removes and returns the record; false when `key` was not allocated through the shim.
  bool Remove(AllocationKind kind, std::uint64_t key, AllocationRecord* record) noexcept;
  // Removes every record owned by `context` (it was destroyed or reset) and calls
  // release(record) for each.
  template <typename Release>
  void RemoveContext(const void* context, Release&& release) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& map : maps_) {
      for (auto it = map.begin(); it != map.end();) {
        if (it->second.context == context) {
          release(it->second);
          it = map.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  std::size_t Size() noexcept;

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, AllocationRecord> maps_[kAllocationKinds];
};

}  // namespace gpuslice::shim
