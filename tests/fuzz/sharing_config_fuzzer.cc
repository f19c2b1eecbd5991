// Feeds arbitrary bytes to ParseSharingConfig. It must never crash, leak or throw; an accepted
// config must survive FormatSharingConfig -> ParseSharingConfig unchanged (source lines aside),
// and a rejected one must carry an InvalidArgument message naming the source.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/sharing_config.h"

namespace {

gpuslice::SharingConfig WithoutLines(gpuslice::SharingConfig config) {
  for (auto* shared : {&config.time_slicing, &config.mps}) {
    if (!shared->has_value()) continue;
    for (gpuslice::ReplicatedResource& r : (*shared)->resources) r.source_line = 0;
  }
  return config;
}

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "sharing_config_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  gpuslice::Result<gpuslice::SharingConfig> config =
      gpuslice::ParseSharingConfig(text, "fuzz.yaml");
  if (!config.ok()) {
    const gpuslice::Status status = config.status();
    if (status.code() != gpuslice::ErrorCode::kInvalidArgument ||
        status.message().rfind("fuzz.yaml", 0) != 0) {
      Fail("error without InvalidArgument or source name", status.ToString());
    }
    return 0;
  }
  const std::string formatted = gpuslice::FormatSharingConfig(*config);
  gpuslice::Result<gpuslice::SharingConfig> again =
      gpuslice::ParseSharingConfig(formatted, "formatted");
  if (!again.ok())
    Fail("formatted config does not parse", again.status().ToString() + "\n" + formatted);
  if (!(WithoutLines(*again) == WithoutLines(*config))) {
    Fail("round trip changed the config", formatted);
  }
  return 0;
}
