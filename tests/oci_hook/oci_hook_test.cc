// gpuslice-oci-hook, the binary the runtime runs on the host: linked statically (its ELF program
// headers name no interpreter and no dynamic section, the check made against the dynamically
// linked agent too, so it can fail), and its command line as the CDI spec gives it. The whole
// hook path with an agent is in tests/node_agent/isolation_integration_test.cc.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/resource_names.h"
#include "fake_cgroup_tree.h"

namespace gpuslice {
namespace {

using testing::FakeCgroupTree;

// What a 64-bit ELF file's program headers say about dynamic linking.
struct ElfLinking {
  std::string error;         // "" when the headers were read
  bool interpreter = false;  // PT_INTERP: the kernel starts ld.so first
  bool dynamic = false;      // PT_DYNAMIC: shared libraries or relocations for ld.so
};

ElfLinking ReadElfLinking(const std::string& path) {
  ElfLinking out;
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof(header))) return {"cannot read " + path};
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_phentsize != sizeof(Elf64_Phdr)) {
    return {path + " is not a 64-bit ELF file"};
  }
  for (int i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr program{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff +
                                         static_cast<std::uint64_t>(i) * sizeof(Elf64_Phdr)));
    if (!in.read(reinterpret_cast<char*>(&program), sizeof(program))) {
      return {"truncated program headers in " + path};
    }
    out.interpreter = out.interpreter || program.p_type == PT_INTERP;
    out.dynamic = out.dynamic || program.p_type == PT_DYNAMIC;
  }
  return out;
}

struct LinkingRow {
  const char* name;
  const char* binary;
  bool want_static;
  friend void PrintTo(const LinkingRow& row, std::ostream* os) { *os << row.name; }
};

class OciHookLinkingTest : public ::testing::TestWithParam<LinkingRow> {};

TEST_P(OciHookLinkingTest, ProgramHeaders) {
  if (GetParam().want_static && GPUSLICE_OCI_HOOK_STATIC == 0) {
    GTEST_SKIP() << "sanitizer or fuzzer build: the hook is not linked statically";
  }
  const ElfLinking linking = ReadElfLinking(GetParam().binary);
  ASSERT_EQ(linking.error, "");
  EXPECT_EQ(linking.interpreter, !GetParam().want_static);
  EXPECT_EQ(linking.dynamic, !GetParam().want_static);
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, OciHookLinkingTest,
    ::testing::Values(
        LinkingRow{"StaticHookNeedsNoLoaderNorLibraries", GPUSLICE_OCI_HOOK, true},
        // The control: the agent links gRPC and friends dynamically, and the check sees it.
        LinkingRow{"DynamicAgentHasInterpreterAndDynamicSection", GPUSLICE_NODE_AGENT, false}),
    [](const ::testing::TestParamInfo<LinkingRow>& row) { return std::string(row.param.name); });

struct HookRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` through the shell with `state` on stdin, as the runtime runs a hook.
HookRun RunWithState(const std::string& command, const std::string& state, const std::string& dir) {
  std::ofstream(dir + "/state.json") << state;
  HookRun run;
  FILE* pipe = popen((command + " < '" + dir + "/state.json' 2>&1").c_str(), "r");
  char buf[512];
  while (pipe != nullptr && fgets(buf, sizeof(buf), pipe) != nullptr) run.output += buf;
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

struct CommandRow {
  const char* name;
  const char* words;  // after the binary, before the tree's flags
  bool token;         // the container carries an isolation token
  bool want_success;
  const char* want_output;  // a substring of the output; "" = anything
  friend void PrintTo(const CommandRow& row, std::ostream* os) { *os << row.name; }
};

class OciHookCommandTest : public ::testing::TestWithParam<CommandRow> {};

TEST_P(OciHookCommandTest, RunsAsTheRuntimeRunsIt) {
  FakeCgroupTree tree;
  const CommandRow& row = GetParam();
  tree.AddCgroup("/kubepods/p1/c1", {4242});
  std::vector<std::string> env{"PATH=/bin"};
  if (row.token) env.push_back(std::string(names::kIsolationTokenEnv) + "=tok-1");
  const std::string bundle = tree.AddBundle("c1", env);
  const std::string command = std::string("'") + GPUSLICE_OCI_HOOK + "' " + row.words +
                              " --spool-dir '" + tree.spool() + "' --proc-root '" +
                              tree.proc_root() + "' --cgroup-mount '" + tree.cgroup_mount() +
                              "' --timeout-ms 200";
  const HookRun run = RunWithState(command, FakeCgroupTree::State("c1", 4242, bundle), tree.root());
  EXPECT_EQ(run.exit_code == 0, row.want_success) << run.output;
  EXPECT_NE(run.output.find(row.want_output), std::string::npos) << run.output;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, OciHookCommandTest,
    ::testing::Values(
        // Not shared: the container starts without the agent.
        CommandRow{"OwnFormStartsAContainerWithoutToken", "create-container", false, true, ""},
        // The agent's form (`hook create-container`), so a spec written for --hook-path runs.
        CommandRow{"AgentFormStartsAContainerWithoutToken", "hook create-container", false, true,
                   ""},
        // Shared but no agent answers: the container's creation fails, and says why.
        CommandRow{"TokenWithoutAgentReplyIsRefused", "create-container", true, false,
                   "gpuslice hook:"},
        CommandRow{"UnknownFlagIsAnError", "create-container --no-such-flag", false, false,
                   "--no-such-flag"},
        CommandRow{"MissingSubcommandIsAnError", "", false, false, "create-container"}),
    [](const ::testing::TestParamInfo<CommandRow>& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace gpuslice
