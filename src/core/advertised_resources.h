// What a node advertises: a pure function of the node's GPUs and the sharing configuration.
//
// It decides the kubelet resources (with their device IDs) the node agent serves and the node
// labels GPU Feature Discovery would set, so that a cluster moving from NVIDIA's device plugin
// sees the same resources and labels.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/sharing_config.h"
#include "core/status.h"

namespace gpuslice {

// One device ID the kubelet sees.
struct AdvertisedDevice {
  std::string id;              // UUID, MIG UUID, or "<UUID>::<replica>"
  std::string device_uuid;     // the GPU or MIG device the ID stands for
  std::string gpu_uuid;        // the physical GPU it lives on
  int gpu_index = 0;
  int mig_index = -1;          // ordinal among the GPU's MIG devices; -1 for a whole GPU
  int replica = -1;            // replica number; -1 when not replicated
  int numa_node = -1;
  bool healthy = true;

  bool operator==(const AdvertisedDevice&) const = default;
};

struct AdvertisedResource {
  std::string name;            // e.g. "nvidia.com/gpu", "nvidia.com/mig-1g.5gb.shared"
  SharingStrategy sharing = SharingStrategy::kNone;
  bool fractional = false;     // gpuslice.io/gpu slots
  // Fractional slots whose compute MPS v3 shares where the GPU has it
  // (gpuslice.fractional.compute: mps); the node agent decides per GPU.
  bool fractional_mps = false;
  bool fail_requests_greater_than_one = false;
  std::vector<AdvertisedDevice> devices;  // ordered by GPU index, MIG index, replica
};

struct NodeAdvertisement {
  std::vector<AdvertisedResource> resources;  // sorted by name; none with zero devices
  std::map<std::string, std::string> labels;
  // Things an operator should know that do not stop the node from advertising, e.g. an invalid
  // MIG layout under `single`, a sharing entry that matched no device.
  std::vector<std::string> warnings;

  const AdvertisedResource* Find(std::string_view resource_name) const;
};

// Node facts GPU Feature Discovery labels that do not come from the GPUs.
struct NodeFacts {
  // The machine's product name (GFD reads flags.gfd.machineTypeFile, by default
  // /sys/class/dmi/id/product_name); "" when unknown. Labelled sanitised as nvidia.com/gpu.machine.
  std::string machine_type;
  // Seconds since the epoch for nvidia.com/gfd.timestamp; no label when unset (noTimestamp).
  std::optional<std::int64_t> timestamp_unix;
};

// Computes the advertisement. Fails (InvalidArgument) when the configuration cannot be applied to
// these GPUs: two sharing entries select the same device, a GPU is both replicated and
// fractional, MPS on a node with MIG-enabled GPUs, two different resources advertised under one
// name. A node without GPUs advertises nothing, with GFD's labels for such a node.
Result<NodeAdvertisement> AdvertiseNode(const std::vector<GpuInfo>& gpus,
                                        const SharingConfig& config, const DriverInfo& driver = {},
                                        const NodeFacts& facts = {});

// GFD's label-value sanitising: drops every character other than letters, digits, '-', '_', '.'
// and space, then joins the words with '-' ("NVIDIA TITAN X (Pascal)" -> "NVIDIA-TITAN-X-Pascal").
std::string SanitiseLabelValue(std::string_view value);

// The machine type as GFD reads it from `path`: the file's content, trimmed; "" when the file
// cannot be read (GFD then labels "unknown").
std::string ReadMachineType(const std::string& path);

// Whether a resources.gpus / resources.mig `pattern` matches a product name or MIG profile as
// NVIDIA matches them: '*' any run, '?' one character, everything else literal, whole string.
bool ResourcePatternMatches(std::string_view pattern, std::string_view subject);

// "GPU-abc::3" -> "GPU-abc"; IDs without a replica suffix are returned unchanged.
std::string StripReplicaSuffix(std::string_view device_id);

}  // namespace gpuslice
