#include "core/mig_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace gpuslice {
namespace {

using testing::HasSubstr;

const GpuModel& MustFind(const std::string& name) {
  const GpuModel* m = FindGpuModel(name);
  if (m == nullptr) throw std::runtime_error("model not catalogued: " + name);
  return *m;
}

std::string TestName(std::string n) {
  for (char& ch : n) {
    if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
  }
  return n;
}

// "3g.20gb@4" style description of placements, for readable expectations.
std::vector<std::string> Describe(const std::vector<MigPlacement>& placements) {
  std::vector<std::string> out;
  out.reserve(placements.size());
  for (const MigPlacement& p : placements) {
    out.push_back(p.profile_name + "@" + std::to_string(p.start_slot));
  }
  return out;
}

std::vector<MigPlacement> Existing(const GpuModel& model,
                                   const std::vector<std::pair<std::string, int>>& at) {
  std::vector<MigPlacement> out;
  for (const auto& [name, start] : at) {
    const MigProfile* p = model.FindProfile(name);
    out.push_back({name, p != nullptr ? p->id : 0, start, p != nullptr ? p->size_slots : 1});
  }
  return out;
}

// ---- FitMigLayout: layouts that fit -----------------------------------------------------------

struct FitCase {
  std::string name;
  std::string model;
  MigLayout layout;
  std::vector<std::pair<std::string, int>> existing;  // profile, start slot
  std::vector<std::string> expected;                  // "profile@start", sorted by start
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const FitCase& c, std::ostream* os) { *os << c.name; }

class FitMigLayoutFitsTest : public testing::TestWithParam<FitCase> {};

TEST_P(FitMigLayoutFitsTest, PlacesEveryInstance) {
  const FitCase& c = GetParam();
  const GpuModel& model = MustFind(c.model);
  const std::vector<MigPlacement> existing = Existing(model, c.existing);
  Result<std::vector<MigPlacement>> placed = FitMigLayout(model, c.layout, existing);
  ASSERT_TRUE(placed.ok()) << placed.status().ToString();
  EXPECT_EQ(Describe(*placed), c.expected);
  // Whatever the expectation says, the result must be a valid GPU state holding the existing
  // instances plus exactly the requested ones.
  EXPECT_TRUE(ValidateMigPlacements(model, *placed).ok());
  MigLayout want = MigLayoutOf(existing);
  for (const auto& [name, count] : c.layout) {
    if (count > 0) want[model.FindProfile(name)->name] += count;
  }
  EXPECT_EQ(MigLayoutOf(*placed), want);
  for (const MigPlacement& p : *placed) {
    const MigProfile* profile = model.FindProfile(p.profile_name);
    ASSERT_NE(profile, nullptr);
    EXPECT_EQ(p.profile_id, profile->id);
    EXPECT_EQ(p.size_slots, profile->size_slots);
  }
  // Deterministic.
  Result<std::vector<MigPlacement>> again = FitMigLayout(model, c.layout, existing);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *placed);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, FitMigLayoutFitsTest,
    testing::Values(
        FitCase{
            "A100SevenSmallest",
            "A100-SXM4-40GB",
            {{"1g.5gb", 7}},
            {},
            {"1g.5gb@0", "1g.5gb@1", "1g.5gb@2", "1g.5gb@3", "1g.5gb@4", "1g.5gb@5", "1g.5gb@6"}},
        FitCase{
            "A100TwoHalves", "A100-SXM4-40GB", {{"3g.20gb", 2}}, {}, {"3g.20gb@0", "3g.20gb@4"}},
        FitCase{"A100FourPlusThree",
                "A100-SXM4-40GB",
                {{"4g.20gb", 1}, {"3g.20gb", 1}},
                {},
                {"4g.20gb@0", "3g.20gb@4"}},
        FitCase{"A100ThreeTwoOneOne",
                "A100-SXM4-40GB",
                {{"3g.20gb", 1}, {"2g.10gb", 1}, {"1g.5gb", 2}},
                {},
                {"2g.10gb@0", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"}},
        FitCase{"A100ThreePlusFourSmallest",
                "A100-SXM4-40GB",
                {{"3g.20gb", 1}, {"1g.5gb", 4}},
                {},
                {"1g.5gb@0", "1g.5gb@1", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"}},
        FitCase{"A100FourDoubleMemoryOneG",
                "A100-SXM4-40GB",
                {{"1g.10gb", 4}},
                {},
                {"1g.10gb@0", "1g.10gb@2", "1g.10gb@4", "1g.10gb@6"}},
        FitCase{"A100ThreeTwoGPlusDoubleMemoryOneG",
                "A100-SXM4-40GB",
                {{"2g.10gb", 3}, {"1g.10gb", 1}},
                {},
                {"2g.10gb@0", "2g.10gb@2", "2g.10gb@4", "1g.10gb@6"}},
        FitCase{"A100ThreeTwoGPlusOneG",
                "A100-SXM4-40GB",
                {{"2g.10gb", 3}, {"1g.5gb", 1}},
                {},
                {"2g.10gb@0", "2g.10gb@2", "2g.10gb@4", "1g.5gb@6"}},
        FitCase{"A100MediaExtensionsWithSixSmallest",
                "A100-SXM4-40GB",
                {{"1g.5gb+me", 1}, {"1g.5gb", 6}},
                {},
                {"1g.5gb@0", "1g.5gb@1", "1g.5gb@2", "1g.5gb@3", "1g.5gb@4", "1g.5gb@5",
                 "1g.5gb+me@6"}},
        FitCase{"A100WholeGpu", "A100-SXM4-40GB", {{"7g.40gb", 1}}, {}, {"7g.40gb@0"}},
        FitCase{"A100ProfileNameCaseInsensitive",
                "A100-SXM4-40GB",
                {{"3G.20GB", 1}},
                {},
                {"3g.20gb@0"}},
        FitCase{"A100ZeroCountIsIgnored",
                "A100-SXM4-40GB",
                {{"7g.40gb", 0}, {"4g.20gb", 1}},
                {},
                {"4g.20gb@0"}},
        FitCase{"A100EmptyLayout", "A100-SXM4-40GB", {}, {}, {}},
        FitCase{"A100_80Mixed",
                "A100-SXM4-80GB",
                {{"4g.40gb", 1}, {"2g.20gb", 1}, {"1g.10gb", 1}},
                {},
                {"4g.40gb@0", "2g.20gb@4", "1g.10gb@6"}},
        FitCase{"H100ThreeTwoOne",
                "H100-80GB",
                {{"3g.40gb", 1}, {"2g.20gb", 1}, {"1g.10gb", 2}},
                {},
                {"2g.20gb@0", "1g.10gb@2", "1g.10gb@3", "3g.40gb@4"}},
        FitCase{"H100NvlFourDoubleMemory",
                "H100-NVL",
                {{"1g.24gb", 4}},
                {},
                {"1g.24gb@0", "1g.24gb@2", "1g.24gb@4", "1g.24gb@6"}},
        FitCase{"H200TwoHalves", "H200", {{"3g.71gb", 2}}, {}, {"3g.71gb@0", "3g.71gb@4"}},
        FitCase{"B200FourPlusThree",
                "B200",
                {{"4g.90gb", 1}, {"3g.90gb", 1}},
                {},
                {"4g.90gb@0", "3g.90gb@4"}},
        FitCase{"A30FourSmallest",
                "A30",
                {{"1g.6gb", 4}},
                {},
                {"1g.6gb@0", "1g.6gb@1", "1g.6gb@2", "1g.6gb@3"}},
        FitCase{"A30TwoHalves", "A30", {{"2g.12gb", 2}}, {}, {"2g.12gb@0", "2g.12gb@2"}},
        FitCase{"A30HalfPlusTwoSmallest",
                "A30",
                {{"2g.12gb", 1}, {"1g.6gb", 2}},
                {},
                {"2g.12gb@0", "1g.6gb@2", "1g.6gb@3"}},
        FitCase{"A30MediaExtensionsHalf",
                "A30",
                {{"2g.12gb+me", 1}, {"2g.12gb", 1}},
                {},
                {"2g.12gb@0", "2g.12gb+me@2"}},
        FitCase{"A30WholeGpu", "A30", {{"4g.24gb", 1}}, {}, {"4g.24gb@0"}},
        // Around existing instances: they stay where they are.
        FitCase{"A100AroundOneAtSlotTwo",
                "A100-SXM4-40GB",
                {{"3g.20gb", 1}, {"2g.10gb", 1}},
                {{"1g.5gb", 2}},
                {"2g.10gb@0", "1g.5gb@2", "3g.20gb@4"}},
        FitCase{"A100AroundHalfAtSlotZero",
                "A100-SXM4-40GB",
                {{"1g.5gb", 3}},
                {{"3g.20gb", 0}},
                {"3g.20gb@0", "1g.5gb@4", "1g.5gb@5", "1g.5gb@6"}},
        FitCase{"A100AddToSameProfile",
                "A100-SXM4-40GB",
                {{"3g.20gb", 1}},
                {{"3g.20gb", 4}},
                {"3g.20gb@0", "3g.20gb@4"}},
        FitCase{"A100FillTheGap",
                "A100-SXM4-40GB",
                {{"1g.10gb", 1}},
                {{"2g.10gb", 0}, {"2g.10gb", 4}, {"1g.5gb", 3}},
                {"2g.10gb@0", "1g.5gb@3", "2g.10gb@4", "1g.10gb@6"}},
        FitCase{"A30AroundSmallest",
                "A30",
                {{"2g.12gb", 1}},
                {{"1g.6gb", 1}},
                {"1g.6gb@1", "2g.12gb@2"}}),
    [](const testing::TestParamInfo<FitCase>& param_info) { return param_info.param.name; });

// ---- FitMigLayout: layouts that do not fit ----------------------------------------------------

struct NoFitCase {
  std::string name;
  std::string model;
  MigLayout layout;
  std::vector<std::pair<std::string, int>> existing;
  ErrorCode code;
  std::vector<std::string> message_parts;
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const NoFitCase& c, std::ostream* os) { *os << c.name; }

class FitMigLayoutRejectsTest : public testing::TestWithParam<NoFitCase> {};

TEST_P(FitMigLayoutRejectsTest, SaysWhy) {
  const NoFitCase& c = GetParam();
  const GpuModel& model = MustFind(c.model);
  Result<std::vector<MigPlacement>> placed =
      FitMigLayout(model, c.layout, Existing(model, c.existing));
  ASSERT_FALSE(placed.ok()) << testing::PrintToString(Describe(*placed));
  EXPECT_EQ(placed.status().code(), c.code) << placed.status().ToString();
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(placed.status().message(), HasSubstr(part));
  }
}

const ErrorCode kExhausted = ErrorCode::kResourceExhausted;
const ErrorCode kInvalid = ErrorCode::kInvalidArgument;

INSTANTIATE_TEST_SUITE_P(
    Layouts, FitMigLayoutRejectsTest,
    testing::Values(
        NoFitCase{"A100TwoFourG",
                  "A100-SXM4-40GB",
                  {{"4g.20gb", 2}},
                  {},
                  kExhausted,
                  {"MIG layout \"4g.20gb x2\" does not fit on NVIDIA A100-SXM4-40GB",
                   "2 x 4g.20gb: profile 4g.20gb can be placed at most 1 time(s) on NVIDIA "
                   "A100-SXM4-40GB"}},
        NoFitCase{"A100EightSmallest",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 8}},
                  {},
                  kExhausted,
                  {"8 x 1g.5gb: profile 1g.5gb can be placed at most 7 time(s)"}},
        NoFitCase{"A100ThreeHalves",
                  "A100-SXM4-40GB",
                  {{"3g.20gb", 3}},
                  {},
                  kExhausted,
                  {"3 x 3g.20gb: profile 3g.20gb can be placed at most 2 time(s)"}},
        NoFitCase{"A100FourTwoG",
                  "A100-SXM4-40GB",
                  {{"2g.10gb", 4}},
                  {},
                  kExhausted,
                  {"4 x 2g.10gb: profile 2g.10gb can be placed at most 3 time(s)"}},
        NoFitCase{"A100TwoMediaExtensions",
                  "A100-SXM4-40GB",
                  {{"1g.5gb+me", 2}},
                  {},
                  kExhausted,
                  {"2 x 1g.5gb+me: profile 1g.5gb+me can be placed at most 1 time(s)"}},
        NoFitCase{"A100HugeCountDoesNotOverflow",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 2147483647}, {"1G.5GB", 1}},
                  {},
                  kExhausted,
                  {"2147483647 x 1g.5gb: profile 1g.5gb can be placed at most 7 time(s)"}},
        NoFitCase{"A100SameProfileInTwoSpellingsAddsUp",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 4}, {"1G.5GB", 4}},
                  {},
                  kExhausted,
                  {"8 x 1g.5gb: profile 1g.5gb can be placed at most 7 time(s)"}},
        NoFitCase{"A100FiveDoubleMemoryOneG",
                  "A100-SXM4-40GB",
                  {{"1g.10gb", 5}},
                  {},
                  kExhausted,
                  {"profile 1g.10gb can be placed at most 4 time(s)"}},
        NoFitCase{"A100NineMemorySlices",
                  "A100-SXM4-40GB",
                  {{"4g.20gb", 1}, {"3g.20gb", 1}, {"1g.5gb", 1}},
                  {},
                  kExhausted,
                  {"no placement fits: needs 9 memory slices, GPU has 8"}},
        NoFitCase{"A100WholeGpuPlusOne",
                  "A100-SXM4-40GB",
                  {{"7g.40gb", 1}, {"1g.5gb", 1}},
                  {},
                  kExhausted,
                  {"needs 9 memory slices, GPU has 8"}},
        NoFitCase{"A100EightComputeSlices",
                  "A100-SXM4-40GB",
                  {{"4g.20gb", 1}, {"2g.10gb", 2}},
                  {},
                  kExhausted,
                  {"no placement fits: needs 8 compute slices, GPU has 7"}},
        NoFitCase{"A100UnknownProfile",
                  "A100-SXM4-40GB",
                  {{"1g.6gb", 1}},
                  {},
                  kInvalid,
                  {"unknown MIG profile \"1g.6gb\"",
                   "accepted: 1g.5gb, 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb"}},
        NoFitCase{"A100_40RejectsAnA100_80Profile",
                  "A100-SXM4-40GB",
                  {{"3g.40gb", 1}},
                  {},
                  kInvalid,
                  {"unknown MIG profile \"3g.40gb\""}},
        NoFitCase{"NegativeCount",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", -1}},
                  {},
                  kInvalid,
                  {"count for 1g.5gb is -1"}},
        NoFitCase{"NotMigCapable",
                  "T4",
                  {{"1g.5gb", 1}},
                  {},
                  ErrorCode::kFailedPrecondition,
                  {"Tesla T4 is not MIG capable"}},
        NoFitCase{"A30TwoMediaExtensionProfiles",
                  "A30",
                  {{"1g.6gb+me", 1}, {"2g.12gb+me", 1}},
                  {},
                  kExhausted,
                  {"2 instances with media extensions (+me)"}},
        NoFitCase{"A30FiveSlices",
                  "A30",
                  {{"2g.12gb", 2}, {"1g.6gb", 1}},
                  {},
                  kExhausted,
                  {"needs 5 memory slices, GPU has 4"}},
        // Around existing instances.
        NoFitCase{"A100FourGBlockedBySlotOne",
                  "A100-SXM4-40GB",
                  {{"4g.20gb", 1}},
                  {{"1g.5gb", 1}},
                  kExhausted,
                  {"no placement fits around the existing instances (1g.5gb at slot 1)",
                   "4g.20gb occupies 4 slice(s) starting at 0"}},
        NoFitCase{"A100TwoGBlockedBySmallOnes",
                  "A100-SXM4-40GB",
                  {{"2g.10gb", 2}},
                  {{"1g.5gb", 1}, {"1g.5gb", 5}},
                  kExhausted,
                  {"no placement fits around the existing instances", "2g.10gb occupies 2"}},
        NoFitCase{"A100CountIncludesExisting",
                  "A100-SXM4-40GB",
                  {{"3g.20gb", 1}, {"1g.5gb", 1}},
                  {{"3g.20gb", 0}, {"3g.20gb", 4}},
                  kExhausted,
                  {"3 x 3g.20gb (2 already placed): profile 3g.20gb can be placed at most 2"}},
        NoFitCase{"A100MemoryIncludesExisting",
                  "A100-SXM4-40GB",
                  {{"3g.20gb", 1}, {"1g.5gb", 1}},
                  {{"2g.10gb", 0}, {"2g.10gb", 4}},
                  kExhausted,
                  {"needs 9 memory slices, GPU has 8 (4 used by existing instances)"}},
        NoFitCase{"A30HalfBlockedBySmallOnes",
                  "A30",
                  {{"2g.12gb", 1}},
                  {{"1g.6gb", 1}, {"1g.6gb", 3}},
                  kExhausted,
                  {"no placement fits around the existing instances"}},
        NoFitCase{"ExistingOverlap",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 1}},
                  {{"3g.20gb", 0}, {"2g.10gb", 2}},
                  kInvalid,
                  {"existing MIG instances", "2g.10gb at slot 2 overlaps 3g.20gb at slot 0"}},
        NoFitCase{"ExistingBadStartSlot",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 1}},
                  {{"3g.20gb", 2}},
                  kInvalid,
                  {"3g.20gb cannot start at slot 2", "valid start slots: 0, 4"}},
        NoFitCase{"ExistingUnknownProfile",
                  "A100-SXM4-40GB",
                  {{"1g.5gb", 1}},
                  {{"9g.99gb", 0}},
                  kInvalid,
                  {"unknown MIG profile \"9g.99gb\""}}),
    [](const testing::TestParamInfo<NoFitCase>& param_info) { return param_info.param.name; });

