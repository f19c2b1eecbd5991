// Compute-share scenarios on a real GPU (run.sh runs them under `gpuslice run --compute N`):
//   loop <seconds> <kernel_us> [idle_from_s idle_to_s]
//       launches busy-wait kernels of <kernel_us> each, 4 in flight, for <seconds>; prints the
//       completed iterations, the GPU time they represent, and completions per 10 ms window
//       (for reclaim latency when an idle window is given: no launches in [from, to)).
//   graph <seconds>
//       captures 10 kernels of 200 us into a CUDA graph and replays it for <seconds>.
//   gemm <seconds> <n>
//       a hand-written tiled SGEMM of n x n matrices (n a multiple of 16), 4 in flight, for
//       <seconds>; prints the completed iterations and completions per 10 ms window. Its rate
//       against the same program alone is its share of the GPU's time.
// A kernel's duration is fixed by clock64(), so completed iterations x kernel time is the GPU
// time a process got, whatever else shares the GPU.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

__global__ void Spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// C = A x B for n x n row-major matrices, 16 x 16 tiles through shared memory.
__global__ void Gemm(const float* a, const float* b, float* c, int n) {
  __shared__ float tile_a[16][16];
  __shared__ float tile_b[16][16];
  const int row = blockIdx.y * 16 + threadIdx.y;
  const int col = blockIdx.x * 16 + threadIdx.x;
  float sum = 0;
  for (int t = 0; t < n; t += 16) {
    tile_a[threadIdx.y][threadIdx.x] = a[row * n + t + threadIdx.x];
    tile_b[threadIdx.y][threadIdx.x] = b[(t + threadIdx.y) * n + col];
    __syncthreads();
    for (int k = 0; k < 16; ++k) sum += tile_a[threadIdx.y][k] * tile_b[k][threadIdx.x];
    __syncthreads();
  }
  c[row * n + col] = sum;
}

namespace {

using Clock = std::chrono::steady_clock;

long long CyclesFor(double us) {
  int khz = 0;
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
  return static_cast<long long>(us * khz / 1000.0);
}

int Loop(double seconds, double kernel_us, double idle_from, double idle_to) {
  const long long cycles = CyclesFor(kernel_us);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  constexpr int kInFlight = 4;
  cudaEvent_t done[kInFlight];
  for (cudaEvent_t& e : done) cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  const auto start = Clock::now();
  std::vector<long> per_window(static_cast<std::size_t>(seconds * 100) + 1, 0);
  long completed = 0;
  int slot = 0;
  bool pending[kInFlight] = {};
  for (;;) {
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (t >= seconds) break;
    if (pending[slot]) {
      cudaEventSynchronize(done[slot]);
      pending[slot] = false;
      ++completed;
      per_window[static_cast<std::size_t>(t * 100)]++;
    }
    if (t >= idle_from && t < idle_to) {
      slot = (slot + 1) % kInFlight;
      continue;
    }
    Spin<<<1, 1, 0, stream>>>(cycles);
    cudaEventRecord(done[slot], stream);
    pending[slot] = true;
    slot = (slot + 1) % kInFlight;
  }
  cudaStreamSynchronize(stream);
  const cudaError_t error = cudaGetLastError();
  std::printf("%s loop\niterations=%ld\ngpu_ms=%.1f\nwindows=",
              error == cudaSuccess ? "PASS" : "FAIL", completed, completed * kernel_us / 1000.0);
  for (long w : per_window) std::printf("%ld,", w);
  std::printf("\n");
  return error == cudaSuccess ? 0 : 1;
}

int Graph(double seconds) {
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  const long long cycles = CyclesFor(200);
  cudaGraph_t graph;
  cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
  for (int i = 0; i < 10; ++i) Spin<<<1, 1, 0, stream>>>(cycles);
  if (cudaStreamEndCapture(stream, &graph) != cudaSuccess) {
    std::printf("FAIL capture\n");
    return 1;
  }
  cudaGraphExec_t exec;
  if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    std::printf("FAIL instantiate\n");
    return 1;
  }
  const auto start = Clock::now();
  long replays = 0;
  while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    cudaGraphLaunch(exec, stream);
    cudaStreamSynchronize(stream);
    ++replays;
  }
  const cudaError_t error = cudaGetLastError();
  std::printf("%s graph\nreplays=%ld\ngpu_ms=%.1f\n", error == cudaSuccess ? "PASS" : "FAIL",
              replays, replays * 10 * 0.2);
  return error == cudaSuccess ? 0 : 1;
}

int GemmLoop(double seconds, int n) {
  if (n < 16 || n % 16 != 0) {
    std::printf("FAIL gemm size %d (a multiple of 16 expected)\n", n);
    return 64;
  }
  const std::size_t bytes = static_cast<std::size_t>(n) * n * sizeof(float);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
      cudaMalloc(&c, bytes) != cudaSuccess) {
    std::printf("FAIL gemm allocation\n");
    return 1;
  }
  cudaMemset(a, 0, bytes);
  cudaMemset(b, 0, bytes);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  constexpr int kInFlight = 4;
  cudaEvent_t done[kInFlight];
  for (cudaEvent_t& e : done) cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  const dim3 grid(n / 16, n / 16), block(16, 16);
  std::vector<long> per_window(static_cast<std::size_t>(seconds * 100) + 1, 0);
  long completed = 0;
  int slot = 0;
  bool pending[kInFlight] = {};
  const auto start = Clock::now();
  for (;;) {
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (t >= seconds) break;
    if (pending[slot]) {
      cudaEventSynchronize(done[slot]);
      pending[slot] = false;
      ++completed;
      per_window[static_cast<std::size_t>(t * 100)]++;
    }
    Gemm<<<grid, block, 0, stream>>>(a, b, c, n);
    cudaEventRecord(done[slot], stream);
    pending[slot] = true;
    slot = (slot + 1) % kInFlight;
  }
  cudaStreamSynchronize(stream);
  const cudaError_t error = cudaGetLastError();
  std::printf("%s gemm\niterations=%ld\nwindows=", error == cudaSuccess ? "PASS" : "FAIL",
              completed);
  for (long w : per_window) std::printf("%ld,", w);
  std::printf("\n");
  return error == cudaSuccess ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (cudaFree(nullptr) != cudaSuccess) {
    std::printf("FAIL cuda init\n");
    return 100;
  }
  if (argc >= 4 && std::strcmp(argv[1], "loop") == 0) {
    const double idle_from = argc >= 6 ? std::atof(argv[4]) : 1e30;
    const double idle_to = argc >= 6 ? std::atof(argv[5]) : 1e30;
    return Loop(std::atof(argv[2]), std::atof(argv[3]), idle_from, idle_to);
  }
  if (argc >= 3 && std::strcmp(argv[1], "graph") == 0) return Graph(std::atof(argv[2]));
  if (argc >= 4 && std::strcmp(argv[1], "gemm") == 0) {
    return GemmLoop(std::atof(argv[2]), std::atoi(argv[3]));
  }
  std::fprintf(stderr,
               "usage: compute_share loop <s> <kernel_us> [idle_from idle_to] | graph <s> | "
               "gemm <s> <n>\n");
  return 64;
}
