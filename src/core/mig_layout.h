// MIG layout planning on one GPU: does a requested set of instances fit, and where.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/gpu_model.h"
#include "core/status.h"

namespace gpuslice {

// Requested instances: profile name -> count, e.g. {"3g.40gb": 1, "1g.10gb": 4}.
using MigLayout = std::map<std::string, int>;

struct MigPlacement {
  std::string profile_name;
  int profile_id = 0;
  int start_slot = 0;
  int size_slots = 0;

  bool operator==(const MigPlacement&) const = default;
};

// Finds placements for every requested instance on an empty GPU of `model`, honouring start
// slots, slice overlap, compute-slice totals and per-profile maximum counts. The result is sorted
// by start slot. Errors name the profile and say why the layout does not fit.
Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout);

// Like FitMigLayout, but onto a GPU that already holds `existing` placements.
Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout,
                                               const std::vector<MigPlacement>& existing);

// Every maximal layout of `model`: layouts that fit and to which no further instance of any
// profile can be added. Sorted deterministically; each layout appears once.
std::vector<MigLayout> MaximalMigLayouts(const GpuModel& model);

// "1g.10gb x4, 3g.40gb x1" for messages and tables.
std::string FormatMigLayout(const MigLayout& layout);

}  // namespace gpuslice