TEST(FitMigLayoutTest, ResultDoesNotDependOnTheOrderOfExistingPlacements) {
  const GpuModel& model = MustFind("A100-SXM4-40GB");
  const auto a =
      FitMigLayout(model, {{"1g.5gb", 2}}, Existing(model, {{"2g.10gb", 4}, {"1g.5gb", 0}}));
  const auto b =
      FitMigLayout(model, {{"1g.5gb", 2}}, Existing(model, {{"1g.5gb", 0}, {"2g.10gb", 4}}));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_THAT(Describe(*a), testing::ElementsAre("1g.5gb@0", "1g.5gb@1", "1g.5gb@2", "2g.10gb@4"));
}

TEST(FitMigLayoutTest, ExistingPlacementsMayBeNamedByProfileIdOnly) {
  const GpuModel& model = MustFind("A100-SXM4-40GB");
  const auto placed = FitMigLayout(model, {{"4g.20gb", 1}}, {{"", 9, 4, 4}});
  ASSERT_TRUE(placed.ok()) << placed.status().ToString();
  EXPECT_THAT(Describe(*placed), testing::ElementsAre("4g.20gb@0", "3g.20gb@4"));
}

// ---- Brute-force cross-checks over every layout of every MIG model ---------------------------

// Every count vector within the profiles' maximum counts.
std::vector<std::vector<int>> AllCountVectors(const GpuModel& model) {
  std::vector<std::vector<int>> out;
  std::vector<int> counts(model.mig_profiles.size(), 0);
  std::function<void(std::size_t)> rec = [&](std::size_t i) {
    if (i == counts.size()) {
      out.push_back(counts);
      return;
    }
    for (int c = 0; c <= model.mig_profiles[i].max_count; ++c) {
      counts[i] = c;
      rec(i + 1);
    }
    counts[i] = 0;
  };
  rec(0);
  return out;
}

