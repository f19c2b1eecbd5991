// Kubernetes resource quantities ("8Gi", "500M", "1.5e9", "100m"), as the API server accepts them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gpuslice::scheduler {

// The value of a quantity, rounded up to a whole unit as Kubernetes' Quantity.Value() does
// ("1500m" -> 2, "0.5Ki" -> 512). Accepts an optional sign, digits with an optional fraction, and
// one suffix: binary Ki Mi Gi Ti Pi Ei, decimal n u m k M G T P E, or an exponent e<int>/E<int>.
// Errors say what is wrong and which forms are accepted; values beyond int64 are errors.
Result<std::int64_t> ParseQuantity(std::string_view text);

// Bytes in the shortest exact binary form ("8Gi", "6144Mi", "1000"), for messages.
std::string FormatBytes(std::int64_t bytes);

}  // namespace gpuslice::scheduler
