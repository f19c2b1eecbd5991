#include "simulator/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace gpuslice::simulator {

void ParallelFor(std::size_t count, int jobs, const std::function<void(std::size_t)>& fn) {
  const auto threads = static_cast<std::size_t>(std::max(1, jobs));
  if (threads == 1 || count <= 1) {
    for (std::size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < std::min(threads, count); ++t) {
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < count; i = next++) fn(i);
    });
  }
  for (std::thread& thread : pool) thread.join();
}

}  // namespace gpuslice::simulator