// An independent, naive oracle: try every start slot of every instance in the given order.
bool BruteForceFits(const GpuModel& model, const std::vector<int>& counts) {
  int memory = 0, compute = 0, media = 0;
  std::vector<const MigProfile*> instances;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const MigProfile& p = model.mig_profiles[i];
    if (counts[i] > p.max_count) return false;
    memory += counts[i] * p.size_slots;
    compute += counts[i] * p.compute_slices;
    if (p.media_extensions) media += counts[i];
    for (int n = 0; n < counts[i]; ++n) instances.push_back(&p);
  }
  if (memory > model.memory_slices || compute > model.compute_slices || media > 1) return false;
  std::vector<bool> used(static_cast<std::size_t>(model.memory_slices), false);
  std::function<bool(std::size_t)> rec = [&](std::size_t k) {
    if (k == instances.size()) return true;
    const MigProfile& p = *instances[k];
    for (int start : p.start_slots) {
      bool free = true;
      for (int s = start; s < start + p.size_slots; ++s) {
        free = free && !used[static_cast<std::size_t>(s)];
      }
      if (!free) continue;
      for (int s = start; s < start + p.size_slots; ++s) used[static_cast<std::size_t>(s)] = true;
      const bool ok = rec(k + 1);
      for (int s = start; s < start + p.size_slots; ++s) used[static_cast<std::size_t>(s)] = false;
      if (ok) return true;
    }
    return false;
  };
  return rec(0);
}

