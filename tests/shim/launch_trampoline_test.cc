// The gated launch entries (src/shim/gated_trampoline.h) of a process that is not arbitrated:
// every launch symbol, called through the shim's export and through cuGetProcAddress, reaches
// the driver (tests/shim/launch_recorder_driver.cc) with each argument — the stack ones
// included — and its result unchanged, on the first call (the C++ wrapper) and on later ones
// (the assembly entry's jump).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "shim/cuda_driver_types.h"

namespace {

using LastFn = int (*)(std::uint64_t*, int*);

struct Loaded {
  void* shim = nullptr;
  LastFn last = nullptr;
};

// Unmanaged process (no limits file) with the recorder as its driver: never arbitrated.
const Loaded& Load() {
  static const Loaded loaded = [] {
    ::unsetenv("GPUSLICE_LIMITS_FILE");
    ::setenv("GPUSLICE_CUDA_DRIVER", GPUSLICE_LAUNCH_RECORDER_PATH, 1);
    Loaded l;
    void* recorder = ::dlopen(GPUSLICE_LAUNCH_RECORDER_PATH, RTLD_NOW | RTLD_LOCAL);
    l.shim = ::dlopen(GPUSLICE_CUDA_SHIM_PATH, RTLD_NOW | RTLD_LOCAL);
    if (recorder != nullptr) {
      l.last = reinterpret_cast<LastFn>(::dlsym(recorder, "gpuslice_recorder_last"));
    }
    return l;
  }();
  return loaded;
}

template <typename Fn>
Fn Export(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(Load().shim, name));
}

// One launch entry: how to call it with the arguments `a` (one distinct word per parameter),
// what the recorder should see.
struct Case {
  const char* name;
  int entry;  // the recorder's number for it
  int arg_count;
  std::uint32_t wide;  // bit i: parameter i is 64 bits wide (a pointer)
  std::function<CUresult(void* fn, const std::vector<std::uint64_t>& a)> call;
};

template <typename T>
T As(std::uint64_t w) {
  if constexpr (sizeof(T) == 8) {
    return reinterpret_cast<T>(w);
  } else {
    return static_cast<T>(w);
  }
}

using Kernel11 = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);
using Kernel10 = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**);
using KernelEx = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);

CUresult Call11(void* fn, const std::vector<std::uint64_t>& a) {
  return reinterpret_cast<Kernel11>(fn)(As<CUfunction>(a[0]), As<unsigned>(a[1]),
                                        As<unsigned>(a[2]), As<unsigned>(a[3]), As<unsigned>(a[4]),
                                        As<unsigned>(a[5]), As<unsigned>(a[6]), As<unsigned>(a[7]),
                                        As<CUstream>(a[8]), As<void**>(a[9]), As<void**>(a[10]));
}
CUresult Call10(void* fn, const std::vector<std::uint64_t>& a) {
  return reinterpret_cast<Kernel10>(fn)(As<CUfunction>(a[0]), As<unsigned>(a[1]),
                                        As<unsigned>(a[2]), As<unsigned>(a[3]), As<unsigned>(a[4]),
                                        As<unsigned>(a[5]), As<unsigned>(a[6]), As<unsigned>(a[7]),
                                        As<CUstream>(a[8]), As<void**>(a[9]));
}
CUresult CallEx(void* fn, const std::vector<std::uint64_t>& a) {
  return reinterpret_cast<KernelEx>(fn)(As<const CUlaunchConfig*>(a[0]), As<CUfunction>(a[1]),
                                        As<void**>(a[2]), As<void**>(a[3]));
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {"cuLaunchKernel", 1, 11, 0x701, Call11},
      {"cuLaunchKernel_ptsz", 2, 11, 0x701, Call11},
      {"cuLaunchKernelEx", 3, 4, 0xF, CallEx},
      {"cuLaunchKernelEx_ptsz", 4, 4, 0xF, CallEx},
      {"cuLaunchCooperativeKernel", 5, 10, 0x301, Call10},
      {"cuLaunchCooperativeKernel_ptsz", 6, 10, 0x301, Call10},
      {"cuLaunch", 7, 1, 0x1,
       [](void* fn, const std::vector<std::uint64_t>& a) {
         return reinterpret_cast<CUresult (*)(CUfunction)>(fn)(As<CUfunction>(a[0]));
       }},
      {"cuLaunchGrid", 8, 3, 0x1,
       [](void* fn, const std::vector<std::uint64_t>& a) {
         return reinterpret_cast<CUresult (*)(CUfunction, int, int)>(fn)(
             As<CUfunction>(a[0]), static_cast<int>(As<unsigned>(a[1])),
             static_cast<int>(As<unsigned>(a[2])));
       }},
      {"cuLaunchGridAsync", 9, 4, 0x9,
       [](void* fn, const std::vector<std::uint64_t>& a) {
         return reinterpret_cast<CUresult (*)(CUfunction, int, int, CUstream)>(fn)(
             As<CUfunction>(a[0]), static_cast<int>(As<unsigned>(a[1])),
             static_cast<int>(As<unsigned>(a[2])), As<CUstream>(a[3]));
       }},
      {"cuLaunchCooperativeKernelMultiDevice", 10, 3, 0x1,
       [](void* fn, const std::vector<std::uint64_t>& a) {
         return reinterpret_cast<CUresult (*)(CUDA_LAUNCH_PARAMS*, unsigned, unsigned)>(fn)(
             As<CUDA_LAUNCH_PARAMS*>(a[0]), As<unsigned>(a[1]), As<unsigned>(a[2]));
       }},
  };
  return cases;
}

