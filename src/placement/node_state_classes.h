// Groups a cluster's nodes by the state their placement scores depend on, so that a policy
// computes a candidate's score once per group ("class") of identical nodes instead of once per
// node: empty nodes of one kind, full ones, and nodes that received the same pods are alike, and
// in fill runs on the trace 78–90 % of the per-node score computations repeat one made for
// another node or an earlier visit of the same state (docs/benchmarks.md, issue 16 speed).
//
// Two nodes share a class when they have the same spec resources (CPU, memory, GPU count, model,
// per-GPU memory) and the same free CPU and per-GPU state (free share, memory, compute), in GPU
// order. Not part of it: the node's name and its free memory, so scores cached per class must not
// depend on them (the policies check a pod's memory per node, before scoring).
//
// Class ids are small integers. A class that no node is in any more is kept for a while (a node
// often returns to a state it had: a pod placed, then removed) and later reused for a new state;
// NodeChanged says when an id starts naming a new state, so the caller drops what it cached under
// that id. Not thread safe; one policy owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "placement/cluster_state.h"

namespace gpuslice::placement {

class NodeStateClasses {
 public:
  // Assigns every node of `state` to a class; every id below class_capacity() names a new state.
  // With `per_node`, each node is a class of its own (for scores that are not functions of the
  // node's state, such as gpu-clustering's, which remembers the pods' request classes).
  void Reset(const ClusterState& state, bool per_node);

  struct Change {
    std::uint32_t class_id = 0;
    bool new_state = false;  // the id was unused or named another state until now
  };
  // Moves `node` to the class of its current state (call after it changed).
  Change NodeChanged(const ClusterState& state, int node);

  std::uint32_t ClassOf(int node) const { return class_of_[static_cast<std::size_t>(node)]; }
  // Every class id is below this.
  std::size_t class_capacity() const { return members_.size(); }
  std::size_t node_count() const { return class_of_.size(); }
  // Classes with at least one node (for tests and measurements).
  std::size_t live_classes() const { return live_; }

 private:
  std::string KeyOf(const ClusterState& state, int node) const;
  Change Enter(std::string key);
  void Leave(std::uint32_t id);

  bool per_node_ = false;
  std::size_t max_retired_ = 0;            // unused classes kept before ids are reused
  std::vector<std::uint32_t> class_of_;    // per node
  std::vector<std::uint32_t> members_;     // per class: nodes in it
  std::vector<std::string> key_of_;        // per class: its state
  std::vector<std::uint64_t> retired_at_;  // per class: stamp of its last retirement
  std::unordered_map<std::string, std::uint32_t> by_key_;
  struct Retired {
    std::uint32_t id;
    std::uint64_t stamp;
  };
  std::deque<Retired> retired_;  // oldest first; entries of revived classes are skipped
  std::size_t retired_count_ = 0;
  std::uint64_t next_stamp_ = 0;
  std::size_t live_ = 0;
};

}  // namespace gpuslice::placement
