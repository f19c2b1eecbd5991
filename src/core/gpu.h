// What gpuslice knows about one physical GPU and its MIG devices, whichever backend
// (NVML or the simulated node) discovered it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpuslice {

// One MIG device (a GPU instance with one compute instance spanning it).
struct MigDeviceInfo {
  std::string uuid;           // "MIG-<uuid>" as NVML reports it
  std::string profile_name;   // e.g. "1g.10gb"
  int profile_id = 0;         // nvidia-smi GPU-instance profile id, e.g. 19
  int gpu_instance_id = 0;    // GI id on the parent GPU
  int compute_instance_id = 0;
  int start_slot = 0;         // first memory slice of its placement
  int size_slots = 0;         // memory slices it occupies
  std::uint64_t memory_bytes = 0;
  int multiprocessor_count = 0;
  bool healthy = true;
};

// PCI class codes (class << 16 | subclass << 8), which say whether a GPU runs in compute or
// graphics mode (GFD's nvidia.com/gpu.mode).
inline constexpr std::uint32_t kPciClassVgaController = 0x030000;  // graphics
inline constexpr std::uint32_t kPciClass3dController = 0x030200;   // compute

// One physical GPU.
struct GpuInfo {
  int index = 0;                // NVML index
  int minor_number = 0;         // /dev/nvidia<minor>
  std::string uuid;             // "GPU-<uuid>"
  std::string product_name;     // e.g. "NVIDIA A100-SXM4-40GB" (nvmlDeviceGetName)
  std::string model;            // catalogue key, e.g. "A100-SXM4-40GB"; empty if not catalogued
  std::string pci_bus_id;       // e.g. "00000000:07:00.0"
  std::uint32_t pci_class = 0;  // PCI class code (kPciClass...); 0 when unknown
  std::uint64_t memory_bytes = 0;
  int multiprocessor_count = 0;
  int compute_major = 0;
  int compute_minor = 0;
  int numa_node = -1;           // -1 when unknown
  bool mig_capable = false;
  bool mig_enabled = false;
  std::vector<MigDeviceInfo> mig_devices;  // empty unless mig_enabled
  bool healthy = true;
};

// Driver-wide facts, used for labels.
struct DriverInfo {
  std::string driver_version;  // e.g. "550.54.15"
  int cuda_driver_version = 0; // as nvmlSystemGetCudaDriverVersion: 12040 for 12.4
};

// The GPU architecture family name GPU Feature Discovery uses for `nvidia.com/gpu.family`
// ("volta", "turing", "ampere", "ada-lovelace", "hopper", "blackwell", ...), from the compute
// capability; "undefined" when unknown.
std::string GpuFamilyName(int compute_major, int compute_minor);

}  // namespace gpuslice
