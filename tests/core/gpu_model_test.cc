#include "core/gpu_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "core/gpu.h"

namespace gpuslice {
namespace {

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const GpuModel& MustFind(const std::string& name) {
  const GpuModel* m = FindGpuModel(name);
  if (m == nullptr) throw std::runtime_error("model not catalogued: " + name);
  return *m;
}

// ---- Lookup --------------------------------------------------------------------------------

struct LookupCase {
  std::string name;
  std::string query;
  std::string expected_key;  // empty: not found
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const LookupCase& c, std::ostream* os) { *os << c.name; }

class FindGpuModelTest : public testing::TestWithParam<LookupCase> {};

TEST_P(FindGpuModelTest, FindsByKeyAliasOrProductName) {
  const LookupCase& c = GetParam();
  const GpuModel* m = FindGpuModel(c.query);
  if (c.expected_key.empty()) {
    EXPECT_EQ(m, nullptr) << "found " << m->name;
  } else {
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->name, c.expected_key);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, FindGpuModelTest,
    testing::Values(
        LookupCase{"Key", "A100-SXM4-40GB", "A100-SXM4-40GB"},
        LookupCase{"Alias", "A100-40GB", "A100-SXM4-40GB"},
        LookupCase{"ProductName", "NVIDIA A100-SXM4-40GB", "A100-SXM4-40GB"},
        LookupCase{"CaseInsensitive", "nvidia a100-sxm4-40gb", "A100-SXM4-40GB"},
        LookupCase{"SurroundingSpaces", "  A30 ", "A30"},
        LookupCase{"A100Pcie40", "NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB"},
        LookupCase{"A100Sxm80Alias", "A100-80GB", "A100-SXM4-80GB"},
        LookupCase{"A100Pcie80Product", "NVIDIA A100 80GB PCIe", "A100-PCIE-80GB"},
        LookupCase{"OldDriverWithoutNvidiaPrefix", "A100 80GB PCIe", "A100-PCIE-80GB"},
        LookupCase{"A30Product", "NVIDIA A30", "A30"},
        LookupCase{"H100Sxm", "NVIDIA H100 80GB HBM3", "H100-80GB"},
        LookupCase{"H100Pcie", "NVIDIA H100 PCIe", "H100-PCIE-80GB"},
        LookupCase{"H100Nvl", "NVIDIA H100 NVL", "H100-NVL"},
        LookupCase{"H100_96", "H100-96GB", "H100-96GB"},
        LookupCase{"H200Product", "NVIDIA H200", "H200-141GB"},
        LookupCase{"H200FixtureAlias", "H200", "H200-141GB"},
        LookupCase{"B200Product", "NVIDIA B200", "B200"}, LookupCase{"T4Product", "Tesla T4", "T4"},
        LookupCase{"V100_16Product", "Tesla V100-SXM2-16GB", "V100-SXM2-16GB"},
        LookupCase{"V100_32Product", "Tesla V100-SXM2-32GB", "V100-SXM2-32GB"},
        LookupCase{"P100Product", "Tesla P100-PCIE-16GB", "P100-PCIE-16GB"},
        LookupCase{"A10Product", "NVIDIA A10", "A10"}, LookupCase{"L4Product", "NVIDIA L4", "L4"},
        // The Alibaba openb trace's model column.
        LookupCase{"TraceV100M16", "V100M16", "V100-SXM2-16GB"},
        LookupCase{"TraceV100M32", "V100M32", "V100-SXM2-32GB"},
        LookupCase{"TraceP100", "P100", "P100-PCIE-16GB"}, LookupCase{"TraceT4", "T4", "T4"},
        LookupCase{"TraceA10", "A10", "A10"}, LookupCase{"TraceAnonymisedG2IsUnknown", "G2", ""},
        LookupCase{"TraceAnonymisedG3IsUnknown", "G3", ""}, LookupCase{"Empty", "", ""},
        LookupCase{"Unknown", "NVIDIA GeForce RTX 4090", ""},
        LookupCase{"PrefixOnly", "NVIDIA", ""}),
    [](const testing::TestParamInfo<LookupCase>& param_info) { return param_info.param.name; });

TEST(GpuModelCatalogueTest, EveryNameIsUniqueAndFindsItsOwnModel) {
  std::map<std::string, std::string> owner;  // lower-cased name -> model key
  for (const GpuModel& m : AllGpuModels()) {
    std::vector<std::string> names = m.aliases;
    names.push_back(m.name);
    names.push_back(m.product_name);
    for (const std::string& n : names) {
      auto [it, inserted] = owner.emplace(Lower(n), m.name);
      EXPECT_TRUE(inserted || it->second == m.name)
          << "\"" << n << "\" names both " << it->second << " and " << m.name;
      const GpuModel* found = FindGpuModel(n);
      ASSERT_NE(found, nullptr) << n;
      EXPECT_EQ(found, &m) << n;
    }
  }
}

// ---- Whole-GPU facts -------------------------------------------------------------------------

struct ModelCase {
  std::string key;
  std::string product_name;
  std::uint64_t memory_mib;
  int multiprocessors;
  int compute_major;
  int compute_minor;
  int memory_slices;
  int compute_slices;
  std::string family;
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.key; }

class GpuModelFactsTest : public testing::TestWithParam<ModelCase> {};

TEST_P(GpuModelFactsTest, MatchesNvml) {
  const ModelCase& c = GetParam();
  const GpuModel& m = MustFind(c.key);
  EXPECT_EQ(m.name, c.key);
  EXPECT_EQ(m.product_name, c.product_name);
  EXPECT_EQ(m.memory_bytes, c.memory_mib * kMiB);
  EXPECT_EQ(m.multiprocessor_count, c.multiprocessors);
  EXPECT_EQ(m.compute_major, c.compute_major);
  EXPECT_EQ(m.compute_minor, c.compute_minor);
  EXPECT_EQ(m.memory_slices, c.memory_slices);
  EXPECT_EQ(m.compute_slices, c.compute_slices);
  EXPECT_EQ(m.mig_capable(), c.memory_slices > 0);
  EXPECT_EQ(m.mig_profiles.empty(), c.memory_slices == 0);
  EXPECT_EQ(GpuFamilyName(m.compute_major, m.compute_minor), c.family);
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, GpuModelFactsTest,
    testing::Values(
        ModelCase{"A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", 40960, 108, 8, 0, 8, 7, "ampere"},
        ModelCase{"A100-PCIE-40GB", "NVIDIA A100-PCIE-40GB", 40960, 108, 8, 0, 8, 7, "ampere"},
        ModelCase{"A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", 81920, 108, 8, 0, 8, 7, "ampere"},
        ModelCase{"A100-PCIE-80GB", "NVIDIA A100 80GB PCIe", 81920, 108, 8, 0, 8, 7, "ampere"},
        ModelCase{"A30", "NVIDIA A30", 24576, 56, 8, 0, 4, 4, "ampere"},
        ModelCase{"H100-80GB", "NVIDIA H100 80GB HBM3", 81559, 132, 9, 0, 8, 7, "hopper"},
        ModelCase{"H100-PCIE-80GB", "NVIDIA H100 PCIe", 81559, 114, 9, 0, 8, 7, "hopper"},
        ModelCase{"H100-NVL", "NVIDIA H100 NVL", 95830, 132, 9, 0, 8, 7, "hopper"},
        ModelCase{"H100-96GB", "NVIDIA H100 96GB HBM3", 97871, 132, 9, 0, 8, 7, "hopper"},
        ModelCase{"H200-141GB", "NVIDIA H200", 143771, 132, 9, 0, 8, 7, "hopper"},
        ModelCase{"B200", "NVIDIA B200", 183359, 148, 10, 0, 8, 7, "blackwell"},
        ModelCase{"T4", "Tesla T4", 15360, 40, 7, 5, 0, 0, "turing"},
        ModelCase{"V100-SXM2-16GB", "Tesla V100-SXM2-16GB", 16384, 80, 7, 0, 0, 0, "volta"},
        ModelCase{"V100-SXM2-32GB", "Tesla V100-SXM2-32GB", 32768, 80, 7, 0, 0, 0, "volta"},
        ModelCase{"P100-PCIE-16GB", "Tesla P100-PCIE-16GB", 16384, 56, 6, 0, 0, 0, "pascal"},
        ModelCase{"A10", "NVIDIA A10", 23028, 72, 8, 6, 0, 0, "ampere"},
        ModelCase{"L4", "NVIDIA L4", 23034, 58, 8, 9, 0, 0, "ada-lovelace"}),
    [](const testing::TestParamInfo<ModelCase>& param_info) {
      std::string n;
      for (char ch : param_info.param.key)
        n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST(GpuModelCatalogueTest, EveryCatalogueEntryIsCoveredByTheFactsTable) {
  // Adding a model without adding its facts row above should fail here.
  EXPECT_EQ(AllGpuModels().size(), 17U);
}

// ---- MIG placement rules, every profile of every model ---------------------------------------

struct ProfileRule {
  std::string model;
  std::string profile;
  int id;
  int compute_slices;
  int size_slots;
  int max_count;
  std::vector<int> start_slots;
  bool media_extensions;
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const ProfileRule& c, std::ostream* os) { *os << c.model << " " << c.profile; }

std::string RuleName(const ProfileRule& r) {
  std::string n = r.model + "_" + r.profile;
  for (char& ch : n) {
    if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
  }
  return n;
}

// The 8-slice placement facts (nvidia-smi mig -lgipp), written out once per model so that a wrong
// table entry for any model fails.
std::vector<ProfileRule> EightSliceRules(const std::string& model,
                                         const std::vector<std::string>& names) {
  // names: 1g, 1g double memory, 2g, 3g, 4g, 7g
  return {
      {model, names[0], 19, 1, 1, 7, {0, 1, 2, 3, 4, 5, 6}, false},
      {model, names[0] + "+me", 20, 1, 1, 1, {0, 1, 2, 3, 4, 5, 6}, true},
      {model, names[1], 15, 1, 2, 4, {0, 2, 4, 6}, false},
      {model, names[2], 14, 2, 2, 3, {0, 2, 4}, false},
      {model, names[3], 9, 3, 4, 2, {0, 4}, false},
      {model, names[4], 5, 4, 4, 1, {0}, false},
      {model, names[5], 0, 7, 8, 1, {0}, false},
  };
}

std::vector<ProfileRule> AllRules() {
  std::vector<ProfileRule> rules;
  auto add = [&](const std::vector<ProfileRule>& more) {
    rules.insert(rules.end(), more.begin(), more.end());
  };
  const std::vector<std::string> a100_40 = {"1g.5gb",  "1g.10gb", "2g.10gb",
                                            "3g.20gb", "4g.20gb", "7g.40gb"};
  const std::vector<std::string> gb80 = {"1g.10gb", "1g.20gb", "2g.20gb",
                                         "3g.40gb", "4g.40gb", "7g.80gb"};
  add(EightSliceRules("A100-SXM4-40GB", a100_40));
  add(EightSliceRules("A100-PCIE-40GB", a100_40));
  add(EightSliceRules("A100-SXM4-80GB", gb80));
  add(EightSliceRules("A100-PCIE-80GB", gb80));
  add(EightSliceRules("H100-80GB", gb80));
  add(EightSliceRules("H100-PCIE-80GB", gb80));
  add(EightSliceRules("H100-NVL",
                      {"1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"}));
  add(EightSliceRules("H100-96GB",
                      {"1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"}));
  add(EightSliceRules("H200-141GB",
                      {"1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"}));
  add(EightSliceRules("B200", {"1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"}));
  add({
      {"A30", "1g.6gb", 14, 1, 1, 4, {0, 1, 2, 3}, false},
      {"A30", "1g.6gb+me", 21, 1, 1, 1, {0, 1, 2, 3}, true},
      {"A30", "2g.12gb", 5, 2, 2, 2, {0, 2}, false},
      {"A30", "2g.12gb+me", 6, 2, 2, 1, {0, 2}, true},
      {"A30", "4g.24gb", 0, 4, 4, 1, {0}, false},
  });
  return rules;
}

class MigProfileRuleTest : public testing::TestWithParam<ProfileRule> {};

TEST_P(MigProfileRuleTest, PlacementRuleMatchesNvidiaSmi) {
  const ProfileRule& r = GetParam();
  const GpuModel& m = MustFind(r.model);
  const MigProfile* p = m.FindProfile(r.profile);
  ASSERT_NE(p, nullptr) << r.profile << " on " << r.model << "; has " << m.AcceptedProfileNames();
  EXPECT_EQ(p->name, r.profile);
  EXPECT_EQ(p->id, r.id);
  EXPECT_EQ(p->compute_slices, r.compute_slices);
  EXPECT_EQ(p->size_slots, r.size_slots);
  EXPECT_EQ(p->max_count, r.max_count);
  EXPECT_EQ(p->start_slots, r.start_slots);
  EXPECT_EQ(p->media_extensions, r.media_extensions);
  EXPECT_EQ(m.FindProfileById(r.id), p);
  for (int slot = -1; slot <= m.memory_slices; ++slot) {
    const bool listed =
        std::find(r.start_slots.begin(), r.start_slots.end(), slot) != r.start_slots.end();
    EXPECT_EQ(p->CanStartAt(slot), listed) << "slot " << slot;
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, MigProfileRuleTest, testing::ValuesIn(AllRules()),
                         [](const testing::TestParamInfo<ProfileRule>& param_info) {
                           return RuleName(param_info.param);
                         });

TEST(GpuModelCatalogueTest, EveryMigProfileIsCoveredByTheRuleTable) {
  std::set<std::pair<std::string, std::string>> covered;
  for (const ProfileRule& r : AllRules()) covered.emplace(r.model, r.profile);
  for (const GpuModel& m : AllGpuModels()) {
    for (const MigProfile& p : m.mig_profiles) {
      EXPECT_TRUE(covered.count({m.name, p.name}) > 0) << m.name << " " << p.name;
    }
  }
}

// Consistency of every profile's figures, whatever their source.
TEST(GpuModelCatalogueTest, MigProfileFiguresAreConsistent) {
  for (const GpuModel& m : AllGpuModels()) {
    SCOPED_TRACE(m.name);
    std::set<int> ids;
    std::set<std::string> names;
    for (const MigProfile& p : m.mig_profiles) {
      SCOPED_TRACE(p.name);
      EXPECT_TRUE(ids.insert(p.id).second);
      EXPECT_TRUE(names.insert(p.name).second);
      // "<compute>g.<memory>gb[+me]"
      EXPECT_EQ(p.name.substr(0, p.name.find('g')), std::to_string(p.compute_slices));
      EXPECT_EQ(p.media_extensions, p.name.size() > 3 && p.name.substr(p.name.size() - 3) == "+me");
      for (int start : p.start_slots) EXPECT_LE(start + p.size_slots, m.memory_slices);
      EXPECT_LE(p.max_count, static_cast<int>(p.start_slots.size()));
      EXPECT_LE(p.max_count * p.size_slots, m.memory_slices);
      EXPECT_LE(p.max_count * p.compute_slices, m.compute_slices);
      EXPECT_GT(p.memory_bytes, 0U);
      EXPECT_LE(p.memory_bytes, m.memory_bytes);
      EXPECT_GT(p.multiprocessor_count, 0);
      EXPECT_LE(p.multiprocessor_count, m.multiprocessor_count);
      EXPECT_GT(p.copy_engines, 0);
      // Optical flow belongs to "+me" instances or to an instance spanning the whole GPU.
      const bool whole_gpu = p.size_slots == m.memory_slices;
      EXPECT_EQ(p.ofa_engines > 0, p.media_extensions || whole_gpu);
      EXPECT_EQ(p.encoders, 0);
      // Memory grows with memory slices; equal slices give equal memory.
      for (const MigProfile& q : m.mig_profiles) {
        if (q.size_slots > p.size_slots) {
          EXPECT_GT(q.memory_bytes, p.memory_bytes) << q.name;
        } else if (q.size_slots == p.size_slots) {
          EXPECT_EQ(q.memory_bytes, p.memory_bytes) << q.name;
        }
      }
    }
  }
}

// Figures confirmed from GPU Feature Discovery labels and nvidia-smi listings.
struct ConfirmedFigures {
  std::string model;
  std::string profile;
  std::uint64_t memory_mib;
  int multiprocessors;
  int copy, decoder, encoder, jpeg, ofa;
};

// Test names instead of byte dumps in failure messages.
void PrintTo(const ConfirmedFigures& c, std::ostream* os) { *os << c.model << " " << c.profile; }

class MigProfileFiguresTest : public testing::TestWithParam<ConfirmedFigures> {};

TEST_P(MigProfileFiguresTest, MatchesGfdLabels) {
  const ConfirmedFigures& c = GetParam();
  const MigProfile* p = MustFind(c.model).FindProfile(c.profile);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->memory_bytes, c.memory_mib * kMiB);
  EXPECT_EQ(p->multiprocessor_count, c.multiprocessors);
  EXPECT_EQ(p->copy_engines, c.copy);
  EXPECT_EQ(p->decoders, c.decoder);
  EXPECT_EQ(p->encoders, c.encoder);
  EXPECT_EQ(p->jpeg_engines, c.jpeg);
  EXPECT_EQ(p->ofa_engines, c.ofa);
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, MigProfileFiguresTest,
    testing::Values(ConfirmedFigures{"A100-SXM4-40GB", "1g.5gb", 4864, 14, 1, 0, 0, 0, 0},
                    ConfirmedFigures{"A100-SXM4-40GB", "1g.5gb+me", 4864, 14, 1, 1, 0, 1, 1},
                    ConfirmedFigures{"A100-SXM4-40GB", "7g.40gb", 40192, 98, 7, 5, 0, 1, 1},
                    ConfirmedFigures{"A100-PCIE-80GB", "1g.10gb", 9728, 14, 1, 0, 0, 0, 0},
                    ConfirmedFigures{"A100-PCIE-80GB", "2g.20gb", 19968, 28, 2, 1, 0, 0, 0},
                    ConfirmedFigures{"A100-PCIE-80GB", "3g.40gb", 40192, 42, 3, 2, 0, 0, 0},
                    ConfirmedFigures{"H100-80GB", "1g.10gb", 9984, 16, 1, 1, 0, 1, 0},
                    ConfirmedFigures{"H100-80GB", "2g.20gb", 20096, 32, 2, 2, 0, 2, 0},
                    ConfirmedFigures{"H100-NVL", "1g.12gb", 11008, 16, 1, 1, 0, 1, 0},
                    ConfirmedFigures{"H100-NVL", "1g.24gb", 22144, 26, 1, 1, 0, 1, 0},
                    ConfirmedFigures{"H100-NVL", "3g.47gb", 47488, 60, 3, 3, 0, 3, 0},
                    ConfirmedFigures{"H100-NVL", "7g.94gb", 95360, 132, 8, 7, 0, 7, 1},
                    ConfirmedFigures{"H200-141GB", "1g.18gb+me", 16384, 16, 1, 1, 0, 1, 1},
                    ConfirmedFigures{"H200-141GB", "7g.141gb", 143104, 132, 8, 7, 0, 7, 1},
                    ConfirmedFigures{"B200", "2g.45gb", 45312, 36, 4, 2, 0, 2, 0},
                    ConfirmedFigures{"A30", "1g.6gb", 5952, 14, 1, 1, 0, 0, 0},
                    ConfirmedFigures{"A30", "4g.24gb", 24064, 56, 4, 4, 0, 1, 1}),
    [](const testing::TestParamInfo<ConfirmedFigures>& param_info) {
      std::string n = param_info.param.model + "_" + param_info.param.profile;
      for (char& ch : n) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
      }
      return n;
    });

TEST(GpuModelTest, FindProfileIsCaseInsensitiveAndRejectsOtherModelsProfiles) {
  const GpuModel& a100 = MustFind("A100-SXM4-40GB");
  ASSERT_NE(a100.FindProfile("1G.5GB"), nullptr);
  EXPECT_EQ(a100.FindProfile("1G.5GB")->name, "1g.5gb");
  EXPECT_EQ(a100.FindProfile("3g.40gb"), nullptr);  // an 80GB profile
  EXPECT_EQ(a100.FindProfile(""), nullptr);
  EXPECT_EQ(a100.FindProfileById(99), nullptr);
  EXPECT_EQ(a100.AcceptedProfileNames(),
            "1g.5gb, 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb");
  EXPECT_EQ(MustFind("T4").AcceptedProfileNames(), "none (not MIG capable)");
  EXPECT_EQ(MustFind("T4").FindProfile("1g.5gb"), nullptr);
}

}  // namespace
}  // namespace gpuslice
