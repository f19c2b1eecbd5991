// The GPU model catalogue.
//
// Sources of the figures (checked 2026-11 with the project's search tools):
//  - MIG profile ids, instance counts, memory (GiB, two decimals), SMs and engines:
//    `nvidia-smi mig -lgip` outputs quoted in NVIDIA/mig-parted and NVIDIA/gpu-operator issues
//    and pull requests (H100 NVL, H200, B200, GH200/H100-96GB, A30) and GPU Feature Discovery
//    label dumps (`nvidia.com/mig-<p>.memory` in MiB for A100 80GB and H100 80GB).
//  - Placements: `nvidia-smi mig -lgipp` (H100 NVL, A30 quoted verbatim; the other 8-slice parts
//    share the same geometry).
//  - Whole-GPU memory: what NVML/nvidia-smi reports as total MiB on current drivers.
// A figure marked "derived" below could not be confirmed and was computed from its neighbours;
// nothing in the placement logic depends on memory or SM figures.
#include "core/gpu_model.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

namespace gpuslice {
namespace {

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

// Engine counts of one GPU-instance profile, as `nvidia-smi mig -lgip` lists them.
struct Engines {
  int copy = 0;
  int decoders = 0;
  int encoders = 0;
  int jpeg = 0;
  int ofa = 0;
};

// Where a profile may sit on an 8-memory-slice GPU; shared by every A100/H100/H200/B200 part.
// Index order (the order of `nvidia-smi mig -lgip`): 1g, 1g+me, 1g with double memory, 2g, 3g,
// 4g, 7g.
struct Geometry {
  int id;
  int compute_slices;
  int size_slots;
  int max_count;
  std::vector<int> start_slots;
  bool media_extensions;
};

const std::array<Geometry, 7>& EightSliceGeometry() {
  static const std::array<Geometry, 7> kGeometry = {{
      {19, 1, 1, 7, {0, 1, 2, 3, 4, 5, 6}, false},
      {20, 1, 1, 1, {0, 1, 2, 3, 4, 5, 6}, true},
      {15, 1, 2, 4, {0, 2, 4, 6}, false},
      {14, 2, 2, 3, {0, 2, 4}, false},
      {9, 3, 4, 2, {0, 4}, false},
      {5, 4, 4, 1, {0}, false},
      {0, 7, 8, 1, {0}, false},
  }};
  return kGeometry;
}

// Per-model figures of an 8-slice GPU, in EightSliceGeometry() order. The "+me" profile's name
// is the 1g name plus "+me"; its memory and SMs are those of the 1g profile.
struct EightSliceFigures {
  std::array<const char*, 6> names;         // 1g, 1g double, 2g, 3g, 4g, 7g
  std::array<std::uint64_t, 6> memory_mib;  // same order as names
  std::array<int, 6> multiprocessors;       // same order as names
  std::array<Engines, 7> engines;           // EightSliceGeometry() order
};

MigProfile MakeProfile(const Geometry& g, std::string name, std::uint64_t memory_mib, int sms,
                       const Engines& e) {
  MigProfile p;
  p.id = g.id;
  p.name = std::move(name);
  p.compute_slices = g.compute_slices;
  p.size_slots = g.size_slots;
  p.memory_bytes = memory_mib * kMiB;
  p.multiprocessor_count = sms;
  p.max_count = g.max_count;
  p.start_slots = g.start_slots;
  p.media_extensions = g.media_extensions;
  p.copy_engines = e.copy;
  p.decoders = e.decoders;
  p.encoders = e.encoders;
  p.jpeg_engines = e.jpeg;
  p.ofa_engines = e.ofa;
  return p;
}

std::vector<MigProfile> EightSliceProfiles(const EightSliceFigures& f) {
  const auto& geometry = EightSliceGeometry();
  std::vector<MigProfile> out;
  for (std::size_t i = 0; i < geometry.size(); ++i) {
    // Index into the 6-entry arrays: the +me profile (1) reuses the 1g figures (0).
    const std::size_t fig = i == 0 ? 0 : i - 1;
    std::string name = f.names[fig];
    if (geometry[i].media_extensions) name += "+me";
    out.push_back(MakeProfile(geometry[i], std::move(name), f.memory_mib[fig],
                              f.multiprocessors[fig], f.engines[i]));
  }
  return out;
}

// Engine counts shared within a GPU family (8-slice geometry order).
constexpr std::array<Engines, 7> kAmpereEngines = {{
    {1, 0, 0, 0, 0},  // 1g
    {1, 1, 0, 1, 1},  // 1g+me
    {1, 1, 0, 0, 0},  // 1g, double memory
    {2, 1, 0, 0, 0},  // 2g
    {3, 2, 0, 0, 0},  // 3g
    {4, 2, 0, 0, 0},  // 4g
    {7, 5, 0, 1, 1},  // 7g
}};
constexpr std::array<Engines, 7> kHopperEngines = {{
    {1, 1, 0, 1, 0},
    {1, 1, 0, 1, 1},
    {1, 1, 0, 1, 0},
    {2, 2, 0, 2, 0},
    {3, 3, 0, 3, 0},
    {4, 4, 0, 4, 0},
    {8, 7, 0, 7, 1},
}};
// B200: 1g/1g+me/1g.45gb/2g from `-lgip`; the 3g/4g/7g copy engines from NVIDIA's MIG user guide
// table; their decoder/JPEG counts are derived (one per compute slice, as on Hopper).
constexpr std::array<Engines, 7> kBlackwellEngines = {{
    {2, 1, 0, 1, 0},
    {2, 1, 0, 1, 1},
    {2, 1, 0, 1, 0},
    {4, 2, 0, 2, 0},
    {6, 3, 0, 3, 0},
    {8, 4, 0, 4, 0},
    {16, 7, 0, 7, 1},
}};

constexpr std::array<int, 6> kAmpereSms = {14, 14, 28, 42, 56, 98};
constexpr std::array<int, 6> kHopperSms = {16, 26, 32, 60, 64, 132};

struct ModelSpec {
  const char* name;
  const char* product_name;
  std::vector<std::string> aliases;
  std::uint64_t memory_mib;
  int multiprocessors;
  int compute_major;
  int compute_minor;
};

GpuModel MakeModel(const ModelSpec& spec) {
  GpuModel m;
  m.name = spec.name;
  m.product_name = spec.product_name;
  m.aliases = spec.aliases;
  m.memory_bytes = spec.memory_mib * kMiB;
  m.multiprocessor_count = spec.multiprocessors;
  m.compute_major = spec.compute_major;
  m.compute_minor = spec.compute_minor;
  return m;
}

GpuModel EightSliceModel(const ModelSpec& spec, const EightSliceFigures& figures) {
  GpuModel m = MakeModel(spec);
  m.memory_slices = 8;
  m.compute_slices = 7;
  m.mig_profiles = EightSliceProfiles(figures);
  return m;
}

// A30: 4 memory slices, 4 compute slices (`nvidia-smi mig -lgip` / `-lgipp` on an A30). The
// 2g.12gb+me profile (id 6) is not in the R450 listing we found; it is in NVML's profile list
// (GPU_INSTANCE_PROFILE_2_SLICE_REV1, one instance, JPEG+OFA) and NVIDIA's MIG user guide.
GpuModel A30() {
  GpuModel m = MakeModel({"A30", "NVIDIA A30", {"A30-24GB", "A30-PCIE-24GB"}, 24576, 56, 8, 0});
  m.memory_slices = 4;
  m.compute_slices = 4;
  const std::array<Geometry, 5> geometry = {{
      {14, 1, 1, 4, {0, 1, 2, 3}, false},
      {21, 1, 1, 1, {0, 1, 2, 3}, true},
      {5, 2, 2, 2, {0, 2}, false},
      {6, 2, 2, 1, {0, 2}, true},
      {0, 4, 4, 1, {0}, false},
  }};
  m.mig_profiles = {
      MakeProfile(geometry[0], "1g.6gb", 5952, 14, {1, 1, 0, 0, 0}),
      MakeProfile(geometry[1], "1g.6gb+me", 5952, 14, {1, 1, 0, 1, 1}),
      MakeProfile(geometry[2], "2g.12gb", 11968, 28, {2, 2, 0, 0, 0}),
      MakeProfile(geometry[3], "2g.12gb+me", 11968, 28, {2, 2, 0, 1, 1}),
      MakeProfile(geometry[4], "4g.24gb", 24064, 56, {4, 4, 0, 1, 1}),
  };
  return m;
}

std::vector<GpuModel> BuildCatalogue() {
  // A100 40GB: 4.75 / 9.62 / 9.62 / 19.50 / 19.50 / 39.25 GiB.
  const EightSliceFigures a100_40gb = {
      {"1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"},
      {4864, 9856, 9856, 19968, 19968, 40192},
      kAmpereSms,
      kAmpereEngines};
  // A100 80GB: 1g.10gb 9728, 2g.20gb 19968, 3g.40gb 40192 MiB from GFD labels; 1g.20gb and
  // 4g.40gb share their neighbours' sizes; 7g.80gb 80384 MiB is derived (2 x 4g).
  const EightSliceFigures a100_80gb = {
      {"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"},
      {9728, 19968, 19968, 40192, 40192, 80384},
      kAmpereSms,
      kAmpereEngines};
  // H100 80GB: 1g.10gb 9984 and 2g.20gb 20096 MiB from GFD labels; 3g/4g 39.50 GiB and 7g 79.25
  // GiB are derived from the `-lgip` figures of the same generation.
  const EightSliceFigures h100_80gb = {
      {"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"},
      {9984, 20096, 20096, 40448, 40448, 81152},
      kHopperSms,
      kHopperEngines};
  // H100 PCIe has 114 SMs; its per-profile SM counts could not be confirmed and are scaled
  // (derived) from the SXM part: 14 per compute slice.
  const EightSliceFigures h100_pcie = {
      {"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"},
      {9984, 20096, 20096, 40448, 40448, 81152},
      {14, 14, 28, 42, 56, 114},
      kHopperEngines};
  // H100 NVL: 10.75 / 21.62 / 21.62 / 46.38 / 46.38 / 93.12 GiB; MiB confirmed by nvidia-smi's
  // MIG device table for 1g.12gb, 1g.24gb and 3g.47gb.
  const EightSliceFigures h100_nvl = {
      {"1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"},
      {11008, 22144, 22144, 47488, 47488, 95360},
      kHopperSms,
      kHopperEngines};
  // H100 96GB (also GH200 with 96GB HBM3): 11.00 / 23.00 / 23.00 / 46.50 / 46.50 / 93.00 GiB.
  const EightSliceFigures h100_96gb = {
      {"1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"},
      {11264, 23552, 23552, 47616, 47616, 95232},
      kHopperSms,
      kHopperEngines};
  // H200: 16.00 / 32.25 / 32.25 / 69.50 / 69.50 / 139.75 GiB (mig-parted issue 120's driver;
  // newer drivers report a little more for the 1g profiles).
  const EightSliceFigures h200 = {
      {"1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"},
      {16384, 33024, 33024, 71168, 71168, 143104},
      kHopperSms,
      kHopperEngines};
  // B200: 1g 22.00 and 1g.45gb/2g 44.25 GiB and SMs 18/30/36 from `-lgip`; the 3g/4g (89.00 GiB,
  // 60/72 SMs) and 7g (178.25 GiB, 148 SMs) figures are derived.
  const EightSliceFigures b200 = {
      {"1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"},
      {22528, 45312, 45312, 91136, 91136, 182528},
      {18, 30, 36, 60, 72, 148},
      kBlackwellEngines};

  std::vector<GpuModel> models;
  models.push_back(EightSliceModel(
      {"A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", {"A100-40GB"}, 40960, 108, 8, 0}, a100_40gb));
  models.push_back(EightSliceModel(
      {"A100-PCIE-40GB", "NVIDIA A100-PCIE-40GB", {"A100-PCIe-40GB"}, 40960, 108, 8, 0},
      a100_40gb));
  models.push_back(EightSliceModel(
      {"A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", {"A100-80GB"}, 81920, 108, 8, 0}, a100_80gb));
  models.push_back(EightSliceModel(
      {"A100-PCIE-80GB", "NVIDIA A100 80GB PCIe", {"A100-80GB-PCIE"}, 81920, 108, 8, 0},
      a100_80gb));
  models.push_back(A30());
  models.push_back(EightSliceModel(
      {"H100-80GB", "NVIDIA H100 80GB HBM3", {"H100-SXM5-80GB"}, 81559, 132, 9, 0}, h100_80gb));
  models.push_back(EightSliceModel(
      {"H100-PCIE-80GB", "NVIDIA H100 PCIe", {"H100-PCIE"}, 81559, 114, 9, 0}, h100_pcie));
  models.push_back(EightSliceModel(
      {"H100-NVL", "NVIDIA H100 NVL", {"H100-NVL-94GB", "H100-94GB"}, 95830, 132, 9, 0}, h100_nvl));
  // Whole-GPU memory 97871 MiB is what GH200 96GB systems report; not confirmed for H100 96GB.
  models.push_back(EightSliceModel({"H100-96GB",
                                    "NVIDIA H100 96GB HBM3",
                                    {"NVIDIA H100 96GB", "GH200-96GB", "NVIDIA GH200 480GB"},
                                    97871,
                                    132,
                                    9,
                                    0},
                                   h100_96gb));
  models.push_back(EightSliceModel(
      {"H200-141GB", "NVIDIA H200", {"H200", "H200-SXM-141GB"}, 143771, 132, 9, 0}, h200));
  // 183359 MiB: as nvidia-smi commonly shows a B200; not confirmed here.
  models.push_back(
      EightSliceModel({"B200", "NVIDIA B200", {"B200-180GB"}, 183359, 148, 10, 0}, b200));

  // Not MIG capable. Names as the Alibaba GPU trace (openb node list) spells them are aliases:
  // T4, A10, P100, V100M16, V100M32; its anonymised G2/G3 models are not catalogued.
  models.push_back(MakeModel({"T4", "Tesla T4", {"NVIDIA T4"}, 15360, 40, 7, 5}));
  // V100/P100 totals are what recent drivers report; older ones report slightly less.
  models.push_back(MakeModel(
      {"V100-SXM2-16GB", "Tesla V100-SXM2-16GB", {"V100M16", "V100-16GB"}, 16384, 80, 7, 0}));
  models.push_back(MakeModel(
      {"V100-SXM2-32GB", "Tesla V100-SXM2-32GB", {"V100M32", "V100-32GB"}, 32768, 80, 7, 0}));
  models.push_back(MakeModel(
      {"P100-PCIE-16GB", "Tesla P100-PCIE-16GB", {"P100", "P100-16GB"}, 16384, 56, 6, 0}));
  models.push_back(MakeModel({"A10", "NVIDIA A10", {}, 23028, 72, 8, 6}));
  models.push_back(MakeModel({"L4", "NVIDIA L4", {}, 23034, 58, 8, 9}));
  return models;
}

const std::vector<GpuModel>& Catalogue() {
  static const std::vector<GpuModel> kModels = BuildCatalogue();
  return kModels;
}

const GpuModel* FindExact(std::string_view name) {
  for (const GpuModel& m : Catalogue()) {
    if (EqualsIgnoreCase(m.name, name) || EqualsIgnoreCase(m.product_name, name)) return &m;
    for (const std::string& alias : m.aliases) {
      if (EqualsIgnoreCase(alias, name)) return &m;
    }
  }
  return nullptr;
}

}  // namespace

bool MigProfile::CanStartAt(int slot) const {
  return std::find(start_slots.begin(), start_slots.end(), slot) != start_slots.end();
}

const MigProfile* GpuModel::FindProfile(std::string_view profile_name) const {
  for (const MigProfile& p : mig_profiles) {
    if (p.name == profile_name) return &p;
  }
  for (const MigProfile& p : mig_profiles) {
    if (EqualsIgnoreCase(p.name, profile_name)) return &p;
  }
  return nullptr;
}

const MigProfile* GpuModel::FindProfileById(int profile_id) const {
  for (const MigProfile& p : mig_profiles) {
    if (p.id == profile_id) return &p;
  }
  return nullptr;
}

std::string GpuModel::AcceptedProfileNames() const {
  if (mig_profiles.empty()) return "none (not MIG capable)";
  std::string out;
  for (const MigProfile& p : mig_profiles) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

std::span<const GpuModel> AllGpuModels() { return Catalogue(); }

const GpuModel* FindGpuModel(std::string_view name) {
  const std::string_view trimmed = Trim(name);
  if (trimmed.empty()) return nullptr;
  if (const GpuModel* m = FindExact(trimmed)) return m;
  // Old drivers print product names without the "NVIDIA " prefix.
  const std::string with_prefix = "NVIDIA " + std::string(trimmed);
  if (const GpuModel* m = FindExact(with_prefix)) return m;
  constexpr std::string_view kPrefix = "nvidia ";
  if (trimmed.size() > kPrefix.size() && Lower(trimmed.substr(0, kPrefix.size())) == kPrefix) {
    return FindExact(Trim(trimmed.substr(kPrefix.size())));
  }
  return nullptr;
}

std::string MigProfileResourceName(std::string_view profile_name) {
  std::string out(profile_name);
  std::replace(out.begin(), out.end(), '+', '.');
  return out;
}

}  // namespace gpuslice
