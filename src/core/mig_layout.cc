#include "core/mig_layout.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <tuple>
#include <utility>

namespace gpuslice {
namespace {

// Memory slices as a bit set: bit s is slice s. Every catalogued GPU has at most 8 slices.
using SliceMask = std::uint32_t;

SliceMask MaskOf(int start, int size) {
  return ((SliceMask{1} << static_cast<unsigned>(size)) - 1U) << static_cast<unsigned>(start);
}

std::size_t IndexOf(const GpuModel& model, const MigProfile& p) {
  return static_cast<std::size_t>(&p - model.mig_profiles.data());
}

std::string JoinInts(const std::vector<int>& values) {
  std::string out;
  for (int v : values) {
    if (!out.empty()) out += ", ";
    out += std::to_string(v);
  }
  return out;
}

std::string Quoted(const MigLayout& layout) { return "\"" + FormatMigLayout(layout) + "\""; }

// "2 x 4g.20gb: profile 4g.20gb can be placed at most 1 time(s) on NVIDIA A100-SXM4-40GB".
Status TooMany(std::string_view what, int count, int already_placed, const MigProfile& p,
               const GpuModel& model) {
  std::string message(what);
  message += std::to_string(count);
  message += " x ";
  message += p.name;
  if (already_placed > 0) {
    message += " (";
    message += std::to_string(already_placed);
    message += " already placed)";
  }
  message += ": profile ";
  message += p.name;
  message += " can be placed at most ";
  message += std::to_string(p.max_count);
  message += " time(s) on ";
  message += model.product_name;
  return ResourceExhausted(std::move(message));
}

// Counting constraints that hold whatever the positions: per-profile maximum, "+me" instances,
// memory and compute slices. `requested[i]` and `existing[i]` are counts per profile index.
Status CheckCounts(const GpuModel& model, const std::vector<int>& requested,
                   const std::vector<int>& existing, std::string_view what) {
  const std::string where = std::string(what);
  int memory = 0, compute = 0, media = 0;
  int existing_memory = 0, existing_compute = 0;
  for (std::size_t i = 0; i < model.mig_profiles.size(); ++i) {
    const MigProfile& p = model.mig_profiles[i];
    const int total = requested[i] + existing[i];
    if (total > p.max_count) return TooMany(what, total, existing[i], p, model);
    memory += total * p.size_slots;
    compute += total * p.compute_slices;
    existing_memory += existing[i] * p.size_slots;
    existing_compute += existing[i] * p.compute_slices;
    if (p.media_extensions) media += total;
  }
  auto used_note = [](int used) {
    return used > 0 ? " (" + std::to_string(used) + " used by existing instances)" : std::string();
  };
  if (memory > model.memory_slices) {
    return ResourceExhausted(where + "no placement fits: needs " + std::to_string(memory) +
                             " memory slices, GPU has " + std::to_string(model.memory_slices) +
                             used_note(existing_memory));
  }
  if (compute > model.compute_slices) {
    return ResourceExhausted(where + "no placement fits: needs " + std::to_string(compute) +
                             " compute slices, GPU has " + std::to_string(model.compute_slices) +
                             used_note(existing_compute));
  }
  if (media > 1) {
    return ResourceExhausted(where + std::to_string(media) +
                             " instances with media extensions (+me): the GPU's media engines "
                             "can belong to one instance only");
  }
  return Status::Ok();
}

// Exact search: places `instances[i..]` (sorted so that equal profiles are adjacent) into the
// free slices of `occupied`, lowest start slot first. Equal profiles take increasing start slots,
// so each set of positions is tried once.
bool Place(const std::vector<const MigProfile*>& instances, std::size_t i, SliceMask occupied,
           int memory_slices, std::vector<int>& starts) {
  if (i == instances.size()) return true;
  const MigProfile& p = *instances[i];
  const bool same_as_previous = i > 0 && instances[i - 1] == instances[i];
  for (int start : p.start_slots) {
    if (same_as_previous && start <= starts[i - 1]) continue;
    if (start + p.size_slots > memory_slices) continue;
    const SliceMask mask = MaskOf(start, p.size_slots);
    if ((occupied & mask) != 0) continue;
    starts[i] = start;
    if (Place(instances, i + 1, occupied | mask, memory_slices, starts)) return true;
  }
  return false;
}

void SortByStart(std::vector<MigPlacement>& placements) {
  std::stable_sort(
      placements.begin(), placements.end(), [](const MigPlacement& a, const MigPlacement& b) {
        return std::tie(a.start_slot, a.profile_id) < std::tie(b.start_slot, b.profile_id);
      });
}

}  // namespace

Status ValidateMigPlacements(const GpuModel& model, const std::vector<MigPlacement>& placements) {
  if (!model.mig_capable()) {
    if (placements.empty()) return Status::Ok();
    return FailedPrecondition(model.product_name + " is not MIG capable");
  }
  std::vector<int> counts(model.mig_profiles.size(), 0);
  std::vector<int> none(model.mig_profiles.size(), 0);
  std::vector<std::pair<int, const MigProfile*>> placed;  // start slot, profile
  for (const MigPlacement& pl : placements) {
    const MigProfile* p = pl.profile_name.empty() ? model.FindProfileById(pl.profile_id)
                                                  : model.FindProfile(pl.profile_name);
    if (p == nullptr) {
      const std::string name = pl.profile_name.empty() ? "id " + std::to_string(pl.profile_id)
                                                       : "\"" + pl.profile_name + "\"";
      return InvalidArgument("unknown MIG profile " + name + " for " + model.product_name +
                             "; accepted: " + model.AcceptedProfileNames());
    }
    if (!p->CanStartAt(pl.start_slot)) {
      return InvalidArgument(p->name + " cannot start at slot " + std::to_string(pl.start_slot) +
                             " on " + model.product_name +
                             "; valid start slots: " + JoinInts(p->start_slots));
    }
    if (pl.size_slots != 0 && pl.size_slots != p->size_slots) {
      return InvalidArgument(p->name + " at slot " + std::to_string(pl.start_slot) + " has size " +
                             std::to_string(pl.size_slots) + "; the profile occupies " +
                             std::to_string(p->size_slots) + " memory slice(s)");
    }
    for (const auto& [other_start, other] : placed) {
      if (pl.start_slot < other_start + other->size_slots &&
          other_start < pl.start_slot + p->size_slots) {
        return InvalidArgument(p->name + " at slot " + std::to_string(pl.start_slot) +
                               " overlaps " + other->name + " at slot " +
                               std::to_string(other_start));
      }
    }
    ++counts[IndexOf(model, *p)];
    placed.emplace_back(pl.start_slot, p);
  }
  Status counted = CheckCounts(model, counts, none, "");
  if (!counted.ok()) return InvalidArgument(counted.message());
  return Status::Ok();
}

Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout) {
  return FitMigLayout(model, layout, {});
}

