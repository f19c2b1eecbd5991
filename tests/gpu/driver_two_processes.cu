// Two processes of one `gpuslice run` share its limit: the child holds 3/4 of it, the parent is
// refused another 3/4, fits 1/8, and gets the 3/4 once the child has exited (or been killed).
#include <cuda.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "gpu_check.h"

int main(int argc, char** argv) {
  const bool kill_child = argc > 1 && argv[1][0] == 'k';
  const unsigned long long limit = ExpectedLimit();
  int ready[2], done[2];
  if (pipe(ready) != 0 || pipe(done) != 0) return 100;
  const pid_t child = fork();  // before any CUDA call: CUDA is not fork-safe
  if (child == 0) {
    SetUpPrimaryContext();
    CUdeviceptr p;
    const CUresult r = cuMemAlloc(&p, limit / 4 * 3);
    const char c = r == CUDA_SUCCESS ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) return 1;
    char wait_for;
    if (read(done[0], &wait_for, 1) < 0) return 1;
    return 0;
  }
  char c = 0;
  if (read(ready[0], &c, 1) != 1) return 100;
  Check(c == 'y', "the first process gets 3/4 of the limit");
  SetUpPrimaryContext();
  CUdeviceptr p;
  Check(cuMemAlloc(&p, limit / 4 * 3) == CUDA_ERROR_OUT_OF_MEMORY,
        "the second process is refused another 3/4");
  CUdeviceptr small;
  Check(cuMemAlloc(&small, limit / 8) == CUDA_SUCCESS, "the second process fits 1/8");
  cuMemFree(small);
  if (kill_child) {
    kill(child, SIGKILL);
  } else {
    const char go = 'x';
    if (write(done[1], &go, 1) != 1) return 100;
  }
  int status = 0;
  waitpid(child, &status, 0);
  Check(cuMemAlloc(&p, limit / 4 * 3) == CUDA_SUCCESS,
        kill_child ? "after SIGKILL the memory is reclaimed" : "after exit the memory is back");
  std::printf("failures=%d\n", g_failures);
  return g_failures;
}
