// MPS v3 (driver r615+): named servers, each with namespaces that subdivide its pinned-memory
// limit, active-thread percentage and client priority. Clients pick a namespace by the socket
// they connect to: $CUDA_MPS_PIPE_DIRECTORY/<server>/<namespace>/control (NVIDIA, "MPS v3
// Namespaces"). gpuslice runs one server per shared GPU and one namespace per container, and
// mounts only that namespace's directory into the container.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice {

struct MpsV3Namespace {
  std::string server;
  std::string name;
  std::uint64_t pinned_memory_limit_bytes = 0;  // 0 = the server's
  int active_thread_percentage = 100;           // 1..100
  int client_priority = 0;                      // 0 (normal) or 1 (below normal)
  bool operator==(const MpsV3Namespace&) const = default;
};

struct MpsV3Server {
  std::string name;         // "gpu-<index>"
  std::string device_uuid;  // allowed_devices
};

// The TOML file for `nvidia-cuda-mps-control -d -p 3 -a <file>` (schema_version "1.0"), with only
// the keys NVIDIA documents for [servers.<name>] and [servers.<name>.namespaces.<name>].
std::string RenderMpsV3Toml(const std::vector<MpsV3Server>& servers,
                            const std::vector<MpsV3Namespace>& namespaces);

// Checks a server or namespace name: [a-z0-9_-], 1..63 characters, not "default".
Status ValidateMpsV3Name(const std::string& name);

// The directory a namespace's clients use as CUDA_MPS_PIPE_DIRECTORY's <server>/<namespace>.
std::string MpsV3NamespaceDirectory(const std::string& pipe_directory, const MpsV3Namespace& ns);

// Memory in the MPS v3 file format: "512M", "10G", or plain bytes when not a whole MiB.
std::string MpsV3MemoryString(std::uint64_t bytes);

// The namespace commands of the v3 control interface, behind an interface so the agent's logic
// runs against the real `nvidia-cuda-mps-control` and, in tests, the fake v3 daemon.
class MpsV3Control {
 public:
  virtual ~MpsV3Control() = default;
  virtual Status CreateNamespace(const MpsV3Namespace& ns) = 0;
  // OK when it does not exist.
  virtual Status DeleteNamespace(const std::string& server, const std::string& name) = 0;
  virtual Result<std::vector<MpsV3Namespace>> ListNamespaces(const std::string& server) = 0;
};

}  // namespace gpuslice
