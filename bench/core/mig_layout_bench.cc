// Cost of MIG planning calls the node agent and the placement engine make per decision.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/mig_layout.h"

namespace gpuslice {
namespace {

const GpuModel& Model(const char* name) {
  const GpuModel* m = FindGpuModel(name);
  if (m == nullptr) std::abort();
  return *m;
}

void BM_MaximalMigLayouts(benchmark::State& state, const char* model_name) {
  const GpuModel& model = Model(model_name);
  std::size_t layouts = 0;
  for (auto _ : state) {
    std::vector<MigLayout> maximal = MaximalMigLayouts(model);
    layouts = maximal.size();
    benchmark::DoNotOptimize(maximal);
  }
  state.counters["layouts"] = static_cast<double>(layouts);
}
BENCHMARK_CAPTURE(BM_MaximalMigLayouts, A100_40GB, "A100-SXM4-40GB")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MaximalMigLayouts, A30, "A30")->Unit(benchmark::kMicrosecond);

// A layout that needs backtracking (3g first tries slot 0 and must move to slot 4).
void BM_FitMigLayoutBacktracking(benchmark::State& state) {
  const GpuModel& model = Model("A100-SXM4-40GB");
  const MigLayout layout = {{"3g.20gb", 1}, {"2g.10gb", 1}, {"1g.5gb", 2}};
  for (auto _ : state) {
    auto placed = FitMigLayout(model, layout);
    benchmark::DoNotOptimize(placed);
  }
}
BENCHMARK(BM_FitMigLayoutBacktracking);

// The largest layout: seven 1g instances.
void BM_FitMigLayoutSevenSmallest(benchmark::State& state) {
  const GpuModel& model = Model("H100-80GB");
  const MigLayout layout = {{"1g.10gb", 7}};
  for (auto _ : state) {
    auto placed = FitMigLayout(model, layout);
    benchmark::DoNotOptimize(placed);
  }
}
BENCHMARK(BM_FitMigLayoutSevenSmallest);

// A layout that does not fit only because of positions: the search exhausts every choice.
void BM_FitMigLayoutAroundExistingNoFit(benchmark::State& state) {
  const GpuModel& model = Model("A100-SXM4-40GB");
  const MigLayout layout = {{"2g.10gb", 2}};
  const std::vector<MigPlacement> existing = {{"1g.5gb", 19, 1, 1}, {"1g.5gb", 19, 5, 1}};
  for (auto _ : state) {
    auto placed = FitMigLayout(model, layout, existing);
    benchmark::DoNotOptimize(placed);
  }
}
BENCHMARK(BM_FitMigLayoutAroundExistingNoFit);

}  // namespace
}  // namespace gpuslice
