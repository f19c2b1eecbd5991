// `gpuslice inventory`: the GPUs of a node, the resources and device counts the node agent would
// advertise under a sharing configuration, and the node labels.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backends/gpu_backend.h"
#include "backends/isolation_capability.h"
#include "backends/nvml_memory_limits.h"
#include "cli/commands.h"
#include "core/advertised_resources.h"
#include "core/sharing_config.h"

namespace gpuslice::cli {
namespace {

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;

struct InventoryOptions {
  std::string backend = "nvml";
  std::string config_path;
  std::string output = "table";
  bool show_device_ids = false;
  bool show_config = false;
  std::string cgroup_mount = "/sys/fs/cgroup";
};

// The isolation tier (docs/isolation.md). The simulated driver has the memory-limit calls from
// r615; on `nvml` they are probed in the driver library, per GPU.
NodeIsolation InventoryIsolation(const InventoryOptions& options, const DriverInfo& driver,
                                 const std::vector<GpuInfo>& gpus) {
  bool api = options.backend.rfind("sim:", 0) == 0;
  std::vector<std::string> unsupported;
  if (options.backend == "nvml") {
    auto limits = NvmlMemoryLimits::Create("libnvidia-ml.so.1", options.cgroup_mount);
    api = limits.ok();
    for (const GpuInfo& gpu : gpus) {
      if (api && !gpu.mig_enabled && !(*limits)->Supported(gpu.uuid)) {
        unsupported.push_back(gpu.uuid);
      }
    }
  }
  return DetectIsolation(driver, gpus, IsCgroupV2(options.cgroup_mount), api, unsupported);
}

// What the node agent offers: it does not run MPS v3 servers yet (docs/isolation.md, "What
// remains"), so its MPS tier is v2 even where the driver could do v3.
NodeIsolation OfferedIsolation(NodeIsolation node) {
  for (GpuIsolation& gpu : node.gpus) gpu.mps_v3 = false;
  return node;
}

// `capable`: what the driver can do; the tiers are what the agent offers.
nlohmann::json IsolationJson(const NodeIsolation& capable) {
  const NodeIsolation offered = OfferedIsolation(capable);
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuIsolation& gpu : capable.gpus) {
    gpus.push_back({{"uuid", gpu.uuid},
                    {"memoryPartitions", gpu.memory_partitions},
                    {"mpsV3Capable", gpu.mps_v3},
                    {"reason", gpu.reason}});
  }
  return {{"driverMajor", capable.driver_major},
          {"cgroupV2", capable.cgroup_v2},
          {"memoryLimitApi", capable.memory_limit_api},
          {"memoryIsolation", offered.MemoryIsolationTier()},
          {"mps", offered.MpsTier()},
          {"gpus", gpus}};
}

nlohmann::json GpuJson(const GpuInfo& gpu) {
  nlohmann::json j = {
      {"index", gpu.index},
      {"uuid", gpu.uuid},
      {"product", gpu.product_name},
      {"model", gpu.model},
      {"pciBusId", gpu.pci_bus_id},
      {"memoryMiB", gpu.memory_bytes / kMiB},
      {"multiprocessors", gpu.multiprocessor_count},
      {"computeCapability",
       std::to_string(gpu.compute_major) + "." + std::to_string(gpu.compute_minor)},
      {"numaNode", gpu.numa_node},
      {"migCapable", gpu.mig_capable},
      {"migEnabled", gpu.mig_enabled},
      {"healthy", gpu.healthy},
  };
  nlohmann::json migs = nlohmann::json::array();
  for (const MigDeviceInfo& mig : gpu.mig_devices) {
    migs.push_back({{"uuid", mig.uuid},
                    {"profile", mig.profile_name},
                    {"profileId", mig.profile_id},
                    {"gpuInstanceId", mig.gpu_instance_id},
                    {"computeInstanceId", mig.compute_instance_id},
                    {"placement", {{"start", mig.start_slot}, {"size", mig.size_slots}}},
                    {"memoryMiB", mig.memory_bytes / kMiB},
                    {"multiprocessors", mig.multiprocessor_count},
                    {"healthy", mig.healthy}});
  }
  j["migDevices"] = migs;
  return j;
}

nlohmann::json ReportJson(const std::string& backend, const DriverInfo& driver,
                          const std::vector<GpuInfo>& gpus, const NodeAdvertisement& ad) {
  nlohmann::json report;
  report["backend"] = backend;
  report["driver"] = {{"version", driver.driver_version},
                      {"cudaDriverVersion", driver.cuda_driver_version}};
  report["gpus"] = nlohmann::json::array();
  for (const GpuInfo& gpu : gpus) report["gpus"].push_back(GpuJson(gpu));
  report["resources"] = nlohmann::json::array();
  for (const AdvertisedResource& r : ad.resources) {
    nlohmann::json ids = nlohmann::json::array();
    for (const AdvertisedDevice& d : r.devices) ids.push_back(d.id);
    report["resources"].push_back({{"name", r.name},
                                   {"sharing", SharingStrategyName(r.sharing)},
                                   {"fractional", r.fractional},
                                   {"count", r.devices.size()},
                                   {"deviceIDs", ids}});
  }
  report["labels"] = ad.labels;
  report["warnings"] = ad.warnings;
  return report;
}

void PrintIsolation(std::ostream& out, const NodeIsolation& node,
                    const std::map<std::string, std::string>& labels) {
  out << "\nIsolation: memory " << node.MemoryIsolationTier() << ", MPS "
      << OfferedIsolation(node).MpsTier() << "  (driver r" << node.driver_major << ", cgroup "
      << (node.cgroup_v2 ? "v2" : "v1/none") << ")\n";
  for (const GpuIsolation& gpu : node.gpus) {
    out << "  " << gpu.uuid << "  memory " << (gpu.memory_partitions ? "driver" : "shim")
        << "  MPS v3 " << (gpu.mps_v3 ? "capable (not run yet)" : "no")
        << (gpu.reason.empty() ? "" : "  (" + gpu.reason + ")") << "\n";
  }
  for (const auto& [key, value] : labels) out << "  label " << key << "=" << value << "\n";
}

void EmitYaml(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, value] : j.items()) {
      out << YAML::Key << key << YAML::Value;
      EmitYaml(out, value);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& value : j) EmitYaml(out, value);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_boolean()) {
    out << j.get<bool>();
  } else if (j.is_number_unsigned()) {
    out << j.get<std::uint64_t>();
  } else if (j.is_number_integer()) {
    out << j.get<std::int64_t>();
  } else if (j.is_number()) {
    out << j.get<double>();
  } else {
    out << YAML::Null;
  }
}

