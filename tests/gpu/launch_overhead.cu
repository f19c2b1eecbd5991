// Launch-bound loop: N empty kernels through the CUDA runtime (which reaches the driver by
// dlopen + cuGetProcAddress, so under the shim every launch passes its wrapper). Prints the mean
// time per launch; run.sh runs it with and without the shim and reports the ratio.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

__global__ void Empty() {}

int main(int argc, char** argv) {
  const int launches = argc > 1 ? std::atoi(argv[1]) : 200000;
  if (cudaFree(nullptr) != cudaSuccess) {
    std::printf("FAIL cuda init\n");
    return 100;
  }
  for (int i = 0; i < 1000; ++i) Empty<<<1, 1>>>();
  cudaDeviceSynchronize();
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < launches; ++i) Empty<<<1, 1>>>();
    cudaDeviceSynchronize();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (ns / launches < best) best = ns / launches;
  }
  const cudaError_t error = cudaGetLastError();
  std::printf("%s launches\nlaunch_ns=%.1f\n", error == cudaSuccess ? "PASS" : "FAIL", best);
  return error == cudaSuccess ? 0 : 1;
}
