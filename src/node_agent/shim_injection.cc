#include "node_agent/shim_injection.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "node_agent/atomic_file.h"
#include "shim/container_limits.h"

namespace gpuslice {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPreloadFileName = "ld.so.preload";
constexpr std::array<const char*, 2> kShimFileNames = {shim::kCudaShimFileName,
                                                       shim::kNvmlShimFileName};

// What is wrong with one shim file, "" when nothing.
std::string ShimFileProblem(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return "does not exist";
  if (!fs::is_regular_file(status)) return "is not a regular file";
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string("cannot be read: ") + std::strerror(errno);
  char magic[4] = {};
  in.read(magic, sizeof(magic));
  if (in.gcount() != 4 || std::memcmp(magic,
                                      "\x7f"
                                      "ELF",
                                      4) != 0) {
    return "is not a shared library (no ELF header)";
  }
  return "";
}

}  // namespace

Status CheckShimDir(const std::string& shim_dir) {
  if (shim_dir.empty()) {
    return InvalidArgument(
        "the shim directory is empty; give --shim-dir, the host directory holding " +
        std::string(shim::kCudaShimFileName) + " and " + shim::kNvmlShimFileName);
  }
  for (const char* name : kShimFileNames) {
    const fs::path path = fs::path(shim_dir) / name;
    if (const std::string problem = ShimFileProblem(path); !problem.empty()) {
      return FailedPrecondition(
          "the shim library " + path.string() + " " + problem +
          "; fractional containers would run without their GPU limits, so they are not "
          "started. Install the shims there (cmake --install puts them in <prefix>/lib/gpuslice), "
          "pass --shim-dir DIR, or let the agent copy them with --install-shims-from DIR");
    }
  }
  return Status::Ok();
}

std::string ShimPreloadContent() {
  std::string content;
  for (const char* name : kShimFileNames) {
    content += std::string(kContainerShimDir) + "/" + name + "\n";
  }
  return content;
}

Status InjectShims(const std::string& shim_dir, const std::string& allocation_dir,
                   v1beta1::ContainerAllocateResponse& response) {
  GPUSLICE_RETURN_IF_ERROR(CheckShimDir(shim_dir));
  const fs::path preload = fs::path(allocation_dir) / kPreloadFileName;
  GPUSLICE_RETURN_IF_ERROR(WriteFileAtomically(preload.string(), ShimPreloadContent()));
  ::chmod(preload.c_str(), 0444);
  for (const char* name : kShimFileNames) {
    auto* mount = response.add_mounts();
    mount->set_container_path(std::string(kContainerShimDir) + "/" + name);
    mount->set_host_path((fs::path(shim_dir) / name).string());
    mount->set_read_only(true);
  }
  auto* mount = response.add_mounts();
  mount->set_container_path(kContainerPreloadFile);
  mount->set_host_path(preload.string());
  mount->set_read_only(true);
  return Status::Ok();
}

Status InstallShims(const std::string& from_dir, const std::string& to_dir) {
  GPUSLICE_RETURN_IF_ERROR(CheckShimDir(from_dir).WithContext("--install-shims-from " + from_dir));
  for (const char* name : kShimFileNames) {
    GPUSLICE_RETURN_IF_ERROR(InstallFileAtomically((fs::path(from_dir) / name).string(),
                                                   (fs::path(to_dir) / name).string(), 0755)
                                 .WithContext("installing the shim into --shim-dir " + to_dir));
  }
  return Status::Ok();
}

}  // namespace gpuslice