void PrintTable(std::ostream& out, const std::string& backend, const DriverInfo& driver,
                const std::vector<GpuInfo>& gpus, const NodeAdvertisement& ad,
                bool show_device_ids) {
  out << "Node: " << backend << "  driver " << driver.driver_version << "  CUDA "
      << driver.cuda_driver_version / 1000 << "." << (driver.cuda_driver_version % 1000) / 10
      << "\n\nGPUs (" << gpus.size() << ")\n";
  out << std::left << "  " << std::setw(4) << "IDX" << std::setw(26) << "PRODUCT" << std::setw(10)
      << "MEMORY" << std::setw(5) << "SMS" << std::setw(5) << "CC" << std::setw(6) << "NUMA"
      << std::setw(18) << "PCI" << std::setw(10) << "MIG"
      << "UUID\n";
  for (const GpuInfo& gpu : gpus) {
    std::ostringstream cc, mem;
    cc << gpu.compute_major << "." << gpu.compute_minor;
    mem << gpu.memory_bytes / kMiB << "MiB";
    const char* mig = gpu.mig_enabled ? "enabled" : (gpu.mig_capable ? "disabled" : "-");
    out << "  " << std::setw(4) << gpu.index << std::setw(26) << gpu.product_name << std::setw(10)
        << mem.str() << std::setw(5) << gpu.multiprocessor_count << std::setw(5) << cc.str()
        << std::setw(6) << gpu.numa_node << std::setw(18) << gpu.pci_bus_id << std::setw(10) << mig
        << gpu.uuid << (gpu.healthy ? "" : "  UNHEALTHY") << "\n";
    for (const MigDeviceInfo& m : gpu.mig_devices) {
      out << "      MIG " << std::setw(10) << m.profile_name << " gi " << std::setw(3)
          << m.gpu_instance_id << " slots " << m.start_slot << "-"
          << m.start_slot + m.size_slots - 1 << "  " << m.memory_bytes / kMiB << "MiB  " << m.uuid
          << (m.healthy ? "" : "  UNHEALTHY") << "\n";
    }
  }
  out << "\nAdvertised resources (" << ad.resources.size() << ")\n";
  if (ad.resources.empty()) out << "  (none)\n";
  for (const AdvertisedResource& r : ad.resources) {
    std::string sharing(SharingStrategyName(r.sharing));
    if (r.fractional) sharing = "fractional";
    out << "  " << std::setw(34) << r.name << std::setw(6) << r.devices.size() << "devices  "
        << "sharing: " << sharing << "\n";
    if (show_device_ids) {
      for (const AdvertisedDevice& d : r.devices) out << "      " << d.id << "\n";
    }
  }
  out << "\nLabels (" << ad.labels.size() << ")\n";
  for (const auto& [key, value] : ad.labels) out << "  " << key << "=" << value << "\n";
  if (!ad.warnings.empty()) {
    out << "\nWarnings (" << ad.warnings.size() << ")\n";
    for (const std::string& w : ad.warnings) out << "  " << w << "\n";
  }
}

