// libFuzzer target: the parsers of the createContainer hook path. The OCI state comes from the
// runtime, the spool request from a file any process able to write the spool could forge, and
// /proc/<pid>/cgroup from the container; none of them may crash the hook or the node agent.
#include <cstddef>
#include <cstdint>
#include <string>

#include "isolation/oci_hook.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)gpuslice::ParseOciState(text);
  (void)gpuslice::HookRequestFromJson(text);
  (void)gpuslice::ParseCgroupV2Path(text);
  (void)gpuslice::ValidateContainerId(text);
  return 0;
}
