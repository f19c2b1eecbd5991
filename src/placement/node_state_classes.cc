#include "placement/node_state_classes.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace gpuslice::placement {
namespace {

template <typename T>
void Append(std::string& key, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  key.append(bytes, sizeof(T));
}

}  // namespace

void NodeStateClasses::Reset(const ClusterState& state, bool per_node) {
  per_node_ = per_node;
  // Enough to keep the states of a scheduler's recent binds and deletions, bounded so that the
  // per-class caches of a long run stay near those of one cache per node.
  max_retired_ = std::max<std::size_t>(16, state.node_count() / 4);
  class_of_.assign(state.node_count(), 0);
  members_.clear();
  key_of_.clear();
  retired_at_.clear();
  by_key_.clear();
  retired_.clear();
  retired_count_ = 0;
  live_ = 0;
  for (std::size_t node = 0; node < state.node_count(); ++node) {
    class_of_[node] = Enter(KeyOf(state, static_cast<int>(node))).class_id;
  }
}

NodeStateClasses::Change NodeStateClasses::NodeChanged(const ClusterState& state, int node) {
  std::uint32_t& current = class_of_[static_cast<std::size_t>(node)];
  // A class of its own: what its scores depend on changed, though its key did not.
  if (per_node_) return {current, true};
  std::string key = KeyOf(state, node);
  if (key == key_of_[current]) return {current, false};
  Leave(current);
  const Change change = Enter(std::move(key));
  current = change.class_id;
  return change;
}

std::string NodeStateClasses::KeyOf(const ClusterState& state, int node) const {
  std::string key;
  if (per_node_) {
    Append(key, node);
    return key;
  }
  const NodeState& n = state.node(node);
  key.reserve(6 * sizeof(std::int64_t) + n.gpus.size() * (2 * sizeof(int) + sizeof(std::int64_t)));
  Append(key, n.spec.cpu_milli);
  Append(key, n.spec.memory_mib);
  Append(key, n.spec.gpu_memory_mib);
  Append(key, n.model_id);
  Append(key, static_cast<std::uint32_t>(n.gpus.size()));
  Append(key, n.cpu_free);
  for (const GpuState& gpu : n.gpus) {
    Append(key, gpu.milli_free);
    Append(key, gpu.compute_free_percent);
    Append(key, gpu.memory_free_mib);
  }
  return key;
}

NodeStateClasses::Change NodeStateClasses::Enter(std::string key) {
  const auto known = by_key_.find(key);
  if (known != by_key_.end()) {
    const std::uint32_t id = known->second;
    if (members_[id]++ == 0) {  // revived: its retired_ entry is now stale
      --retired_count_;
      ++live_;
    }
    return {id, false};
  }
  std::uint32_t id = 0;
  if (retired_count_ > max_retired_) {
    // Reuse the class retired longest ago (skipping entries of classes revived since).
    for (;;) {
      const Retired oldest = retired_.front();
      retired_.pop_front();
      if (members_[oldest.id] == 0 && retired_at_[oldest.id] == oldest.stamp) {
        id = oldest.id;
        break;
      }
    }
    by_key_.erase(key_of_[id]);
    --retired_count_;
  } else {
    id = static_cast<std::uint32_t>(members_.size());
    members_.push_back(0);
    key_of_.emplace_back();
    retired_at_.push_back(0);
  }
  members_[id] = 1;
  ++live_;
  by_key_.emplace(key, id);
  key_of_[id] = std::move(key);
  return {id, true};
}

void NodeStateClasses::Leave(std::uint32_t id) {
  if (--members_[id] != 0) return;
  --live_;
  retired_at_[id] = ++next_stamp_;
  retired_.push_back({id, retired_at_[id]});
  ++retired_count_;
  // Classes retired and revived again and again (a pod placed and removed) leave stale entries.
  if (retired_.size() > 2 * retired_count_ + 64) {
    std::erase_if(retired_, [&](const Retired& r) {
      return members_[r.id] != 0 || retired_at_[r.id] != r.stamp;
    });
  }
}

}  // namespace gpuslice::placement
