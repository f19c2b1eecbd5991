// A container's compute weight and hard cap from its pod: the gpuslice.io/gpu-compute limit and
// the gpuslice.io/gpu-compute-cap annotation (docs/shim.md, "Compute shares"). Pure functions
// over the pod's JSON, kept apart from the referees so the annotation parser can be fuzzed
// (tests/fuzz/compute_cap_fuzzer.cc) without the node agent.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace gpuslice {

// The pod's compute limit for `container` (resources.limits of gpuslice.io/gpu-compute), or 0.
int ComputeLimitOf(const nlohmann::json& pod, const std::string& container);

// The value of the gpuslice.io/gpu-compute-cap annotation for a container whose gpu-compute
// request (its weight) is `weight_percent`: a whole percent from the request to 100, digits only.
// Otherwise InvalidArgument saying what was given and what is accepted.
Result<std::uint32_t> ParseComputeCap(const std::string& text, std::uint32_t weight_percent);

// The hard cap of `container` in `pod` with weight `weight_percent`: the gpu-compute-cap
// annotation when set (an invalid one is an error; the caller logs it and runs uncapped), else
// a gpu-compute limit above the request (`gpuslice run`-style pods outside Kubernetes' rule), else
// 0 (no cap).
Result<std::uint32_t> ComputeCapOf(const nlohmann::json& pod, const std::string& container,
                                   std::uint32_t weight_percent);

}  // namespace gpuslice
