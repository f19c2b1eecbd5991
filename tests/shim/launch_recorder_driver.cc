// A stand-in libcuda for the gated-trampoline test: each launch entry point records which entry
// was called and every argument it received (as 64-bit words), and returns a result that names
// the entry, so a test can check that a launch through the shim reached the driver with its
// arguments (stack arguments included) and its result intact.
#include <cstdint>
#include <cstring>

#include "shim/cuda_driver_types.h"

namespace {

struct Record {
  int entry = 0;  // RecorderEntry below; 0: nothing recorded
  int arg_count = 0;
  std::uint64_t args[11] = {};
};

thread_local Record g_last;

template <typename T>
std::uint64_t Word(T v) {
  if constexpr (sizeof(T) == 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, &v, 8);
    return w;
  } else {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(v));
  }
}

template <typename... T>
CUresult Remember(int entry, T... args) {
  g_last = Record{};
  g_last.entry = entry;
  g_last.arg_count = static_cast<int>(sizeof...(T));
  int i = 0;
  ((g_last.args[i++] = Word(args)), ...);
  return static_cast<CUresult>(900 + entry);  // the entry's own result, passed back as is
}

}  // namespace

#define RECORDER_EXPORT extern "C" __attribute__((visibility("default")))

// The last launch this thread made: its entry (1-10, 0 when none), argument count and words.
RECORDER_EXPORT int gpuslice_recorder_last(std::uint64_t* args, int* arg_count) {
  std::memcpy(args, g_last.args, sizeof(g_last.args));
  *arg_count = g_last.arg_count;
  return g_last.entry;
}

RECORDER_EXPORT CUresult cuInit(unsigned int) { return CUDA_SUCCESS; }

RECORDER_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int a, unsigned int b,
                                        unsigned int c, unsigned int d, unsigned int e,
                                        unsigned int g, unsigned int h, CUstream s, void** p,
                                        void** x) {
  return Remember(1, f, a, b, c, d, e, g, h, s, p, x);
}
RECORDER_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int a, unsigned int b,
                                             unsigned int c, unsigned int d, unsigned int e,
                                             unsigned int g, unsigned int h, CUstream s, void** p,
                                             void** x) {
  return Remember(2, f, a, b, c, d, e, g, h, s, p, x);
}
RECORDER_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig* c, CUfunction f, void** p,
                                          void** x) {
  return Remember(3, c, f, p, x);
}
RECORDER_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* c, CUfunction f, void** p,
                                               void** x) {
  return Remember(4, c, f, p, x);
}
RECORDER_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int a, unsigned int b,
                                                   unsigned int c, unsigned int d, unsigned int e,
                                                   unsigned int g, unsigned int h, CUstream s,
                                                   void** p) {
  return Remember(5, f, a, b, c, d, e, g, h, s, p);
}
RECORDER_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int a,
                                                        unsigned int b, unsigned int c,
                                                        unsigned int d, unsigned int e,
                                                        unsigned int g, unsigned int h, CUstream s,
                                                        void** p) {
  return Remember(6, f, a, b, c, d, e, g, h, s, p);
}
RECORDER_EXPORT CUresult cuLaunch(CUfunction f) { return Remember(7, f); }
RECORDER_EXPORT CUresult cuLaunchGrid(CUfunction f, int w, int h) { return Remember(8, f, w, h); }
RECORDER_EXPORT CUresult cuLaunchGridAsync(CUfunction f, int w, int h, CUstream s) {
  return Remember(9, f, w, h, s);
}
RECORDER_EXPORT CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS* p, unsigned int n,
                                                              unsigned int fl) {
  return Remember(10, p, n, fl);
}

// cuGetProcAddress as the real driver: the exported function of that name (any version).
RECORDER_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int, cuuint64_t) {
  struct Named {
    const char* name;
    void* fn;
  };
  static const Named kNamed[] = {
      {"cuLaunchKernel", reinterpret_cast<void*>(&cuLaunchKernel)},
      {"cuLaunchKernelEx", reinterpret_cast<void*>(&cuLaunchKernelEx)},
      {"cuLaunchCooperativeKernel", reinterpret_cast<void*>(&cuLaunchCooperativeKernel)},
  };
  for (const Named& n : kNamed) {
    if (std::strcmp(n.name, symbol) == 0) {
      *pfn = n.fn;
      return CUDA_SUCCESS;
    }
  }
  *pfn = nullptr;
  return CUDA_ERROR_NOT_FOUND;
}
