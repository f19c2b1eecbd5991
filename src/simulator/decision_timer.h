// Collects per-pod decision times and summarises them (mean, p99, max).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

#include "simulator/simulator.h"

namespace gpuslice::simulator {

class DecisionTimer {
 public:
  void Record(std::chrono::steady_clock::duration elapsed) {
    samples_us_.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
  }

  DecisionStats Stats() const {
    DecisionStats stats;
    stats.decisions = samples_us_.size();
    if (samples_us_.empty()) return stats;
    std::vector<double> sorted = samples_us_;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (const double s : sorted) sum += s;
    stats.mean_us = sum / static_cast<double>(sorted.size());
    const auto p99_index = static_cast<std::size_t>(0.99 * static_cast<double>(sorted.size() - 1));
    stats.p99_us = sorted[p99_index];
    stats.max_us = sorted.back();
    return stats;
  }

 private:
  std::vector<double> samples_us_;
};

}  // namespace gpuslice::simulator
