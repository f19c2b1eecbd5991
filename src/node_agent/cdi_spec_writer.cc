#include "node_agent/cdi_spec_writer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "node_agent/atomic_file.h"

namespace gpuslice {
namespace {

nlohmann::json DeviceNode(const std::string& path) {
  return {{"path", path}, {"permissions", "rw"}};
}

nlohmann::json Device(const std::string& name, std::vector<std::string> paths) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const std::string& p : paths) nodes.push_back(DeviceNode(p));
  return {{"name", name}, {"containerEdits", {{"deviceNodes", nodes}}}};
}

}  // namespace

CdiSpecWriter::CdiSpecWriter(std::string cdi_dir) : cdi_dir_(std::move(cdi_dir)) {}

std::string CdiSpecWriter::Render(const std::vector<GpuInfo>& gpus,
                                  const std::map<std::string, int>& mig_cap_minors,
                                  const std::vector<std::string>& hook_command) {
  nlohmann::json devices = nlohmann::json::array();
  std::vector<std::string> all_paths;
  for (const GpuInfo& gpu : gpus) {
    const std::string gpu_node = "/dev/nvidia" + std::to_string(gpu.minor_number);
    all_paths.push_back(gpu_node);
    for (const std::string& name : {std::to_string(gpu.index), gpu.uuid}) {
      devices.push_back(Device(name, {gpu_node}));
    }
    for (std::size_t m = 0; m < gpu.mig_devices.size(); ++m) {
      const MigDeviceInfo& mig = gpu.mig_devices[m];
      std::vector<std::string> paths = {gpu_node};
      const std::string gi =
          "gpu" + std::to_string(gpu.minor_number) + "/gi" + std::to_string(mig.gpu_instance_id);
      for (const std::string& key :
           {gi + "/access", gi + "/ci" + std::to_string(mig.compute_instance_id) + "/access"}) {
        auto it = mig_cap_minors.find(key);
        if (it != mig_cap_minors.end()) {
          paths.push_back("/dev/nvidia-caps/nvidia-cap" + std::to_string(it->second));
        }
      }
      for (const std::string& name :
           {std::to_string(gpu.index) + ":" + std::to_string(m), mig.uuid}) {
        devices.push_back(Device(name, paths));
      }
    }
  }
  devices.push_back(Device("all", all_paths));
  nlohmann::json common_nodes = nlohmann::json::array();
  for (const char* p : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) {
    common_nodes.push_back(DeviceNode(p));
  }
  nlohmann::json spec = {
      {"cdiVersion", "0.5.0"},
      {"kind", "nvidia.com/gpu"},
      {"devices", devices},
      {"containerEdits", {{"deviceNodes", common_nodes}}},
  };
  if (!hook_command.empty()) {
    spec["containerEdits"]["hooks"] = nlohmann::json::array(
        {{{"hookName", "createContainer"}, {"path", hook_command[0]}, {"args", hook_command}}});
  }
  return spec.dump(2) + "\n";
}

Result<bool> CdiSpecWriter::Write(const std::vector<GpuInfo>& gpus,
                                  const std::map<std::string, int>& mig_cap_minors,
                                  const std::vector<std::string>& hook_command) {
  const std::string content = Render(gpus, mig_cap_minors, hook_command);
  if (std::filesystem::exists(path()) && ReadFileOrEmpty(path()) == content) return false;
  GPUSLICE_RETURN_IF_ERROR(WriteFileAtomically(path(), content));
  return true;
}

void CdiSpecWriter::Remove() {
  std::error_code ec;
  std::filesystem::remove(path(), ec);
}

}  // namespace gpuslice