// Distinct words for the parameters of `c`: pointers (8 bytes) get a full 64-bit pattern, 32-bit
// parameters a 32-bit one; `round` makes each call's values differ from the last.
std::vector<std::uint64_t> Arguments(const Case& c, int round) {
  std::vector<std::uint64_t> a(static_cast<std::size_t>(c.arg_count));
  for (int i = 0; i < c.arg_count; ++i) {
    const bool wide = (c.wide >> i & 1u) != 0;
    const std::uint64_t v = 0xA5000000u + static_cast<std::uint64_t>(round) * 0x100u +
                            static_cast<std::uint64_t>(c.entry) * 0x10u +
                            static_cast<std::uint64_t>(i);
    a[static_cast<std::size_t>(i)] = wide ? (0x7F5E000000000000ULL | v << 4) : v;
  }
  // cuLaunchKernelEx's wrapper reads the stream from the config: a real one (one per round).
  static CUlaunchConfig configs[8] = {};
  if (c.entry == 3 || c.entry == 4) a[0] = reinterpret_cast<std::uintptr_t>(&configs[round % 8]);
  return a;
}

void ExpectRecorded(const Case& c, const std::vector<std::uint64_t>& a, CUresult result,
                    const std::string& how) {
  SCOPED_TRACE(std::string(c.name) + " " + how);
  EXPECT_EQ(result, 900 + c.entry) << "the driver's result did not come back";
  std::uint64_t seen[11] = {};
  int count = 0;
  ASSERT_EQ(Load().last(seen, &count), c.entry) << "the launch did not reach this entry";
  ASSERT_EQ(count, c.arg_count);
  for (int i = 0; i < c.arg_count; ++i) {
    EXPECT_EQ(seen[i], a[static_cast<std::size_t>(i)]) << "argument " << i + 1;
  }
}

TEST(GatedLaunchTrampoline, NotArbitratedLaunchesReachTheDriverWithEveryArgument) {
  ASSERT_NE(Load().shim, nullptr) << ::dlerror();
  ASSERT_NE(Load().last, nullptr);
  for (const Case& c : Cases()) {
    void* fn = ::dlsym(Load().shim, c.name);
    ASSERT_NE(fn, nullptr) << c.name;
    // The first call goes through the C++ wrapper (it loads the driver and fills the entry's
    // slot); the later ones take the assembly entry's jump.
    for (int round = 0; round < 3; ++round) {
      const std::vector<std::uint64_t> a = Arguments(c, round);
      ExpectRecorded(c, a, c.call(fn, a), "round " + std::to_string(round));
    }
  }
}

TEST(GatedLaunchTrampoline, CuGetProcAddressHandsOutTheGatedEntries) {
  auto get_proc = Export<CUresult (*)(const char*, void**, int, cuuint64_t)>("cuGetProcAddress");
  ASSERT_NE(get_proc, nullptr);
  for (const Case& c : Cases()) {
    if (c.entry != 1 && c.entry != 3 && c.entry != 5) continue;  // the recorder's own table
    void* fn = nullptr;
    ASSERT_EQ(get_proc(c.name, &fn, 12000, 0), CUDA_SUCCESS) << c.name;
    EXPECT_EQ(fn, ::dlsym(Load().shim, c.name)) << c.name << ": not the shim's entry";
    for (int round = 3; round < 5; ++round) {
      const std::vector<std::uint64_t> a = Arguments(c, round);
      ExpectRecorded(c, a, c.call(fn, a), "via cuGetProcAddress");
    }
  }
}

}  // namespace