MigLayout Named(const GpuModel& model, const std::vector<int>& counts) {
  MigLayout layout;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) layout[model.mig_profiles[i].name] = counts[i];
  }
  return layout;
}

std::vector<int> Counts(const GpuModel& model, const MigLayout& layout) {
  std::vector<int> counts(model.mig_profiles.size(), 0);
  for (const auto& [name, count] : layout) {
    const MigProfile* p = model.FindProfile(name);
    if (p == nullptr) throw std::runtime_error("unknown profile " + name);
    counts[static_cast<std::size_t>(p - model.mig_profiles.data())] += count;
  }
  return counts;
}

std::vector<std::string> MigModelKeys() {
  std::vector<std::string> keys;
  for (const GpuModel& m : AllGpuModels()) {
    if (m.mig_capable()) keys.push_back(m.name);
  }
  return keys;
}

class MigModelTest : public testing::TestWithParam<std::string> {};

TEST_P(MigModelTest, FitMigLayoutAgreesWithBruteForceOnEveryLayout) {
  const GpuModel& model = MustFind(GetParam());
  int fitting = 0;
  for (const std::vector<int>& counts : AllCountVectors(model)) {
    const MigLayout layout = Named(model, counts);
    const bool expected = BruteForceFits(model, counts);
    Result<std::vector<MigPlacement>> placed = FitMigLayout(model, layout);
    ASSERT_EQ(placed.ok(), expected)
        << FormatMigLayout(layout) << ": " << placed.status().ToString();
    if (!placed.ok()) {
      EXPECT_EQ(placed.status().code(), ErrorCode::kResourceExhausted);
      continue;
    }
    ++fitting;
    ASSERT_TRUE(ValidateMigPlacements(model, *placed).ok()) << FormatMigLayout(layout);
    EXPECT_EQ(MigLayoutOf(*placed), layout);
    for (std::size_t i = 1; i < placed->size(); ++i) {
      EXPECT_LE((*placed)[i - 1].start_slot, (*placed)[i].start_slot);
    }
  }
  EXPECT_GT(fitting, 1);
}

