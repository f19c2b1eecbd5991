// Feeds arbitrary bytes to ParseComputeCap (the node agent's parser of the
// gpuslice.io/gpu-compute-cap pod annotation). The first byte picks the container's request (its
// weight, 1-100), the rest is the annotation's text. It must never crash; an accepted cap must be
// what the text says (digits only, from the request to 100) and parse again the same from its
// decimal form; a refusal must name the annotation, quote nothing longer than the input and say
// what is accepted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/resource_names.h"
#include "node_agent/compute_cap.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "compute_cap_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint32_t weight = 1u + data[0] % 100u;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const gpuslice::Result<std::uint32_t> cap = gpuslice::ParseComputeCap(text, weight);
  if (!cap.ok()) {
    const std::string message = cap.status().message();
    if (message.find(gpuslice::names::kAnnotationPodGpuComputeCap) == std::string::npos ||
        message.find("accepted:") == std::string::npos) {
      Fail("a refusal that does not say which annotation or what is accepted", message);
    }
    return 0;
  }
  if (*cap < weight || *cap > 100) Fail("accepted a cap outside [request, 100]", text);
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    Fail("accepted something other than digits", text);
  }
  if (std::strtoul(text.c_str(), nullptr, 10) != *cap) Fail("the cap is not what it says", text);
  const gpuslice::Result<std::uint32_t> again =
      gpuslice::ParseComputeCap(std::to_string(*cap), weight);
  if (!again.ok() || *again != *cap) Fail("its decimal form does not parse the same", text);
  return 0;
}
