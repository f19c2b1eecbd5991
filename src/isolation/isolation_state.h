// The isolation manager's persisted state (<--isolation-dir>/state.json) and the records in it:
// the partitions registered at Allocate and the containers bound to them. Parsing is pure and
// checks every field's type and range, so a corrupted file is refused with the field named
// instead of crashing the agent at restart (tests/fuzz/isolation_state_fuzzer.cc).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gpuslice {

// One more GPU of a container given replicas of several GPUs (time-slicing): its own driver
// limit on the same cgroup.
struct GpuShare {
  std::string gpu_uuid;
  std::uint64_t hard_limit_bytes = 0;
  std::uint64_t soft_limit_bytes = 0;

  bool operator==(const GpuShare&) const = default;
};

struct Partition {
  std::string gpu_uuid;
  std::uint64_t hard_limit_bytes = 0;  // gpuslice.io/gpu-memory limit, or the replica's share
  std::uint64_t soft_limit_bytes = 0;  // the request (<= hard)
  bool mps = false;                    // also an MPS v3 namespace
  int active_thread_percentage = 100;  // MPS only
  int client_priority = 0;             // MPS only
  // Set by RegisterPartition under MPS: "ns-" + the token's first 16 hex digits, so Allocate can
  // name the namespace's socket directory before the container exists.
  std::string mps_namespace = {};
  // A fractional container's limit is known only after Allocate (when the allocation hand-off
  // reads the pod's gpuslice.io/assignment and writes its limits file, named here). Until
  // SetPartitionLimits the hook's request waits in the spool (the hook times out if it never
  // comes); "" = the limits above are final.
  std::string awaiting_limits_from = {};
  // Set when the token's container ended while its pod lives: the kubelet restarts a container
  // with the same Allocate response (token included), so the token binds again, but only a
  // container in this pod cgroup (the parent of the ended container's cgroup). "" = any.
  std::string pod_cgroup = {};
  // The container's other GPUs (replicas of several GPUs under time-slicing; not with MPS):
  // one token binds a driver limit on each.
  std::vector<GpuShare> more_gpus = {};
  // What Allocate gave the container (the resource and its device IDs, sorted), so that a token
  // whose pod the kubelet no longer lists (deleted before its container was created) can be
  // released; empty in state files written before.
  std::string resource_name = {};
  std::vector<std::string> device_ids = {};

  bool operator==(const Partition&) const = default;
};

struct ContainerBinding {
  std::string container_id;
  long pid = 0;
  std::string cgroup_path;
  Partition partition;
  std::string mps_server;     // "" unless partition.mps
  std::string mps_namespace;  // ditto
  std::string token;          // the token it bound ("" in state files written before)

  bool operator==(const ContainerBinding&) const = default;
};

struct IsolationState {
  std::map<std::string, Partition> pending;  // token -> partition
  std::vector<ContainerBinding> containers;

  bool operator==(const IsolationState&) const = default;
};

// The state file's text (version 1).
std::string FormatIsolationState(const IsolationState& state);

// Parses a state file's text; `where` (the path) starts every error. Accepted: a JSON object with
// "version": 1, an optional "pending" object of partitions and an optional "containers" array;
// every field optional with the type FormatIsolationState writes (strings, booleans, integers in
// range: byte counts >= 0, threads 1-100, priority 0 or 1, pid 0-2147483647; "moreGpus" an array of
// {"gpu","hard","soft"}; "devices" an array of strings) and container ids as
// ValidateContainerId accepts. Anything else is InvalidArgument naming the field.
Result<IsolationState> ParseIsolationState(std::string_view text, const std::string& where);

}  // namespace gpuslice
