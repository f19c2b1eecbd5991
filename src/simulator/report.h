// Output of simulation results: aligned text tables, CSV and an SVG allocation chart.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "simulator/simulator.h"

namespace gpuslice::simulator {

// Fill results of one policy over several seeds.
struct PolicySummary {
  std::string policy;
  std::size_t runs = 0;
  double unallocated_at_100_mean = 0;
  double unallocated_at_100_sd = 0;  // sample standard deviation; 0 for one run
  double unallocated_at_end_mean = 0;
  double unallocated_at_end_sd = 0;
  double decision_mean_us = 0;      // over all decisions of all runs
  double decision_p99_us = 0;       // the largest per-run p99
  double decision_cpu_mean_us = 0;  // the same in the deciding thread's CPU time
  double decision_cpu_p99_us = 0;
  double wall_seconds_mean = 0;
  std::vector<CurvePoint> curve;  // mean over runs, per whole percent arrived
};

// Groups by policy, keeping the order in which policies first appear.
std::vector<PolicySummary> Summarize(const std::vector<FillResult>& results);

std::string FillTable(const std::vector<PolicySummary>& summaries, double target_ratio);
// One row per (policy, seed, arrived percent).
std::string FillCurveCsv(const std::vector<FillResult>& results);
// One row per (policy, seed) with the headline numbers.
std::string FillRunsCsv(const std::vector<FillResult>& results);
// Allocation ratio against arrived demand, one line per policy (mean over seeds).
std::string AllocationSvg(const std::vector<PolicySummary>& summaries, std::string_view title);

// A progress line for a terminal: "12/300 runs, 0:45 elapsed, about 17:45 left" (no estimate
// before the first run is done).
std::string ProgressLine(std::size_t done, std::size_t total, double elapsed_seconds);

std::string ReplayTable(const std::vector<ReplayResult>& results);
std::string ReplayCsv(const std::vector<ReplayResult>& results);

std::string CompareTable(const std::vector<StrategyRow>& rows);
std::string CompareCsv(const std::vector<StrategyRow>& rows);

}  // namespace gpuslice::simulator
