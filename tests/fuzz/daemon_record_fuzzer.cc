// libFuzzer target: the MPS v3 daemon record a restarted node agent reads (ParseDaemonRecord) and
// the pod annotation the hook reads (ParseMpsClientPriority). Neither may crash or throw; a record
// that parses must write back to a record that parses to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "isolation/daemon_record.h"
#include "isolation/mps_v3.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)gpuslice::ParseMpsClientPriority(text, "fuzz");
  auto record = gpuslice::ParseDaemonRecord(text, "fuzz");
  if (record.ok()) {
    auto again = gpuslice::ParseDaemonRecord(gpuslice::DaemonRecordJson(*record), "fuzz");
    if (!again.ok() || !(*again == *record)) std::abort();
  }
  return 0;
}
