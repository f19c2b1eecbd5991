#include "core/advertised_resources.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

#include "core/gpu_model.h"
#include "core/resource_names.h"

namespace gpuslice {
namespace {

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;

// A device before sharing is applied: one whole GPU or one MIG device.
struct BaseDevice {
  AdvertisedDevice device;
  const GpuInfo* gpu = nullptr;
  const MigDeviceInfo* mig = nullptr;
};

// '*' matches any run, '?' any one character; the rest literally (case-sensitive, as Go's
// filepath.Match that NVIDIA uses for resource patterns).
bool GlobMatch(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string ResourceNameFor(const std::vector<ResourcePattern>& patterns, std::string_view subject,
                            std::string default_name) {
  if (patterns.empty()) return default_name;
  for (const ResourcePattern& p : patterns) {
    if (GlobMatch(p.pattern, subject)) return std::string(names::kNvidiaPrefix) + p.name;
  }
  return {};
}

// Does `selector` pick `base`, the `position`-th device (0-based) of its resource?
bool Selects(const DeviceSelector& selector, const BaseDevice& base, std::size_t position) {
  switch (selector.kind) {
    case DeviceSelector::Kind::kAll:
      return true;
    case DeviceSelector::Kind::kCount:
      return position < static_cast<std::size_t>(std::max(selector.count, 0));
    case DeviceSelector::Kind::kList:
      break;
  }
  const AdvertisedDevice& d = base.device;
  const std::string gpu_index = std::to_string(d.gpu_index);
  for (const std::string& id : selector.ids) {
    if (id == d.device_uuid || id == d.gpu_uuid || id == gpu_index) return true;
    if (d.mig_index >= 0 && id == gpu_index + ":" + std::to_string(d.mig_index)) return true;
  }
  return false;
}

// True when some device of the node answers to `id` (for warnings about stale selectors).
bool IdExistsOnNode(const std::string& id, const std::vector<GpuInfo>& gpus) {
  for (const GpuInfo& gpu : gpus) {
    const std::string index = std::to_string(gpu.index);
    if (id == gpu.uuid || id == index) return true;
    for (std::size_t m = 0; m < gpu.mig_devices.size(); ++m) {
      if (id == gpu.mig_devices[m].uuid || id == index + ":" + std::to_string(m)) return true;
    }
  }
  return false;
}

std::string SharedResourceName(const ReplicatedResource& entry, const ReplicatedResources& sharing) {
  if (!entry.rename.empty()) return entry.rename;
  if (sharing.rename_by_default) return entry.name + std::string(names::kSharedSuffix);
  return entry.name;
}

std::string EntryPath(const SharingConfig& config, std::size_t i) {
  const char* section = config.sharing_strategy() == SharingStrategy::kMps ? "mps" : "timeSlicing";
  std::ostringstream out;
  out << "sharing." << section << ".resources[" << i << "]";
  const ReplicatedResource& entry = config.replicated()->resources[i];
  if (entry.source_line > 0) out << " (line " << entry.source_line << ")";
  return out.str();
}

std::string DescribeDevice(const AdvertisedDevice& d) {
  if (d.mig_index >= 0) {
    return "MIG device " + std::to_string(d.gpu_index) + ":" + std::to_string(d.mig_index) + " (" +
           d.device_uuid + ")";
  }
  return "GPU " + std::to_string(d.gpu_index) + " (" + d.device_uuid + ")";
}

// Warns about list entries of a sharing entry that select none of the resource's devices here:
// a MIG device under migStrategy none, a GPU index beyond the node's, another node's UUID.
void WarnUnusedIds(const SharingConfig& config, std::size_t i,
                   const std::vector<BaseDevice>* devices, const std::vector<GpuInfo>& gpus,
                   std::vector<std::string>& warnings) {
  const ReplicatedResource& entry = config.replicated()->resources[i];
  if (entry.devices.kind != DeviceSelector::Kind::kList) return;
  for (const std::string& id : entry.devices.ids) {
    DeviceSelector one;
    one.kind = DeviceSelector::Kind::kList;
    one.ids = {id};
    bool used = false;
    for (std::size_t pos = 0; devices != nullptr && pos < devices->size() && !used; ++pos) {
      used = Selects(one, (*devices)[pos], pos);
    }
    if (used) continue;
    warnings.push_back(EntryPath(config, i) + ": devices: \"" + id + "\" " +
                       (IdExistsOnNode(id, gpus)
                            ? "is not a device of " + entry.name +
                                  " on this node (a MIG device under migStrategy none, or a "
                                  "whole GPU under single or mixed); ignored"
                            : "matches no device on this node; ignored"));
  }
}

// Fails when devices of different resources would be advertised under one name (a rename to a
// name the node already advertises), which would make two device plugins register it.
Status CheckNameCollisions(const std::map<std::string, std::set<std::string>>& sources) {
  for (const auto& [advertised, from] : sources) {
    if (from.size() < 2) continue;
    std::string list;
    for (const std::string& name : from) list += (list.empty() ? "" : " and ") + name;
    return InvalidArgument("devices of " + list + " would both be advertised as " + advertised +
                           " on this node; rename the shared resource to a name of its own "
                           "(e.g. <name>.shared)");
  }
  return Status::Ok();
}

// GFD's nvidia.com/gpu.mode: from the GPUs' PCI classes, "unknown" unless all agree.
std::string GpuMode(const std::vector<GpuInfo>& gpus) {
  const std::uint32_t first = gpus.front().pci_class;
  for (const GpuInfo& gpu : gpus) {
    if (gpu.pci_class != first) return "unknown";
  }
  if (first == kPciClassVgaController) return "graphics";
  if (first == kPciClass3dController) return "compute";
  return "unknown";
}

// Replication facts GFD puts on a resource's labels.
struct ReplicationInfo {
  int replicas = 0;      // largest replica count configured for the resource; 0 if none
  bool renamed = false;  // moved to another resource name, so not "-SHARED"
};

ReplicationInfo ReplicationFor(const SharingConfig& config, std::string_view resource_name) {
  ReplicationInfo info;
  const ReplicatedResources* sharing = config.replicated();
  if (sharing == nullptr) return info;
  for (const ReplicatedResource& entry : sharing->resources) {
    if (entry.name != resource_name) continue;
    info.replicas = std::max(info.replicas, entry.replicas);
    info.renamed = info.renamed || !entry.rename.empty() || sharing->rename_by_default;
  }
  return info;
}

class LabelWriter {
 public:
  LabelWriter(std::map<std::string, std::string>& labels, std::string resource_name)
      : labels_(labels), prefix_(std::move(resource_name) + ".") {}

  template <typename T>
  void Set(std::string_view suffix, const T& value) {
    std::ostringstream out;
    out << value;
    labels_[prefix_ + std::string(suffix)] = out.str();
  }

  // product / count / replicas / sharing-strategy, as GFD's base labeler. `with_sharing` false
  // (MIG-enabled GPUs under migStrategy none) gives replicas 0 and sharing "none".
  void Base(const std::string& product, int count, bool with_sharing, const ReplicationInfo& info,
            SharingStrategy strategy) {
    std::string value = product;
    const bool shared = with_sharing && info.replicas > 1;
    if (shared && !info.renamed) value += "-SHARED";
    Set(names::kLabelSuffixProduct, value);
    Set(names::kLabelSuffixCount, count);
    Set(names::kLabelSuffixReplicas, !with_sharing ? 0 : (info.replicas > 1 ? info.replicas : 1));
    Set(names::kLabelSuffixSharingStrategy,
        SharingStrategyName(shared ? strategy : SharingStrategy::kNone));
  }

 private:
  std::map<std::string, std::string>& labels_;
  std::string prefix_;
};

void AddMigAttributeLabels(LabelWriter& w, const GpuInfo& gpu, const MigDeviceInfo& mig) {
  w.Set(names::kLabelSuffixMemory, mig.memory_bytes / kMiB);
  w.Set("multiprocessors", mig.multiprocessor_count);
  const GpuModel* model = FindGpuModel(gpu.model.empty() ? gpu.product_name : gpu.model);
  const MigProfile* profile = model != nullptr ? model->FindProfile(mig.profile_name) : nullptr;
  if (profile == nullptr) return;
  w.Set("slices.gi", profile->compute_slices);
  w.Set("slices.ci", profile->compute_slices);
  w.Set("engines.copy", profile->copy_engines);
  w.Set("engines.decoder", profile->decoders);
  w.Set("engines.encoder", profile->encoders);
  w.Set("engines.jpeg", profile->jpeg_engines);
  w.Set("engines.ofa", profile->ofa_engines);
}

void AddDriverLabels(const DriverInfo& driver, std::map<std::string, std::string>& labels) {
  if (!driver.driver_version.empty()) {
    std::vector<std::string> parts;
    std::stringstream in(driver.driver_version);
    for (std::string part; std::getline(in, part, '.');) parts.push_back(part);
    parts.resize(3);
    labels[std::string(names::kLabelCudaDriverMajor)] = parts[0];
    labels[std::string(names::kLabelCudaDriverMinor)] = parts[1];
    labels[std::string(names::kLabelCudaDriverRev)] = parts[2];
    const std::string prefix(names::kLabelCudaDriverVersionPrefix);
    labels[prefix + "major"] = parts[0];
    labels[prefix + "minor"] = parts[1];
    labels[prefix + "revision"] = parts[2];
    labels[prefix + "full"] = driver.driver_version;
  }
  if (driver.cuda_driver_version > 0) {
    const int major = driver.cuda_driver_version / 1000;
    const int minor = (driver.cuda_driver_version % 1000) / 10;
    labels[std::string(names::kLabelCudaRuntimeMajor)] = std::to_string(major);
    labels[std::string(names::kLabelCudaRuntimeMinor)] = std::to_string(minor);
    const std::string prefix(names::kLabelCudaRuntimeVersionPrefix);
    labels[prefix + "major"] = std::to_string(major);
    labels[prefix + "minor"] = std::to_string(minor);
    labels[prefix + "full"] = std::to_string(major) + "." + std::to_string(minor);
  }
}

// Why `single` cannot be applied to these GPUs, or "" when it can.
std::string SingleStrategyProblem(const std::vector<GpuInfo>& gpus) {
  bool any_enabled = false, any_disabled = false, any_empty = false;
  std::set<std::string> profiles;
  for (const GpuInfo& gpu : gpus) {
    if (!gpu.mig_enabled) {
      any_disabled = true;
      continue;
    }
    any_enabled = true;
    if (gpu.mig_devices.empty()) any_empty = true;
    for (const MigDeviceInfo& mig : gpu.mig_devices) profiles.insert(mig.profile_name);
  }
  if (!any_enabled) return {};
  if (any_empty) return "at least one MIG-enabled GPU has no MIG devices";
  if (any_disabled) return "GPUs with MIG enabled and MIG disabled are mixed on this node";
  if (profiles.size() > 1) return "more than one MIG profile is present on this node";
  return {};
}

}  // namespace

const AdvertisedResource* NodeAdvertisement::Find(std::string_view resource_name) const {
  for (const AdvertisedResource& r : resources) {
    if (r.name == resource_name) return &r;
  }
  return nullptr;
}

bool ResourcePatternMatches(std::string_view pattern, std::string_view subject) {
  return GlobMatch(pattern, subject);
}

std::string SanitiseLabelValue(std::string_view value) {
  std::string kept;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ' ';
    if (ok) kept += c;
  }
  std::string out;
  std::istringstream words(kept);
  for (std::string word; words >> word;) out += (out.empty() ? "" : "-") + word;
  return out;
}

std::string ReadMachineType(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

std::string StripReplicaSuffix(std::string_view device_id) {
  const std::size_t at = device_id.find(names::kReplicaSeparator);
  return std::string(at == std::string_view::npos ? device_id : device_id.substr(0, at));
}

Result<NodeAdvertisement> AdvertiseNode(const std::vector<GpuInfo>& input_gpus,
                                        const SharingConfig& config, const DriverInfo& driver,
                                        const NodeFacts& facts) {
  NodeAdvertisement out;
  std::vector<GpuInfo> gpus = input_gpus;
  std::sort(gpus.begin(), gpus.end(),
            [](const GpuInfo& a, const GpuInfo& b) { return a.index < b.index; });

  const MigStrategy strategy = config.flags.mig_strategy;
  if (config.sharing_strategy() == SharingStrategy::kMps) {
    // As NVIDIA's plugin and GFD, whatever the MIG strategy.
    for (const GpuInfo& gpu : gpus) {
      if (!gpu.mig_enabled) continue;
      return InvalidArgument("sharing using MPS is not supported for MIG devices: GPU " +
                             std::to_string(gpu.index) + " (" + gpu.uuid +
                             ") has MIG enabled; disable MIG on this node's GPUs or use "
                             "time-slicing (sharing.timeSlicing)");
    }
  }
  const std::string single_problem =
      strategy == MigStrategy::kSingle ? SingleStrategyProblem(gpus) : std::string();
  if (!single_problem.empty()) {
    out.warnings.push_back("migStrategy single cannot be applied: " + single_problem +
                           "; no nvidia.com/gpu devices are advertised");
  }

  // Which whole GPUs take fractional requests.
  const FractionalSharing& fractional = config.gpuslice.fractional;
  std::set<int> fractional_gpus;
  if (fractional.enabled) {
    std::size_t position = 0;
    for (const GpuInfo& gpu : gpus) {
      if (gpu.mig_enabled) continue;
      BaseDevice probe;
      probe.device.device_uuid = gpu.uuid;
      probe.device.gpu_uuid = gpu.uuid;
      probe.device.gpu_index = gpu.index;
      if (Selects(fractional.devices, probe, position++)) fractional_gpus.insert(gpu.index);
    }
  }

  // 1. Base devices per resource name, before sharing.
  std::map<std::string, std::vector<BaseDevice>> base;
  std::vector<std::string> base_order;  // first-seen order, for stable output
  auto add_base = [&](const std::string& name, BaseDevice device) {
    if (!base.count(name)) base_order.push_back(name);
    base[name].push_back(std::move(device));
  };
  for (const GpuInfo& gpu : gpus) {
    const bool as_mig = gpu.mig_enabled && strategy != MigStrategy::kNone;
    if (!as_mig) {
      if (gpu.mig_enabled) {
        out.warnings.push_back("GPU " + std::to_string(gpu.index) +
                               " has MIG enabled but migStrategy is none: it is advertised as a "
                               "whole GPU, which containers cannot use");
      }
      if (strategy == MigStrategy::kSingle && !single_problem.empty()) continue;
      if (fractional_gpus.count(gpu.index)) continue;
      std::string name =
          ResourceNameFor(config.gpu_resources, gpu.product_name, std::string(names::kNvidiaGpu));
      if (name.empty()) {
        out.warnings.push_back("GPU " + std::to_string(gpu.index) + " (" + gpu.product_name +
                               ") matches no resources.gpus pattern and is not advertised");
        continue;
      }
      BaseDevice d;
      d.device = {gpu.uuid, gpu.uuid, gpu.uuid, gpu.index, -1, -1, gpu.numa_node, gpu.healthy};
      d.gpu = &gpu;
      add_base(name, std::move(d));
      continue;
    }
    if (strategy == MigStrategy::kSingle && !single_problem.empty()) continue;
    for (std::size_t m = 0; m < gpu.mig_devices.size(); ++m) {
      const MigDeviceInfo& mig = gpu.mig_devices[m];
      std::string name = strategy == MigStrategy::kSingle
                             ? std::string(names::kNvidiaGpu)
                             : ResourceNameFor(config.mig_resources, mig.profile_name,
                                               std::string(names::kNvidiaMigPrefix) +
                                                   MigProfileResourceName(mig.profile_name));
      if (name.empty()) {
        out.warnings.push_back("MIG device " + std::to_string(gpu.index) + ":" +
                               std::to_string(m) + " (" + mig.profile_name +
                               ") matches no resources.migs pattern and is not advertised");
        continue;
      }
      BaseDevice d;
      d.device = {mig.uuid,        mig.uuid,           gpu.uuid,     gpu.index, static_cast<int>(m),
                  -1,              gpu.numa_node,      gpu.healthy && mig.healthy};
      d.gpu = &gpu;
      d.mig = &mig;
      add_base(name, std::move(d));
    }
  }

  // 2. Sharing: move the selected devices to their (possibly renamed) resource, replicated.
  std::map<std::string, AdvertisedResource> result;
  auto resource = [&](const std::string& name) -> AdvertisedResource& {
    AdvertisedResource& r = result[name];
    r.name = name;
    return r;
  };
  const ReplicatedResources* sharing = config.replicated();
  std::map<std::string, std::map<std::string, std::size_t>> claimed;  // name -> uuid -> entry
  const std::map<std::string, std::vector<BaseDevice>> original = base;
  std::map<std::string, std::set<std::string>> sources;  // advertised name -> resources in it
  if (sharing != nullptr) {
    for (std::size_t i = 0; i < sharing->resources.size(); ++i) {
      const ReplicatedResource& entry = sharing->resources[i];
      if (entry.devices.kind == DeviceSelector::Kind::kList) {
        for (const std::string& id : entry.devices.ids) {
          for (int f : fractional_gpus) {
            const GpuInfo& gpu = *std::find_if(gpus.begin(), gpus.end(),
                                               [f](const GpuInfo& g) { return g.index == f; });
            if (id == gpu.uuid || id == std::to_string(gpu.index)) {
              return InvalidArgument(EntryPath(config, i) + ": GPU " + std::to_string(f) +
                                     " is selected both for " +
                                     std::string(SharingStrategyName(config.sharing_strategy())) +
                                     " and for gpuslice fractional sharing; a GPU can be shared "
                                     "one way only");
            }
          }
        }
      }
      // Selectors index into the resource's devices as the node has them, not into what
      // earlier entries left over, so every entry is matched against the original list.
      std::vector<BaseDevice> selected;
      auto found = original.find(entry.name);
      if (found != original.end()) {
        for (std::size_t pos = 0; pos < found->second.size(); ++pos) {
          const BaseDevice& d = found->second[pos];
          if (!Selects(entry.devices, d, pos)) continue;
          auto [it, inserted] = claimed[entry.name].emplace(d.device.device_uuid, i);
          if (!inserted) {
            return InvalidArgument(EntryPath(config, it->second) + " and " + EntryPath(config, i) +
                                   " both select " + DescribeDevice(d.device) + " for " +
                                   entry.name + "; each device may be shared by one entry only");
          }
          selected.push_back(d);
        }
      }
      WarnUnusedIds(config, i, found == original.end() ? nullptr : &found->second, gpus,
                    out.warnings);
      if (selected.empty()) {
        out.warnings.push_back(EntryPath(config, i) + ": " + entry.name +
                               " matches no device on this node; the entry has no effect");
        continue;
      }
      std::vector<BaseDevice>& remaining = base[entry.name];
      std::erase_if(remaining, [&](const BaseDevice& d) {
        return claimed[entry.name].count(d.device.device_uuid) > 0;
      });
      const std::string target_name = SharedResourceName(entry, *sharing);
      sources[target_name].insert(entry.name);
      AdvertisedResource& target = resource(target_name);
      target.sharing = config.sharing_strategy();
      target.fail_requests_greater_than_one = sharing->fail_requests_greater_than_one;
      for (const BaseDevice& d : selected) {
        for (int r = 0; r < entry.replicas; ++r) {
          AdvertisedDevice replica = d.device;
          replica.id = d.device.device_uuid + std::string(names::kReplicaSeparator) +
                       std::to_string(r);
          replica.replica = r;
          target.devices.push_back(std::move(replica));
        }
      }
    }
  }
  for (const std::string& name : base_order) {
    if (base[name].empty()) continue;
    sources[name].insert(name);
    AdvertisedResource& r = resource(name);
    for (const BaseDevice& d : base[name]) r.devices.push_back(d.device);
  }

  GPUSLICE_RETURN_IF_ERROR(CheckNameCollisions(sources));

  // 3. Fractional slots.
  if (!fractional_gpus.empty()) {
    AdvertisedResource& r = resource(std::string(names::kGpusliceGpu));
    r.fractional = true;
    r.fractional_mps = fractional.compute == FractionalCompute::kMps;
    for (const GpuInfo& gpu : gpus) {
      if (!fractional_gpus.count(gpu.index)) continue;
      for (int slot = 0; slot < fractional.slots_per_gpu; ++slot) {
        AdvertisedDevice d{gpu.uuid + std::string(names::kReplicaSeparator) + std::to_string(slot),
                           gpu.uuid, gpu.uuid, gpu.index, -1, slot, gpu.numa_node, gpu.healthy};
        r.devices.push_back(std::move(d));
      }
    }
  }

  for (auto& [name, r] : result) {
    if (r.devices.empty()) continue;
    std::stable_sort(r.devices.begin(), r.devices.end(),
                     [](const AdvertisedDevice& a, const AdvertisedDevice& b) {
                       return std::tie(a.gpu_index, a.mig_index, a.replica) <
                              std::tie(b.gpu_index, b.mig_index, b.replica);
                     });
    out.resources.push_back(std::move(r));
  }

  // 4. Labels.
  auto& labels = out.labels;
  if (facts.timestamp_unix.has_value()) {
    labels[std::string(names::kLabelGfdTimestamp)] = std::to_string(*facts.timestamp_unix);
  }
  labels[std::string(names::kLabelVgpuPresent)] = "false";
  if (gpus.empty()) {
    // As GFD on a node without GPUs: no device labels at all.
    out.warnings.push_back("no GPUs on this node: nothing is advertised");
    return out;
  }
  AddDriverLabels(driver, labels);
  labels[std::string(names::kLabelGpuMachine)] =
      facts.machine_type.empty() ? "unknown" : SanitiseLabelValue(facts.machine_type);
  labels[std::string(names::kLabelGpuMode)] = GpuMode(gpus);

  const bool mig_capable =
      std::any_of(gpus.begin(), gpus.end(), [](const GpuInfo& g) { return g.mig_capable; });
  labels[std::string(names::kLabelMigCapable)] = mig_capable ? "true" : "false";
  labels[std::string(names::kLabelMpsCapable)] =
      config.sharing_strategy() == SharingStrategy::kMps ? "true" : "false";
  if (strategy != MigStrategy::kNone) {
    labels[std::string(names::kLabelMigStrategy)] = std::string(MigStrategyName(strategy));
  }

  // Whole-GPU labels for the node's main product (GFD labels one product per node).
  std::map<std::string, std::vector<const GpuInfo*>> by_product;
  for (const GpuInfo& gpu : gpus) by_product[gpu.product_name].push_back(&gpu);
  if (by_product.size() > 1) {
    std::string products;
    for (const auto& [name, list] : by_product) {
      products += (products.empty() ? "" : ", ") + name + " x" + std::to_string(list.size());
    }
    out.warnings.push_back("several GPU models on one node (" + products +
                           "); nvidia.com/gpu.* labels describe the most numerous");
  }
  // max_element keeps the first of equals: ties go to the first product name.
  const std::vector<const GpuInfo*>& main_group =
      std::max_element(by_product.begin(), by_product.end(), [](const auto& a, const auto& b) {
        return a.second.size() < b.second.size();
      })->second;
  const GpuInfo& first = *main_group.front();
  const bool has_full_gpu = std::any_of(main_group.begin(), main_group.end(),
                                        [](const GpuInfo* g) { return !g->mig_enabled; });
  LabelWriter gpu_labels(labels, std::string(names::kNvidiaGpu));
  const SharingStrategy sharing_strategy = config.sharing_strategy();
  gpu_labels.Base(SanitiseLabelValue(first.product_name), static_cast<int>(main_group.size()),
                  has_full_gpu, ReplicationFor(config, names::kNvidiaGpu), sharing_strategy);
  if (first.memory_bytes > 0) gpu_labels.Set(names::kLabelSuffixMemory, first.memory_bytes / kMiB);
  if (first.compute_major > 0) {
    gpu_labels.Set(names::kLabelSuffixFamily,
                   GpuFamilyName(first.compute_major, first.compute_minor));
    gpu_labels.Set(names::kLabelSuffixComputeMajor, first.compute_major);
    gpu_labels.Set(names::kLabelSuffixComputeMinor, first.compute_minor);
  }

  // MIG labels.
  if (strategy == MigStrategy::kSingle) {
    auto enabled = std::find_if(gpus.begin(), gpus.end(), [](const GpuInfo& g) {
      return g.mig_enabled;
    });
    if (enabled != gpus.end()) {
      if (!single_problem.empty()) {
        gpu_labels.Set(names::kLabelSuffixProduct,
                       SanitiseLabelValue(enabled->product_name) + "-MIG-INVALID");
        gpu_labels.Set(names::kLabelSuffixCount, 0);
        gpu_labels.Set(names::kLabelSuffixReplicas, 0);
        gpu_labels.Set(names::kLabelSuffixSharingStrategy, "");
        gpu_labels.Set(names::kLabelSuffixMemory, 0);
      } else {
        int count = 0;
        for (const GpuInfo& gpu : gpus) count += static_cast<int>(gpu.mig_devices.size());
        const MigDeviceInfo& mig = enabled->mig_devices.front();
        gpu_labels.Base(SanitiseLabelValue(enabled->product_name) + "-MIG-" +
                            SanitiseLabelValue(MigProfileResourceName(mig.profile_name)),
                        count, true, ReplicationFor(config, names::kNvidiaGpu), sharing_strategy);
        AddMigAttributeLabels(gpu_labels, *enabled, mig);
      }
    }
  } else if (strategy == MigStrategy::kMixed) {
    struct MigGroup {
      const GpuInfo* gpu = nullptr;
      const MigDeviceInfo* mig = nullptr;
      int count = 0;
    };
    std::map<std::string, MigGroup> groups;  // resource name -> first device and count
    for (const GpuInfo& gpu : gpus) {
      if (!gpu.mig_enabled) continue;
      for (const MigDeviceInfo& mig : gpu.mig_devices) {
        std::string name = ResourceNameFor(
            config.mig_resources, mig.profile_name,
            std::string(names::kNvidiaMigPrefix) + MigProfileResourceName(mig.profile_name));
        if (name.empty()) continue;
        MigGroup& g = groups[name];
        if (g.gpu == nullptr) g = {&gpu, &mig, 0};
        ++g.count;
      }
    }
    for (const auto& [name, g] : groups) {
      LabelWriter w(labels, name);
      w.Base(SanitiseLabelValue(g.gpu->product_name) + "-MIG-" +
                 SanitiseLabelValue(MigProfileResourceName(g.mig->profile_name)),
             g.count, true, ReplicationFor(config, name), sharing_strategy);
      AddMigAttributeLabels(w, *g.gpu, *g.mig);
    }
  }

  if (!fractional_gpus.empty()) {
    const GpuInfo& gpu = *std::find_if(gpus.begin(), gpus.end(), [&](const GpuInfo& g) {
      return g.index == *fractional_gpus.begin();
    });
    labels[std::string(names::kLabelGpusliceFractionalCount)] =
        std::to_string(fractional_gpus.size());
    labels[std::string(names::kLabelGpusliceFractionalSlots)] =
        std::to_string(fractional.slots_per_gpu);
    labels[std::string(names::kLabelGpusliceFractionalMemory)] =
        std::to_string(gpu.memory_bytes / kMiB);
  }
  return out;
}

}  // namespace gpuslice
