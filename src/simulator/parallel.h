// Runs independent simulation runs on a few threads. Each run owns its engine; inputs are shared
// read-only.
#pragma once

#include <cstddef>
#include <functional>

namespace gpuslice::simulator {

// Calls fn(i) for every i in [0, count) on up to `jobs` threads (1 = the calling thread only).
void ParallelFor(std::size_t count, int jobs, const std::function<void(std::size_t)>& fn);

}  // namespace gpuslice::simulator
