#include "backends/simulated_memory_limits.h"

#include <filesystem>
#include <fstream>

#include "backends/sim_dmem_tree.h"

namespace gpuslice {

FileMemoryLimits::FileMemoryLimits(std::set<std::string> supported_uuids)
    : supported_(std::move(supported_uuids)) {}

bool FileMemoryLimits::Supported(const std::string& gpu_uuid) {
  return supported_.count(gpu_uuid) > 0;
}

Status FileMemoryLimits::Check(const std::string& gpu_uuid, const std::string& cgroup_path) const {
  if (supported_.count(gpu_uuid) == 0) {
    return FailedPrecondition("memory limits are not supported on device " + gpu_uuid +
                              " (MIG devices and GPUs without driver r615+ are not)");
  }
  std::error_code ec;
  if (cgroup_path.empty() || cgroup_path[0] != '/' ||
      !std::filesystem::is_directory(cgroup_path, ec)) {
    return NotFound("cgroup '" + cgroup_path +
                    "' does not exist (a full sysfs path to a cgroup directory is expected)");
  }
  return Status::Ok();
}

Status FileMemoryLimits::SetMemoryLimits(const std::string& gpu_uuid,
                                         const std::string& cgroup_path,
                                         std::uint64_t soft_limit_bytes,
                                         std::uint64_t hard_limit_bytes) {
  GPUSLICE_RETURN_IF_ERROR(Check(gpu_uuid, cgroup_path));
  if (soft_limit_bytes > hard_limit_bytes) {
    return InvalidArgument("soft limit " + std::to_string(soft_limit_bytes) +
                           " exceeds hard limit " + std::to_string(hard_limit_bytes));
  }
  const std::string file = simdmem::LimitsFile(cgroup_path, gpu_uuid);
  if (soft_limit_bytes == 0 && hard_limit_bytes == kNoHardLimit) {
    std::error_code ec;
    std::filesystem::remove(file, ec);
    return Status::Ok();
  }
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << soft_limit_bytes << " " << hard_limit_bytes << "\n";
    if (!out) return Unavailable("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return Unavailable("cannot rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

Result<MemoryLimits> FileMemoryLimits::GetMemoryLimits(const std::string& gpu_uuid,
                                                       const std::string& cgroup_path) {
  GPUSLICE_RETURN_IF_ERROR(Check(gpu_uuid, cgroup_path));
  MemoryLimits limits;
  std::uint64_t soft = 0, hard = 0;
  if (simdmem::ReadLimits(cgroup_path, gpu_uuid, soft, hard)) {
    limits.soft_limit_bytes = soft;
    limits.hard_limit_bytes = hard;
  }
  limits.current_used_bytes = simdmem::CurrentUse(cgroup_path, gpu_uuid);
  return limits;
}

}  // namespace gpuslice