TEST_P(MigModelTest, MaximalLayoutsAreExactlyTheUnextendableFittingLayouts) {
  const GpuModel& model = MustFind(GetParam());
  const std::vector<MigLayout> maximal = MaximalMigLayouts(model);
  ASSERT_FALSE(maximal.empty());
  EXPECT_EQ(MaximalMigLayouts(model), maximal);  // deterministic

  std::set<std::vector<int>> seen;
  for (const MigLayout& layout : maximal) {
    SCOPED_TRACE(FormatMigLayout(layout));
    const std::vector<int> counts = Counts(model, layout);
    EXPECT_TRUE(seen.insert(counts).second) << "listed twice";
    EXPECT_TRUE(BruteForceFits(model, counts));
    EXPECT_TRUE(FitMigLayout(model, layout).ok());
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::vector<int> bigger = counts;
      ++bigger[i];
      EXPECT_FALSE(BruteForceFits(model, bigger)) << "can still add " << model.mig_profiles[i].name;
    }
  }
  // Every layout that fits is dominated by (is a sub-multiset of) a listed maximal layout, and
  // every fitting layout that cannot be extended is listed.
  for (const std::vector<int>& counts : AllCountVectors(model)) {
    if (!BruteForceFits(model, counts)) continue;
    bool dominated = false;
    for (const std::vector<int>& m : seen) {
      bool covers = true;
      for (std::size_t i = 0; i < counts.size(); ++i) covers = covers && counts[i] <= m[i];
      dominated = dominated || covers;
    }
    EXPECT_TRUE(dominated) << FormatMigLayout(Named(model, counts));
    bool extendable = false;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::vector<int> bigger = counts;
      ++bigger[i];
      extendable = extendable || BruteForceFits(model, bigger);
    }
    EXPECT_EQ(!extendable, seen.count(counts) > 0) << FormatMigLayout(Named(model, counts));
  }
  // The whole-GPU instance comes first.
  const MigProfile& whole = model.mig_profiles.back();
  EXPECT_EQ(whole.size_slots, model.memory_slices);
  EXPECT_EQ(maximal.front(), (MigLayout{{whole.name, 1}}));
}