Result<std::vector<MigPlacement>> FitMigLayout(const GpuModel& model, const MigLayout& layout,
                                               const std::vector<MigPlacement>& existing) {
  const std::string what =
      "MIG layout " + Quoted(layout) + " does not fit on " + model.product_name + ": ";
  const std::string invalid = "MIG layout " + Quoted(layout) + " for " + model.product_name + ": ";
  if (!model.mig_capable()) {
    return FailedPrecondition(what + model.product_name + " is not MIG capable");
  }
  // Existing placements, normalised to catalogue names and sizes.
  std::vector<MigPlacement> result;
  {
    std::vector<MigPlacement> normalised;
    for (const MigPlacement& pl : existing) {
      const MigProfile* p = pl.profile_name.empty() ? model.FindProfileById(pl.profile_id)
                                                    : model.FindProfile(pl.profile_name);
      MigPlacement copy = pl;
      if (p != nullptr) copy = {p->name, p->id, pl.start_slot, p->size_slots};
      normalised.push_back(copy);
    }
    Status valid = ValidateMigPlacements(model, existing);
    if (!valid.ok()) {
      return InvalidArgument("existing MIG instances on " + model.product_name +
                             " are invalid: " + valid.message());
    }
    result = std::move(normalised);
  }

  std::vector<int> requested(model.mig_profiles.size(), 0);
  std::vector<int> already(model.mig_profiles.size(), 0);
  for (const auto& [name, count] : layout) {
    const MigProfile* p = model.FindProfile(name);
    if (p == nullptr) {
      std::string message = invalid;
      message += "unknown MIG profile \"";
      message += name;
      message += "\"; accepted: ";
      message += model.AcceptedProfileNames();
      return InvalidArgument(std::move(message));
    }
    if (count < 0) {
      return InvalidArgument(invalid + "count for " + p->name + " is " + std::to_string(count) +
                             "; counts must be 0 or more");
    }
    if (count > p->max_count) {  // also keeps the sums below from overflowing
      return TooMany(what, count, 0, *p, model);
    }
    requested[IndexOf(model, *p)] += count;
  }
  SliceMask occupied = 0;
  for (const MigPlacement& pl : result) {
    const MigProfile* p = model.FindProfile(pl.profile_name);
    ++already[IndexOf(model, *p)];
    occupied |= MaskOf(pl.start_slot, p->size_slots);
  }
  GPUSLICE_RETURN_IF_ERROR(CheckCounts(model, requested, already, what));

  // Largest instances first: they have the fewest start slots.
  std::vector<const MigProfile*> instances;
  for (std::size_t i = 0; i < model.mig_profiles.size(); ++i) {
    for (int n = 0; n < requested[i]; ++n) instances.push_back(&model.mig_profiles[i]);
  }
  std::stable_sort(instances.begin(), instances.end(),
                   [](const MigProfile* a, const MigProfile* b) {
                     return std::tie(b->size_slots, b->compute_slices) <
                            std::tie(a->size_slots, a->compute_slices);
                   });
  std::vector<int> starts(instances.size(), -1);
  if (!Place(instances, 0, occupied, model.memory_slices, starts)) {
    std::string detail;
    for (std::size_t i = 0; i < model.mig_profiles.size(); ++i) {
      if (requested[i] == 0) continue;
      const MigProfile& p = model.mig_profiles[i];
      if (!detail.empty()) detail += "; ";
      detail += p.name + " occupies " + std::to_string(p.size_slots) + " slice(s) starting at " +
                JoinInts(p.start_slots);
    }
    std::string around;
    if (!result.empty()) {
      SortByStart(result);
      around = " around the existing instances (";
      for (std::size_t i = 0; i < result.size(); ++i) {
        if (i > 0) around += ", ";
        around += result[i].profile_name + " at slot " + std::to_string(result[i].start_slot);
      }
      around += ")";
    }
    return ResourceExhausted(what + "no placement fits" + around +
                             ": every choice of start slots overlaps (" + detail + ")");
  }
  for (std::size_t i = 0; i < instances.size(); ++i) {
    result.push_back({instances[i]->name, instances[i]->id, starts[i], instances[i]->size_slots});
  }
  SortByStart(result);
  return result;
}

