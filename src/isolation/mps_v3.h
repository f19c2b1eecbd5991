// MPS v3 (driver r615+): named servers, each with namespaces that subdivide its pinned-memory
// limit, active-thread percentage and client priority. Clients pick a namespace by the socket
// they connect to: $CUDA_MPS_PIPE_DIRECTORY/<server>/<namespace>/control (NVIDIA, "MPS v3
// Namespaces"). gpuslice runs one server per shared GPU and one namespace per container, and
// mounts only that namespace's directory into the container.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
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
// The reverse: "<digits>[K|M|G|T]" (binary units, as CUDA_MPS_PINNED_DEVICE_MEM_LIMIT).
Result<std::uint64_t> ParseMpsV3Memory(const std::string& text);

// A client priority as NVIDIA documents it for CUDA_MPS_CLIENT_PRIORITY and a namespace's
// client_priority: "0" (normal) or "1" (below normal). The error names `where` (e.g. the pod
// annotation) and the accepted values.
Result<int> ParseMpsClientPriority(std::string_view text, std::string_view where);

// The server gpuslice runs for a GPU: "gpu-" + the first 8 hex digits of its UUID.
std::string DefaultMpsV3ServerName(const std::string& gpu_uuid);

// The arguments of the v3 namespace commands after the control binary (docs/isolation.md,
// "assumed details": the module-verb syntax of `server create --uid=<uid>` applied to namespaces).
std::vector<std::string> MpsV3CreateArgs(const MpsV3Namespace& ns);
std::vector<std::string> MpsV3DeleteArgs(const std::string& server, const std::string& name);
std::vector<std::string> MpsV3ListArgs(const std::string& server);

// Parses `namespace list` output: one namespace per line, `key=value` words (name,
// pinned_memory_limit, active_thread_percentage, client_priority); other keys are ignored, the
// reserved `default` namespace is left out. A line without a valid name is an error.
Result<std::vector<MpsV3Namespace>> ParseMpsV3NamespaceList(const std::string& server,
                                                            const std::string& text);
// One line of that format for `ns` (the fake daemon prints it).
std::string FormatMpsV3Namespace(const MpsV3Namespace& ns);

// The namespace commands of the v3 control interface, behind an interface so the agent's logic
// runs against the real `nvidia-cuda-mps-control` and, in tests, the fake v3 daemon.
class MpsV3Control {
 public:
  virtual ~MpsV3Control() = default;
  virtual Status CreateNamespace(const MpsV3Namespace& ns) = 0;
  // OK when it does not exist.
  virtual Status DeleteNamespace(const std::string& server, const std::string& name) = 0;
  virtual Result<std::vector<MpsV3Namespace>> ListNamespaces(const std::string& server) = 0;

  // The node agent says which GPUs get a v3 server (the others keep NVIDIA's v2 daemon), and
  // where the namespaces of live containers come from when a server (re)starts, so its TOML file
  // re-creates them. Implementations that run no daemons ignore both.
  virtual void UseV3For(const std::set<std::string>& /*gpu_uuids*/) {}
  using NamespaceSource = std::function<std::vector<MpsV3Namespace>(const std::string& server)>;
  virtual void SetNamespaceSource(NamespaceSource /*source*/) {}
};

}  // namespace gpuslice
