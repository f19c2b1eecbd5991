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
// slots, slice overlap, compute-slice totals, per-profile maximum counts and at most one "+me"
// instance per GPU. The result is sorted by start slot. Errors name the layout and say why it
// does not fit: INVALID_ARGUMENT for an unknown profile or a negative count (naming the accepted
// profiles), FAILED_PRECONDITION for a model without MIG, RESOURCE_EXHAUSTED when the instances
// cannot all be placed. Exact (backtracking) and deterministic: larger instances are placed
// first, each at its lowest free start slot that leaves the rest placeable.
Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout);

// Like FitMigLayout, but onto a GPU that already holds `existing` placements, which are kept
// where they are. The result holds the existing placements and the new ones, sorted by start
// slot. Existing placements that are themselves invalid give INVALID_ARGUMENT.
Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout,
                                               const std::vector<MigPlacement>& existing);

// Checks a concrete set of placements against `model`: known profiles, valid start slots, no
// overlap, compute slices, maximum counts, one "+me" instance at most.
Status ValidateMigPlacements(const GpuModel& model, const std::vector<MigPlacement>& placements);

// The layout (profile name -> count) of a set of placements.
MigLayout MigLayoutOf(const std::vector<MigPlacement>& placements);

// Every maximal layout of `model`: layouts that fit and to which no further instance of any
// profile can be added. Sorted deterministically; each layout appears once.
std::vector<MigLayout> MaximalMigLayouts(const GpuModel& model);

// "1g.10gb x4, 3g.40gb x1" for messages and tables (zero counts left out; "empty" if none).
std::string FormatMigLayout(const MigLayout& layout);

}  // namespace gpuslice