INSTANTIATE_TEST_SUITE_P(Catalogue, MigModelTest, testing::ValuesIn(MigModelKeys()),
                         [](const testing::TestParamInfo<std::string>& param_info) {
                           return TestName(param_info.param);
                         });

TEST(MaximalMigLayoutsTest, A100ListContainsTheWellKnownLayouts) {
  const std::vector<MigLayout> maximal = MaximalMigLayouts(MustFind("A100-SXM4-40GB"));
  for (const MigLayout& expected : std::vector<MigLayout>{
           {{"7g.40gb", 1}},
           {{"4g.20gb", 1}, {"3g.20gb", 1}},
           {{"3g.20gb", 2}},
           {{"1g.5gb", 7}},
           {{"1g.10gb", 4}},
           {{"2g.10gb", 3}, {"1g.5gb", 1}},
           {{"2g.10gb", 3}, {"1g.10gb", 1}},
           {{"1g.5gb+me", 1}, {"1g.5gb", 6}},
       }) {
    EXPECT_THAT(maximal, testing::Contains(expected)) << FormatMigLayout(expected);
  }
  // Not maximal: a 3g.20gb and a 1g.5gb still leave room.
  EXPECT_THAT(maximal, testing::Not(testing::Contains(MigLayout{{"3g.20gb", 1}, {"1g.5gb", 1}})));
}

