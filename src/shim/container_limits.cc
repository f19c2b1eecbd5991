// The control-plane half of container_limits.h: formatting, reading and writing the file.
#include "shim/container_limits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gpuslice::shim {

Result<std::string> FormatContainerLimits(const ContainerLimits& limits) {
  if (limits.region_path[0] != '/') {
    return InvalidArgument("limits: region must be an absolute path");
  }
  if (limits.device_count > kMaxLimitedDevices) {
    return InvalidArgument("limits: at most 16 devices per container");
  }
  std::ostringstream out;
  out << "# gpuslice per-container limits (read-only for the workload)\n";
  out << "gpuslice-limits " << kContainerLimitsVersion << "\n";
  out << "region " << limits.region_path << "\n";
  if (limits.cuda_driver_path[0] != '\0') out << "cuda-driver " << limits.cuda_driver_path << "\n";
  if (limits.nvml_driver_path[0] != '\0') out << "nvml-driver " << limits.nvml_driver_path << "\n";
  out << "context-overhead-bytes " << limits.context_overhead_bytes << "\n";
  for (std::uint32_t i = 0; i < limits.device_count; ++i) {
    const DeviceLimit& d = limits.devices[i];
    out << "device";
    if (d.nvml_index >= 0) out << " index=" << d.nvml_index;
    out << " uuid=" << (d.uuid[0] != '\0' ? d.uuid : "-");
    out << " memory-bytes=" << d.memory_bytes << " compute-percent=" << d.compute_percent;
    if (d.arbiter_path[0] != '\0') {
      if (d.arbiter_path[0] != '/') {
        return InvalidArgument("limits: compute-arbiter must be an absolute path");
      }
      out << " compute-arbiter=" << d.arbiter_path;
    }
    if (d.requests_path[0] != '\0') {
      if (d.requests_path[0] != '/') {
        return InvalidArgument("limits: compute-requests must be an absolute path");
      }
      out << " compute-requests=" << d.requests_path;
    }
    if (d.compute_cap_percent != 0) out << " compute-cap-percent=" << d.compute_cap_percent;
    if (d.driver_enforced) out << " enforcer=driver";
    out << "\n";
  }
  return out.str();
}

Result<ContainerLimits> ReadContainerLimitsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read limits file " + path + ": " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  ContainerLimits limits;
  char error[256];
  if (!ParseContainerLimits(text.data(), text.size(), &limits, error, sizeof(error))) {
    return InvalidArgument(path + ": " + error);
  }
  return limits;
}

Status WriteContainerLimitsFile(const std::string& path, const ContainerLimits& limits) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, FormatContainerLimits(limits));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot create " + tmp + ": " + std::strerror(errno));
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write " + tmp + ": " + why);
    }
    written += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0444);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Unavailable("cannot rename " + tmp + " to " + path + ": " + why);
  }
  return Status::Ok();
}

}  // namespace gpuslice::shim
