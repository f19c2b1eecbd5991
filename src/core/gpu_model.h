// The catalogue of GPU models gpuslice knows, and their MIG GPU-instance profiles.
//
// Placement facts are in memory slices: an 8-slice GPU (A100, H100, H200, B200) or a 4-slice
// GPU (A30). A profile occupies `size_slots` consecutive slices starting at one of its
// `start_slots`, and uses `compute_slices` of the GPU's compute slices (7 or 4).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gpuslice {

struct MigProfile {
  int id = 0;                      // nvidia-smi GPU-instance profile id (19, 20, 15, 14, 9, 5, 0)
  std::string name;                // e.g. "1g.10gb", "1g.10gb+me"
  int compute_slices = 0;          // the "Ng" part
  int size_slots = 0;              // memory slices occupied
  std::uint64_t memory_bytes = 0;  // memory of the instance
  int multiprocessor_count = 0;    // SMs of the instance
  int max_count = 0;               // most instances of this profile one GPU can hold
  std::vector<int> start_slots;    // valid placement starts
  bool media_extensions = false;   // "+me": owns the GPU's media engines
  int copy_engines = 0;
  int decoders = 0;
  int encoders = 0;
  int jpeg_engines = 0;
  int ofa_engines = 0;

  // Whether an instance of this profile may start at memory slice `slot`.
  bool CanStartAt(int slot) const;
};

struct GpuModel {
  std::string name;                  // catalogue key, e.g. "A100-SXM4-40GB"
  std::string product_name;          // as nvmlDeviceGetName reports it
  std::vector<std::string> aliases;  // other accepted names, e.g. "A100-40GB"
  std::uint64_t memory_bytes = 0;
  int multiprocessor_count = 0;
  int compute_major = 0;
  int compute_minor = 0;
  int memory_slices = 0;  // 0 when the model is not MIG capable
  int compute_slices = 0;
  std::vector<MigProfile> mig_profiles;  // in `nvidia-smi mig -lgip` order

  bool mig_capable() const { return memory_slices > 0; }
  // The profile with this name ("1g.10gb", case-insensitive) or nvidia-smi id, or nullptr.
  const MigProfile* FindProfile(std::string_view profile_name) const;
  const MigProfile* FindProfileById(int profile_id) const;
  // "1g.5gb, 1g.5gb+me, ..." for error messages; "none (not MIG capable)" when there are none.
  std::string AcceptedProfileNames() const;
};

// A MIG profile as it appears in resource names and label keys, which cannot hold '+': NVIDIA
// writes "1g.5gb+me" as "1g.5gb.me" and "1g.24gb+gfx" as "1g.24gb.gfx".
std::string MigProfileResourceName(std::string_view profile_name);

// Every catalogued model.
std::span<const GpuModel> AllGpuModels();

// Looks a model up by catalogue key, alias or product name (case-insensitive, surrounding spaces
// ignored); nullptr if unknown. Product names from old drivers without the "NVIDIA " prefix
// ("A100-SXM4-40GB") are found too.
const GpuModel* FindGpuModel(std::string_view name);

}  // namespace gpuslice