TEST(MaximalMigLayoutsTest, NonMigModelHasNone) {
  EXPECT_TRUE(MaximalMigLayouts(MustFind("T4")).empty());
}

// ---- Small helpers ----------------------------------------------------------------------------

TEST(FormatMigLayoutTest, ListsProfilesInNameOrderAndSkipsZeroCounts) {
  EXPECT_EQ(FormatMigLayout({{"3g.40gb", 1}, {"1g.10gb", 4}}), "1g.10gb x4, 3g.40gb x1");
  EXPECT_EQ(FormatMigLayout({{"7g.80gb", 0}, {"4g.40gb", 1}}), "4g.40gb x1");
  EXPECT_EQ(FormatMigLayout({}), "empty");
}

TEST(MigLayoutOfTest, CountsPlacementsPerProfile) {
  EXPECT_EQ(MigLayoutOf({{"1g.5gb", 19, 0, 1}, {"1g.5gb", 19, 1, 1}, {"3g.20gb", 9, 4, 4}}),
            (MigLayout{{"1g.5gb", 2}, {"3g.20gb", 1}}));
  EXPECT_TRUE(MigLayoutOf({}).empty());
}

TEST(ValidateMigPlacementsTest, RejectsWrongSizeAndNonMigModels) {
  const GpuModel& a100 = MustFind("A100-SXM4-40GB");
  EXPECT_TRUE(ValidateMigPlacements(a100, {}).ok());
  Status wrong_size = ValidateMigPlacements(a100, {{"3g.20gb", 9, 0, 3}});
  EXPECT_EQ(wrong_size.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(wrong_size.message(), HasSubstr("the profile occupies 4 memory slice(s)"));
  Status two_media =
      ValidateMigPlacements(a100, {{"1g.5gb+me", 20, 0, 1}, {"1g.5gb+me", 20, 1, 1}});
  EXPECT_EQ(two_media.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(two_media.message(), HasSubstr("can be placed at most 1 time(s)"));
  EXPECT_TRUE(ValidateMigPlacements(
                  a100, {{"4g.20gb", 5, 0, 4}, {"2g.10gb", 14, 4, 2}, {"1g.5gb", 19, 6, 1}})
                  .ok());
  EXPECT_EQ(ValidateMigPlacements(MustFind("T4"), {{"1g.5gb", 19, 0, 1}}).code(),
            ErrorCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gpuslice
