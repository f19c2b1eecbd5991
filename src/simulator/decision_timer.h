// Collects per-pod decision times and summarises them (mean, p99, max): wall clock, and the
// deciding thread's CPU time (what a decision costs, unaffected by other processes sharing the
// machine; 0 when not recorded).
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

#include "simulator/simulator.h"

namespace gpuslice::simulator {

// CPU time of the calling thread.
inline std::chrono::nanoseconds ThreadCpuTime() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

class DecisionTimer {
 public:
  void Record(std::chrono::steady_clock::duration elapsed) {
    samples_us_.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
  }
  void Record(std::chrono::steady_clock::duration elapsed, std::chrono::nanoseconds cpu) {
    Record(elapsed);
    cpu_us_.push_back(std::chrono::duration<double, std::micro>(cpu).count());
  }

  DecisionStats Stats() const {
    DecisionStats stats;
    stats.decisions = samples_us_.size();
    if (samples_us_.empty()) return stats;
    Summarize(samples_us_, &stats.mean_us, &stats.p99_us, &stats.max_us);
    double cpu_max = 0;
    if (!cpu_us_.empty()) Summarize(cpu_us_, &stats.cpu_mean_us, &stats.cpu_p99_us, &cpu_max);
    return stats;
  }

 private:
  static void Summarize(std::vector<double> sorted, double* mean, double* p99, double* max) {
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (const double s : sorted) sum += s;
    *mean = sum / static_cast<double>(sorted.size());
    const auto p99_index = static_cast<std::size_t>(0.99 * static_cast<double>(sorted.size() - 1));
    *p99 = sorted[p99_index];
    *max = sorted.back();
  }

  std::vector<double> samples_us_;
  std::vector<double> cpu_us_;
};

}  // namespace gpuslice::simulator
