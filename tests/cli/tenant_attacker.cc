// What a tenant under `gpuslice run --user` tries against its supervisor: signal it, trace it,
// write its memory. Prints one "name=errno-name" token per attempt ("ok" when it worked) and
// exits 0. Test-only.
//
//   tenant_attacker PID
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

const char* Outcome(int rc) {
  if (rc == 0) return "ok";
  return errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : errno == ESRCH ? "ESRCH" : "other";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tenant_attacker PID\n");
    return 64;
  }
  const pid_t target = static_cast<pid_t>(std::atoi(argv[1]));
  std::printf("stop=%s\n", Outcome(::kill(target, SIGSTOP)));
  std::printf("ptrace=%s\n", Outcome(static_cast<int>(::ptrace(PTRACE_ATTACH, target, 0, 0))));
  const std::string mem = "/proc/" + std::to_string(target) + "/mem";
  const int fd = ::open(mem.c_str(), O_RDWR | O_CLOEXEC);
  std::printf("mem=%s\n", Outcome(fd < 0 ? -1 : 0));
  std::printf("kill=%s\n", Outcome(::kill(target, SIGKILL)));
  std::fflush(stdout);
  return 0;
}
