// libFuzzer target: the parsers of the createContainer hook path. The OCI state comes from the
// runtime, the spool request from a file any process able to write the spool could forge, and
// /proc/<pid>/cgroup from the container; none of them may crash the hook or the node agent, and a
// request that parses survives its format/parse round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "isolation/oci_hook.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)gpuslice::ParseOciState(text);
  // A request that parses formats back to the same request (its optional pod fields included).
  if (auto request = gpuslice::HookRequestFromJson(text); request.ok()) {
    auto again = gpuslice::HookRequestFromJson(gpuslice::HookRequestToJson(*request));
    if (!again.ok() || again->container_id != request->container_id || again->pid != request->pid ||
        again->cgroup_path != request->cgroup_path || again->token != request->token ||
        again->mps_client_priority != request->mps_client_priority ||
        (!request->pod.empty() &&
         (again->pod.namespace_name != request->pod.namespace_name ||
          again->pod.name != request->pod.name || again->pod.uid != request->pod.uid))) {
      std::abort();
    }
  }
  (void)gpuslice::ParseCgroupV2Path(text);
  (void)gpuslice::ValidateContainerId(text);
  return 0;
}