MigLayout MigLayoutOf(const std::vector<MigPlacement>& placements) {
  MigLayout layout;
  for (const MigPlacement& p : placements) ++layout[p.profile_name];
  return layout;
}

std::vector<MigLayout> MaximalMigLayouts(const GpuModel& model) {
  if (!model.mig_capable()) return {};
  const std::size_t n = model.mig_profiles.size();

  // Every (profile, start) a placement can use, by start slot then catalogue order.
  struct Candidate {
    std::size_t profile;
    int start;
    SliceMask mask;
  };
  std::vector<Candidate> candidates;
  for (int start = 0; start < model.memory_slices; ++start) {
    for (std::size_t i = 0; i < n; ++i) {
      const MigProfile& p = model.mig_profiles[i];
      if (p.CanStartAt(start) && start + p.size_slots <= model.memory_slices) {
        candidates.push_back({i, start, MaskOf(start, p.size_slots)});
      }
    }
  }

  // All layouts that fit: enumerate each valid set of placements once (candidates taken in
  // increasing index order) and record its counts.
  std::set<std::vector<int>> fitting;
  std::vector<int> counts(n, 0);
  int compute = 0, media = 0;
  auto enumerate = [&](auto& self, std::size_t next, SliceMask occupied) -> void {
    fitting.insert(counts);
    for (std::size_t c = next; c < candidates.size(); ++c) {
      const Candidate& cand = candidates[c];
      const MigProfile& p = model.mig_profiles[cand.profile];
      if ((occupied & cand.mask) != 0) continue;
      if (counts[cand.profile] + 1 > p.max_count) continue;
      if (compute + p.compute_slices > model.compute_slices) continue;
      if (p.media_extensions && media + 1 > 1) continue;
      ++counts[cand.profile];
      compute += p.compute_slices;
      media += p.media_extensions ? 1 : 0;
      self(self, c + 1, occupied | cand.mask);
      --counts[cand.profile];
      compute -= p.compute_slices;
      media -= p.media_extensions ? 1 : 0;
    }
  };
  enumerate(enumerate, 0, 0);

  std::vector<std::vector<int>> maximal;
  for (const std::vector<int>& layout : fitting) {
    bool extendable = false;
    for (std::size_t i = 0; i < n && !extendable; ++i) {
      std::vector<int> bigger = layout;
      ++bigger[i];
      extendable = fitting.count(bigger) > 0;
    }
    if (!extendable) maximal.push_back(layout);
  }

  // Order: compare the instances' (compute slices, memory slices), largest first, so that
  // "7g" comes before "4g + 3g" before "3g + 3g" ... before "1g x7".
  auto key = [&](const std::vector<int>& layout) {
    std::vector<std::tuple<int, int, int>> k;
    for (std::size_t i = 0; i < n; ++i) {
      const MigProfile& p = model.mig_profiles[i];
      for (int c = 0; c < layout[i]; ++c) {
        k.emplace_back(p.compute_slices, p.size_slots, -static_cast<int>(i));
      }
    }
    std::sort(k.rbegin(), k.rend());
    return k;
  };
  std::sort(maximal.begin(), maximal.end(),
            [&](const std::vector<int>& a, const std::vector<int>& b) { return key(a) > key(b); });

  std::vector<MigLayout> out;
  for (const std::vector<int>& layout : maximal) {
    MigLayout named;
    for (std::size_t i = 0; i < n; ++i) {
      if (layout[i] > 0) named[model.mig_profiles[i].name] = layout[i];
    }
    out.push_back(std::move(named));
  }
  return out;
}

std::string FormatMigLayout(const MigLayout& layout) {
  std::string out;
  for (const auto& [name, count] : layout) {
    if (count == 0) continue;
    if (!out.empty()) out += ", ";
    out += name + " x" + std::to_string(count);
  }
  return out.empty() ? "empty" : out;
}

}  // namespace gpuslice
