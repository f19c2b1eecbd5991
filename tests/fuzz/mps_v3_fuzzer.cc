// Fuzzes what gpuslice parses from the MPS v3 control binary: `namespace list` output
// (ParseMpsV3NamespaceList) and memory strings (ParseMpsV3Memory). Neither may crash or throw;
// what parses must format back to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "isolation/mps_v3.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)gpuslice::ParseMpsV3Memory(text);
  auto parsed = gpuslice::ParseMpsV3NamespaceList("s", text);
  if (parsed.ok()) {
    for (const auto& ns : *parsed) {
      auto again = gpuslice::ParseMpsV3NamespaceList("s", gpuslice::FormatMpsV3Namespace(ns));
      if (!again.ok() || again->size() != 1 || !(again->front() == ns)) std::abort();
    }
  }
  return 0;
}