Status RunInventory(const InventoryOptions& options, std::ostream& out) {
  SharingConfig config = DefaultSharingConfig();
  if (!options.config_path.empty()) {
    GPUSLICE_ASSIGN_OR_RETURN(config, LoadSharingConfigFile(options.config_path));
  }
  if (options.show_config) {
    // The configuration in force, every field with its default: what the node agent runs with.
    out << FormatSharingConfig(config);
    return Status::Ok();
  }
  GPUSLICE_ASSIGN_OR_RETURN(std::unique_ptr<GpuBackend> backend, CreateGpuBackend(options.backend));
  GPUSLICE_ASSIGN_OR_RETURN(DriverInfo driver, backend->GetDriverInfo());
  GPUSLICE_ASSIGN_OR_RETURN(std::vector<GpuInfo> gpus, backend->ListGpus());
  NodeFacts facts;
  facts.machine_type = ReadMachineType(config.flags.gfd.machine_type_file);
  if (!config.flags.gfd.no_timestamp) {
    facts.timestamp_unix = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  }
  Result<NodeAdvertisement> ad = AdvertiseNode(gpus, config, driver, facts);
  if (!ad.ok()) {
    return ad.status().WithContext(
        "configuration " + (options.config_path.empty() ? "<default>" : options.config_path) +
        " cannot be applied to " + backend->Name());
  }
  const NodeIsolation isolation = InventoryIsolation(options, driver, gpus);
  bool mps_sharing = false;
  for (const AdvertisedResource& r : ad->resources) {
    mps_sharing = mps_sharing || r.sharing == SharingStrategy::kMps;
  }
  if (options.output == "table") {
    PrintTable(out, backend->Name(), driver, gpus, *ad, options.show_device_ids);
    PrintIsolation(out, isolation, IsolationLabels(OfferedIsolation(isolation), mps_sharing));
    return Status::Ok();
  }
  nlohmann::json report = ReportJson(backend->Name(), driver, gpus, *ad);
  report["isolation"] = IsolationJson(isolation);
  // Kept apart from "labels" (which stay exactly GPU Feature Discovery's): the agent adds these.
  report["isolation"]["labels"] = IsolationLabels(OfferedIsolation(isolation), mps_sharing);
  if (options.output == "json") {
    out << report.dump(2) << "\n";
  } else {
    YAML::Emitter emitter;
    EmitYaml(emitter, report);
    out << emitter.c_str() << "\n";
  }
  return Status::Ok();
}

}  // namespace

void AddInventoryCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<InventoryOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inventory", "Show a node's GPUs, the resources it would advertise, and its labels");
  cmd->add_option("--backend", options->backend,
                  "GPU backend: nvml (the real driver) or sim:FILE (a simulated node YAML)")
      ->capture_default_str();
  cmd->add_option("--config", options->config_path,
                  "Sharing configuration file (NVIDIA device-plugin format, version v1)");
  cmd->add_option("--output,-o", options->output, "Output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  cmd->add_option("--cgroup-mount", options->cgroup_mount,
                  "cgroup mount checked for cgroup v2 (the driver isolation tier needs it)")
      ->capture_default_str();
  cmd->add_flag("--show-device-ids", options->show_device_ids,
                "List every advertised device ID in the table output");
  cmd->add_flag("--show-config", options->show_config,
                "Print the configuration in force (--config, or the built-in default) with every "
                "field and its default, as YAML, and exit");
  cmd->callback([options, exit_code] {
    const Status status = RunInventory(*options, std::cout);
    if (!status.ok()) {
      std::cerr << "gpuslice inventory: " << status.message() << "\n";
      *exit_code = 1;
    }
  });
}

}  // namespace gpuslice::cli
