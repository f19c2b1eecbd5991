// Feeds arbitrary bytes to ParseContainerLimits (the shim's load-time parser of the limits file,
// versions 1 and 2 with the compute-arbiter fields). It must never crash; a rejected file must
// say "line N: why"; an accepted one must survive FormatContainerLimits -> ParseContainerLimits
// with every field unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/container_limits.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "container_limits_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool SameDevice(const gpuslice::shim::DeviceLimit& a, const gpuslice::shim::DeviceLimit& b) {
  return a.nvml_index == b.nvml_index && std::strcmp(a.uuid, b.uuid) == 0 &&
         a.memory_bytes == b.memory_bytes && a.compute_percent == b.compute_percent &&
         std::strcmp(a.arbiter_path, b.arbiter_path) == 0 &&
         std::strcmp(a.requests_path, b.requests_path) == 0 &&
         a.compute_cap_percent == b.compute_cap_percent;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using gpuslice::shim::ContainerLimits;
  const std::string text(reinterpret_cast<const char*>(data), size);
  ContainerLimits parsed;
  char error[256];
  if (!gpuslice::shim::ParseContainerLimits(text.data(), text.size(), &parsed, error,
                                            sizeof(error))) {
    if (std::strncmp(error, "line ", 5) != 0) Fail("error without a line number", error);
    return 0;
  }
  auto formatted = gpuslice::shim::FormatContainerLimits(parsed);
  if (!formatted.ok()) Fail("accepted but not formattable", formatted.status().ToString());
  ContainerLimits again;
  if (!gpuslice::shim::ParseContainerLimits(formatted->data(), formatted->size(), &again, error,
                                            sizeof(error))) {
    Fail("formatted text rejected", std::string(error) + "\n" + *formatted);
  }
  if (std::strcmp(again.region_path, parsed.region_path) != 0 ||
      std::strcmp(again.cuda_driver_path, parsed.cuda_driver_path) != 0 ||
      std::strcmp(again.nvml_driver_path, parsed.nvml_driver_path) != 0 ||
      again.context_overhead_bytes != parsed.context_overhead_bytes ||
      again.device_count != parsed.device_count) {
    Fail("round trip changed the file", *formatted);
  }
  for (std::uint32_t i = 0; i < parsed.device_count; ++i) {
    if (!SameDevice(parsed.devices[i], again.devices[i]))
      Fail("round trip changed a device", *formatted);
  }
  return 0;
}
