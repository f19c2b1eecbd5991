// libFuzzer target: the isolation state file a restarted node agent reads (ParseIsolationState,
// src/isolation/isolation_state.h). It may not crash or throw whatever the file holds; a state
// that parses must write back (FormatIsolationState) to a text that parses to the same state.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "isolation/isolation_state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto state = gpuslice::ParseIsolationState(text, "fuzz");
  if (state.ok()) {
    auto again = gpuslice::ParseIsolationState(gpuslice::FormatIsolationState(*state), "fuzz");
    if (!again.ok() || !(*again == *state)) std::abort();
  }
  return 0;
}
