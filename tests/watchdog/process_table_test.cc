#include "watchdog/process_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace gpuslice::watchdog {
namespace {

TEST(ProcessTableTest, CgroupFileParsing) {
  struct Row {
    const char* name;
    const char* text;
    std::optional<std::string> expected;
  };
  const Row rows[] = {
      {"v2", "0::/kubepods/burstable/pod1/abc\n", "/kubepods/burstable/pod1/abc"},
      {"v1 memory controller", "12:cpu,cpuacct:/x\n7:memory:/kubepods/pod2/def\n",
       "/kubepods/pod2/def"},
      {"v2 wins over v1", "7:memory:/v1\n0::/v2\n", "/v2"},
      {"empty", "", std::nullopt},
      {"garbage", "no colons here\n", std::nullopt},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(ProcfsProcessTable::ParseCgroupFile(row.text), row.expected);
  }
}

TEST(ProcessTableTest, StatParentParsing) {
  EXPECT_EQ(ProcfsProcessTable::ParseStatParent("42 (a b) c) S 7 42 42 0"), 7);
  EXPECT_EQ(ProcfsProcessTable::ParseStatParent("42 (x) R"), std::nullopt);
  EXPECT_EQ(ProcfsProcessTable::ParseStatParent("garbage"), std::nullopt);
}

TEST(ProcessTableTest, ReadsTheRealProcFilesystem) {
  ProcfsProcessTable table;
  EXPECT_EQ(table.ParentOf(::getpid()), ::getppid());
  EXPECT_TRUE(table.CgroupOf(::getpid()).has_value());
  EXPECT_EQ(table.ParentOf(-5), std::nullopt);
}

}  // namespace
}  // namespace gpuslice::watchdog
