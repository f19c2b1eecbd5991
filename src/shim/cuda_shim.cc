// libgpuslice-cuda.so: the CUDA driver API as the container sees it. SONAME libcuda.so.1, so a
// process that has it loaded (LD_PRELOAD or /etc/ld.so.preload) resolves direct links and
// dlopen("libcuda.so.1") to it; it loads the real driver by absolute path and forwards every
// symbol it does not intercept. See docs/shim.md.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "shim/accounting_region.h"
#include "shim/allocation_table.h"
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"
#include "shim/forwarding_trampoline.h"
#include "shim/gated_trampoline.h"
#include "shim/launch_gate.h"
#include "shim/limits_loader.h"
#include "shim/shim_config.h"

// ---- Generated from cuda_entry_points.def --------------------------------------------------

// The exported wrappers' prototypes: a definition below that disagrees with the list fails to
// compile.
extern "C" {
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params) \
  __attribute__((visibility("default"))) CUresult name params noexcept;
#define GPUSLICE_CUDA_FORWARD(name)
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD

// Returned by forwarded symbols the real driver does not have.
__attribute__((visibility("hidden"))) CUresult gpuslice_cuda_missing_symbol() {
  return CUDA_ERROR_NOT_SUPPORTED;
}

// Loads the real driver and fills every pointer below (once; later calls return at once).
__attribute__((visibility("hidden"))) void gpuslice_cuda_load_driver() noexcept;

// One pointer per forwarded symbol, and its trampoline. Before the driver is loaded the pointer
// leads to a lazy stub (x86-64) or to the missing-symbol stub (loaded in the constructor).
#if GPUSLICE_HAS_LAZY_LOADING
GPUSLICE_LAZY_COMMON(gpuslice_cuda_lazy_common, gpuslice_cuda_load_driver)
#define GPUSLICE_CUDA_FORWARD(name)                                       \
  __attribute__((visibility("hidden"))) void gpuslice_cuda_lazy_##name(); \
  GPUSLICE_LAZY_STUB(gpuslice_cuda_lazy_##name, gpuslice_cuda_fwd_##name, \
                     gpuslice_cuda_lazy_common)                           \
  __attribute__((visibility("hidden"))) void* gpuslice_cuda_fwd_##name =  \
      reinterpret_cast<void*>(&gpuslice_cuda_lazy_##name);                \
  GPUSLICE_FORWARDING_TRAMPOLINE(name, gpuslice_cuda_fwd_##name)
#else
#define GPUSLICE_CUDA_FORWARD(name)                                      \
  __attribute__((visibility("hidden"))) void* gpuslice_cuda_fwd_##name = \
      reinterpret_cast<void*>(&gpuslice_cuda_missing_symbol);            \
  GPUSLICE_FORWARDING_TRAMPOLINE(name, gpuslice_cuda_fwd_##name)
#endif
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params)
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD
}  // extern "C"

namespace gpuslice::shim {
namespace {

// The real driver's implementations of the intercepted symbols (null when it lacks one).
struct RealDriver {
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params) CUresult(*name) params = nullptr;
#define GPUSLICE_CUDA_FORWARD(name)
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD
  // Forwarded symbols the shim itself calls.
  CUresult (*cuCtxGetDevice)(CUdevice*) = nullptr;
  CUresult (*cuCtxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGetUuid)(CUuuid*, CUdevice) = nullptr;
  CUresult (*cuMemGetAddressRange_v2)(CUdeviceptr*, size_t*, CUdeviceptr) = nullptr;
  CUresult (*cuStreamIsCapturing)(CUstream, CUstreamCaptureStatus*) = nullptr;
  CUresult (*cuThreadExchangeStreamCaptureMode)(CUstreamCaptureMode*) = nullptr;
  // The device of a multi-device launch's streams.
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext*) = nullptr;
  CUresult (*cuCtxPushCurrent_v2)(CUcontext) = nullptr;
  CUresult (*cuCtxPopCurrent_v2)(CUcontext*) = nullptr;
};

// cuGetProcAddress substitution: an intercepted symbol's real pointer -> its wrapper.
struct ProcEntry {
  const char* name;
  const char* family;
  int since_version;
  bool per_thread;
  void* wrapper;
  void* real;
};

constexpr bool EndsWithPtsz(const char* name) {
  std::size_t n = 0;
  while (name[n] != '\0') ++n;
  return n > 5 && name[n - 5] == '_' && name[n - 4] == 'p' && name[n - 3] == 't' &&
         name[n - 2] == 's' && name[n - 1] == 'z';
}

ProcEntry g_proc_entries[] = {
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params) \
  {#name, #family, since, EndsWithPtsz(#name), reinterpret_cast<void*>(&::name), nullptr},
#define GPUSLICE_CUDA_FORWARD(name)
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD
};

constexpr int kMaxCudaDevices = 64;
constexpr int kUnlisted = -1;

struct ContextInfo {
  std::uint32_t entry;
  std::uint64_t overhead_bytes;
};

// A memory pool as CUDA documents it: freed memory stays reserved by the pool (and reusable by
// its later allocations) until a synchronisation releases what exceeds the release threshold;
// a stream-ordered free completes when the stream reaches it. The shim keeps reserved memory
// counted: `cached` (completed frees) until a sync or cuMemPoolTrimTo gives it back, `pending`
// (frees per stream) until that stream or the context is synchronised.
struct PoolState {
  bool counted = true;  // false: a pinned pool of host memory
  int device = -1;      // CUDA ordinal of its memory; -1: unknown (then the current device)
  bool entry_known = false;
  std::uint32_t entry = 0;  // limits entry its reserve is charged to
  std::uint64_t threshold = 0;
  std::uint64_t in_use = 0;
  std::uint64_t cached = 0;
  std::unordered_map<const void*, std::uint64_t> pending;  // stream -> bytes
};

// A VMM physical allocation seen through one handle value of this process. Alive (and counted)
// while the handle, a retain of it or a mapping of it holds a reference (cuMemRelease docs).
struct VmmRecord {
  std::uint32_t entry = 0;
  std::uint64_t bytes = 0;
  std::uint32_t refs = 0;
  bool charged = false;   // imported handles are charged at their first mapping
  bool exported = false;  // shared with other processes: stays charged until this one exits
};

struct GraphCharge {
  std::uint32_t entry;
  std::uint64_t bytes;
};
struct GraphExecCharge {
  std::vector<GraphCharge> charges;
  bool charged = false;  // graph memory is taken at the first launch, kept until destroyed
};

// The compute arbiter as this process uses it: one GpuArbiter per arbitrated GPU of the container
// (each GPU has its own referee, grant page and request file).
constexpr std::size_t kMaxTurnStreams = 8;
struct GpuArbiter {
  std::uint32_t index = 0;  // in ArbiterState::gpus ("joined" word index)
  std::uint32_t entry = 0;  // the limits entry of its GPU
  // Its grant page's identity (st_dev, st_ino): the same in every container on the GPU (a bind
  // mount keeps both), so every process takes the tokens of a multi-device launch in one order.
  std::uint64_t order_dev = 0;
  std::uint64_t order_ino = 0;
  char path[kMaxLimitsPath] = {};           // the GPU's grant page (read-only)
  char requests_path[kMaxLimitsPath] = {};  // the container's request file for that GPU
  ArbiterRegion region;
  std::mutex mutex;  // the slow path, one thread at a time
  TenantGate* gate = nullptr;
  std::uint32_t process = kNoTenant;  // this process's record in the request file
  pid_t pid = 0;                      // the process `gate` belongs to (a forked child joins anew)
  // The process that opened the request file's descriptor. Record locks belong to the open file
  // description, which a forked child shares with its parent (and its siblings): a child takes
  // its record through a descriptor of its own, or two children would lock the same record.
  pid_t descriptor_pid = 0;
  bool complained_full = false;
  // Streams launched on since the turn began: drained at its end (more: the whole context).
  CUstream streams[kMaxTurnStreams] = {};
  std::size_t stream_count = 0;
  bool streams_overflow = false;
  // The holder's fast path (launch_gate.h): the budget last granted, not yet counted in `gate`.
  std::uint64_t fast_granted = 0;
  // Its fast-path state: the process-wide g_launch_gate when this is the process's only
  // arbitrated GPU (the assembly entries read it), otherwise `own_fast`, which AdmitLaunchSlow
  // reads after asking the driver for the current context's device.
  LaunchGateFastPath* fast = &g_launch_gate;
  LaunchGateFastPath own_fast;
};
struct ArbiterState {
  bool configured = false;
  ArbiterParams params;
  GpuArbiter gpus[kMaxLimitedDevices];
  std::uint32_t count = 0;                      // arbitrated GPUs
  int of_entry[kMaxLimitedDevices] = {};        // limits entry -> index in gpus, -1: none
  volatile std::uint32_t* fork_page = nullptr;  // wipe-on-fork: [0] holding, [1 + i] joined
};

// Everything the shim knows. Created once at load and never destroyed, so calls made while
// the process exits still find it.
struct ShimState {
  RealDriver real;
  void* driver_handle = nullptr;

  bool enforcing = false;  // a limits file applies to this process
  bool broken = false;     // ... but it or the region is unusable: fail closed
  ContainerLimits limits;
  std::uint64_t limit_bytes[kMaxLimitedDevices] = {};  // min(file, environment)
  std::uint64_t refuse_above_bytes[kMaxLimitedDevices] = {};  // UINT64_MAX: the driver enforces
  AccountingRegion region;
  std::atomic<int> slot{-1};
  std::mutex slot_mutex;
  // The process that claimed `slot`. A child made by any kind of fork (fork(), the raw syscall,
  // clone without CLONE_VM) sees `fork_token` as 0 (MADV_WIPEONFORK page), so it never spends
  // or frees its parent's slot; where that page is unavailable, getpid() is compared instead.
  pid_t owner_pid = 0;
  volatile std::uint32_t* fork_token = nullptr;

  // CUDA ordinal -> limits entry (kUnlisted when the file does not list that GPU).
  int device_entry[kMaxCudaDevices] = {};
  std::atomic<bool> devices_resolved{false};
  std::mutex resolve_mutex;

  AllocationTable allocations;

  std::mutex context_mutex;
  int primary_refs[kMaxCudaDevices] = {};
  std::uint64_t primary_overhead[kMaxCudaDevices] = {};
  CUcontext primary_context[kMaxCudaDevices] = {};
  std::unordered_map<const void*, ContextInfo> contexts;

  std::mutex pool_mutex;
  std::unordered_map<const void*, PoolState> pools;
  std::atomic<bool> pools_hold_memory{false};  // a sync may have something to give back

  std::mutex vmm_mutex;
  std::unordered_map<std::uint64_t, VmmRecord> vmm;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>>
      vmm_mappings;  // va -> size, handle

  std::mutex graph_mutex;
  std::unordered_map<const void*, std::vector<GraphCharge>> graph_allocations;
  std::unordered_map<const void*, GraphExecCharge> graph_execs;
  std::atomic<bool> graphs_allocate{false};  // any graph has an allocation node

  ArbiterState arbiter;
};

ShimState* g_state = nullptr;

// ---- Loading --------------------------------------------------------------------------------

void Complain(const char* what, const char* detail) { ShimComplain(what, detail); }

void LoadLimits(ShimState& s) {
  LoadedLimits loaded;
  LoadLimitsForProcess(&loaded);
  s.enforcing = loaded.enforcing;
  s.broken = loaded.broken;
  s.limits = loaded.limits;
  for (std::size_t i = 0; i < kMaxLimitedDevices; ++i) {
    s.limit_bytes[i] = loaded.limit_bytes[i];
    s.refuse_above_bytes[i] = loaded.refuse_above_bytes[i];
  }
  if (s.enforcing && !s.broken) {
    if (const int rc = s.region.Open(s.limits.region_path); rc != 0) {
      Complain("cannot open the accounting region; GPU memory allocations will fail",
               std::strerror(rc));
      s.broken = true;
    }
  }
}

bool LoadDriver(ShimState& s) {
  const char* candidates[4] = {nullptr, kDefaultCudaDriverPaths[0], kDefaultCudaDriverPaths[1],
                               kDefaultCudaDriverPaths[2]};
  if (s.enforcing && s.limits.cuda_driver_path[0] != '\0') {
    candidates[0] = s.limits.cuda_driver_path;
  } else if (!s.enforcing) {
    // Unmanaged process (no limits file): honour an explicit driver location.
    candidates[0] = std::getenv("GPUSLICE_CUDA_DRIVER");
  }
  for (const char* path : candidates) {
    if (path == nullptr || path[0] != '/') continue;
    // RTLD_DEEPBIND: the driver's calls to its own exported functions stay inside it.
    void* handle = ::dlopen(path, RTLD_NOW | RTLD_LOCAL | kDeepBind);
    if (handle == nullptr) continue;
    if (::dlsym(handle, "cuInit") == reinterpret_cast<void*>(&::cuInit)) {
      ::dlclose(handle);  // that path is this shim itself
      continue;
    }
    s.driver_handle = handle;
    return true;
  }
  // Only a managed process says so: an unmanaged one without a driver is not our business.
  if (s.enforcing) {
    Complain("cannot load the real CUDA driver", candidates[0] != nullptr ? candidates[0] : "");
  }
  return false;
}

template <typename Fn>
void Resolve(void* handle, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(::dlsym(handle, name));
}

// Points every forwarded symbol at the real driver's function, or at the missing-symbol stub
// when there is no driver or it lacks the symbol — never back at its lazy stub.
void BindForwards(void* h) {
  void* const missing = reinterpret_cast<void*>(&gpuslice_cuda_missing_symbol);
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params)
#define GPUSLICE_CUDA_FORWARD(name)                                                            \
  {                                                                                            \
    void* p = h != nullptr ? ::dlsym(h, #name) : nullptr;                                      \
    __atomic_store_n(&gpuslice_cuda_fwd_##name, p != nullptr ? p : missing, __ATOMIC_RELEASE); \
  }
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD
}

// Fills the pointer tables from `s.driver_handle` (which may be null).
void BindDriver(ShimState& s) {
  void* h = s.driver_handle;
  BindForwards(h);
  if (h == nullptr) return;
#define GPUSLICE_CUDA_INTERCEPT(name, family, since, params) Resolve(h, #name, &s.real.name);
#define GPUSLICE_CUDA_FORWARD(name)
#include "shim/cuda_entry_points.def"
#undef GPUSLICE_CUDA_INTERCEPT
#undef GPUSLICE_CUDA_FORWARD
  Resolve(h, "cuCtxGetDevice", &s.real.cuCtxGetDevice);
  Resolve(h, "cuCtxGetCurrent", &s.real.cuCtxGetCurrent);
  Resolve(h, "cuDeviceGetCount", &s.real.cuDeviceGetCount);
  Resolve(h, "cuDeviceGetUuid", &s.real.cuDeviceGetUuid);
  Resolve(h, "cuMemGetAddressRange_v2", &s.real.cuMemGetAddressRange_v2);
  Resolve(h, "cuStreamIsCapturing", &s.real.cuStreamIsCapturing);
  Resolve(h, "cuThreadExchangeStreamCaptureMode", &s.real.cuThreadExchangeStreamCaptureMode);
  Resolve(h, "cuStreamGetCtx", &s.real.cuStreamGetCtx);
  Resolve(h, "cuCtxPushCurrent_v2", &s.real.cuCtxPushCurrent_v2);
  Resolve(h, "cuCtxPopCurrent_v2", &s.real.cuCtxPopCurrent_v2);
  for (ProcEntry& e : g_proc_entries) e.real = ::dlsym(h, e.name);
}

// A page that reads as zero in any forked child (Linux 4.14+); null when unavailable.
volatile std::uint32_t* NewForkToken() {
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return nullptr;
  if (::madvise(page, 4096, MADV_WIPEONFORK) != 0) {
    ::munmap(page, 4096);
    return nullptr;
  }
  return static_cast<volatile std::uint32_t*>(page);
}

// True when this process is the one that claimed the slot (not a forked child).
bool OwnsSlot(const ShimState& s) {
  if (s.fork_token != nullptr) return *s.fork_token != 0;
  return ::getpid() == s.owner_pid;
}

// Claims a slot for this process; a forked child first drops the descriptor (and with it the
// share of the parent's slot lock) it inherited.
void ClaimSlot(ShimState& s) {
  std::lock_guard<std::mutex> lock(s.slot_mutex);
  if (s.slot.load(std::memory_order_relaxed) >= 0 && OwnsSlot(s)) return;
  if (s.owner_pid != 0 && s.region.ReopenDescriptor() != 0) {
    s.slot.store(-1, std::memory_order_release);
    return;
  }
  s.slot.store(s.region.ClaimSlot(CurrentProcessIdentity()), std::memory_order_release);
  s.owner_pid = ::getpid();
  if (s.fork_token != nullptr) *s.fork_token = 1;
}

void AfterForkInChild() {
  // A plain fork(): let go of the parent's slot lock now, so a child that never uses CUDA does
  // not keep the parent's slot alive. (Raw fork syscalls skip this; Slot() catches them.)
  if (g_state != nullptr && g_state->enforcing) g_state->region.DropInheritedDescriptor();
}

std::atomic<bool> g_driver_loaded{false};
pthread_once_t g_driver_once = PTHREAD_ONCE_INIT;

void LoadDriverOnce() {
  ShimState* s = g_state;
  if (s == nullptr) {
    BindForwards(nullptr);
  } else {
    LoadDriver(*s);
    BindDriver(*s);
  }
  g_driver_loaded.store(true, std::memory_order_release);
}

// The state, with the real driver loaded: the first call of any wrapper loads it.
inline ShimState* LoadedState() noexcept {
  if (!g_driver_loaded.load(std::memory_order_acquire)) gpuslice_cuda_load_driver();
  return g_state;
}

// ---- Compute arbiter ------------------------------------------------------------------------

volatile std::uint32_t g_never_holding[2] = {};  // the fast path's flag when it is off

bool EntryOf(ShimState& s, CUdevice device, std::uint32_t* entry);

// The holder's flag of `g`'s launch fast path (launch_gate.h). With one arbitrated GPU it is the
// process-wide gate's (the assembly entries test it); with more, each GPU has its own, tested in
// AdmitLaunchSlow once the driver has said which GPU the launch is for.
void SetHolding(GpuArbiter& g, bool holding) {
  if (g.fast->holding != g_never_holding) *g.fast->holding = holding ? 1 : 0;
}

// Maps each GPU's arbiter when the limits file names one. One that cannot be opened leaves that
// GPU's launches unarbitrated (the hardware's equal turns) with a complaint: a grant page is
// shared by every container on the GPU, so failing launches would let one tenant that corrupts
// it stop all the others.
void SetUpArbiter(ShimState& s) {
  ArbiterState& a = s.arbiter;
  for (int& e : a.of_entry) e = -1;
  for (std::uint32_t i = 0; i < s.limits.device_count; ++i) {
    const DeviceLimit& d = s.limits.devices[i];
    if (d.arbiter_path[0] == '\0') continue;
    if (d.requests_path[0] == '\0') {
      Complain("compute-arbiter without compute-requests; launches on that GPU are not arbitrated",
               d.arbiter_path);
      continue;
    }
    GpuArbiter& g = a.gpus[a.count];
    std::memcpy(g.path, d.arbiter_path, sizeof(g.path));
    std::memcpy(g.requests_path, d.requests_path, sizeof(g.requests_path));
    if (const int rc = g.region.Open(g.path, g.requests_path); rc != 0) {
      Complain("cannot open the compute arbiter; launches on that GPU are not arbitrated",
               std::strerror(rc));
      g.region.Close();
      continue;
    }
    g.entry = i;
    g.index = a.count;
    g.descriptor_pid = ::getpid();
    struct stat st {};
    if (::stat(g.path, &st) == 0) {
      g.order_dev = static_cast<std::uint64_t>(st.st_dev);
      g.order_ino = static_cast<std::uint64_t>(st.st_ino);
    }
    a.of_entry[i] = static_cast<int>(a.count++);
  }
  if (a.count == 0) return;
  a.fork_page = NewForkToken();
  g_launch_gate.holding = a.count == 1 && a.fork_page != nullptr ? a.fork_page : g_never_holding;
  g_launch_gate.alone_token = PackToken(kNoTenant, 0);
  if (a.count > 1) {
    // Wipe-on-fork words: [0] the one-GPU holding flag, [1 + i] joined, then one holding flag per
    // GPU (a forked child reads 0 in all of them).
    static_assert(1 + 2 * kMaxLimitedDevices <= 4096 / sizeof(std::uint32_t));
    for (std::uint32_t i = 0; i < a.count; ++i) {
      GpuArbiter& g = a.gpus[i];
      g.fast = &g.own_fast;
      g.own_fast.alone_token = PackToken(kNoTenant, 0);
      g.own_fast.holding =
          a.fork_page != nullptr ? &a.fork_page[1 + kMaxLimitedDevices + i] : g_never_holding;
      __atomic_store_n(&g.own_fast.token, &g.region.page()->token, __ATOMIC_RELEASE);
    }
  }
  a.configured = true;
  __atomic_store_n(&g_launch_gate.token, &a.gpus[0].region.page()->token, __ATOMIC_RELEASE);
}

// The arbiter of the GPU the calling thread's current context is on (null: not arbitrated).
GpuArbiter* ArbiterFor(ShimState& s) {
  ArbiterState& a = s.arbiter;
  if (s.limits.device_count <= 1) return a.count > 0 ? &a.gpus[0] : nullptr;
  CUdevice device = 0;
  std::uint32_t entry = 0;
  if (s.real.cuCtxGetDevice == nullptr || s.real.cuCtxGetDevice(&device) != CUDA_SUCCESS ||
      !EntryOf(s, device, &entry) || a.of_entry[entry] < 0) {
    return nullptr;
  }
  return &a.gpus[a.of_entry[entry]];
}

// This process's record in its container's request file for `g` (a forked child takes one of
// its own). False when all are taken: launches on that GPU then go unarbitrated.
bool EnsureTenant(ArbiterState& a, GpuArbiter& g) {
  // The wipe-on-fork page says "joined" without a getpid() system call.
  if (g.gate != nullptr && a.fork_page != nullptr && a.fork_page[1 + g.index] != 0) return true;
  const pid_t pid = ::getpid();
  if (g.gate != nullptr && g.pid == pid) return true;
  if (g.descriptor_pid != pid) {  // forked (before or after this process's first launch)
    if (g.region.ReopenDescriptor(g.requests_path) != 0) return false;
    g.descriptor_pid = pid;
  }
  g.pid = pid;
  const std::uint32_t process = g.region.Join(pid);
  if (process == kNoTenant) {
    if (!g.complained_full) Complain("the compute arbiter has no free process record", g.path);
    g.complained_full = true;
    return false;
  }
  // The slot of this container is the referee's business; this process learns its holder id
  // from the first grant that names one of its records (the referee grants by record).
  delete g.gate;
  g.fast_granted = 0;  // a forked child: its parent's budget is not its own
  __atomic_store_n(&g.fast->budget, 0, __ATOMIC_RELEASE);
  g.process = process;
  g.gate = new (std::nothrow) TenantGate(g.region.page(), &g.region.requests()->processes[process],
                                         kNoTenant, &g.region, a.params);
  g.fast->alone_token = PackToken(kNoTenant, 0);
  return g.gate != nullptr;
}

// The holder id the referee's grants name for this process, once it lists this container; looked
// up again while waiting (a referee that took over may have given the container another slot).
void LearnHolderId(GpuArbiter& g) {
  if (g.gate->holding()) return;
  const std::uint32_t slot = g.region.FindTenantSlot();
  const std::uint32_t id = slot == kNoTenant ? kNoTenant : HolderId(slot, g.process);
  if (id == g.gate->holder_id()) return;
  g.gate->set_holder_id(id);
  g.fast->alone_token = PackToken(id, 0);
}

bool Capturing(ShimState& s, CUstream stream) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  return s.real.cuStreamIsCapturing != nullptr &&
         s.real.cuStreamIsCapturing(stream, &status) == CUDA_SUCCESS &&
         status != CU_STREAM_CAPTURE_STATUS_NONE;
}

void RememberStream(GpuArbiter& g, CUstream stream) {
  for (std::size_t i = 0; i < g.stream_count; ++i) {
    if (g.streams[i] == stream) return;
  }
  if (g.stream_count == kMaxTurnStreams) {
    g.streams_overflow = true;
  } else {
    g.streams[g.stream_count++] = stream;
  }
}

// The holder's fast path (launch_gate.h). Counts the launches that went on the budget last
// granted into the gate, and closes it: from here every launch takes the slow path (the mutex is
// held) until GrantFastLaunches opens it again.
void CountFastLaunches(GpuArbiter& g) {
  const std::int64_t left = __atomic_exchange_n(&g.fast->budget, 0, __ATOMIC_ACQ_REL);
  if (g.fast_granted == 0) return;
  const std::uint64_t unused =
      left <= 0 ? 0 : std::min<std::uint64_t>(static_cast<std::uint64_t>(left), g.fast_granted);
  g.gate->CountLaunches(g.fast_granted - unused);
  g.fast_granted = 0;
}

// After a kGo to the holder: the launches the gate would let go with nothing changing but its
// counters (the queued-work bound left) go on the fast path while the token word stays the same
// and on the same stream.
void GrantFastLaunches(GpuArbiter& g, CUstream stream) {
  LaunchGateFastPath& fast = *g.fast;
  if (fast.holding == g_never_holding) return;  // no fast path (no wipe-on-fork page)
  const std::uint64_t launches = g.gate->LaunchesWithoutCheck();
  if (launches == 0) return;
  __atomic_store_n(&fast.held_token, g.gate->go_token(), __ATOMIC_RELAXED);
  // This launch's stream, then other streams of the drain list (all drained at the turn's end or
  // the bound); places left over repeat this one.
  CUstream* held = fast.held_streams;
  std::size_t n = 0;
  __atomic_store_n(&held[n++], stream, __ATOMIC_RELAXED);
  for (std::size_t i = 0; i < g.stream_count && n < 4; ++i) {
    if (g.streams[i] != stream) __atomic_store_n(&held[n++], g.streams[i], __ATOMIC_RELAXED);
  }
  while (n < 4) __atomic_store_n(&held[n++], stream, __ATOMIC_RELAXED);
  g.fast_granted = launches;
  __atomic_store_n(&fast.budget, static_cast<std::int64_t>(launches), __ATOMIC_RELEASE);
}

// Waits for the work this tenant launched on `g`'s GPU in its turn; returns when it completed.
// Relaxed capture mode for this thread, so another thread's capture is not invalidated by our
// synchronisation.
std::uint64_t DrainTurn(ShimState& s, GpuArbiter& g) {
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
  const bool exchanged = s.real.cuThreadExchangeStreamCaptureMode != nullptr &&
                         s.real.cuThreadExchangeStreamCaptureMode(&mode) == CUDA_SUCCESS;
  if (g.streams_overflow && s.real.cuCtxSynchronize != nullptr) {
    s.real.cuCtxSynchronize();
  } else if (s.real.cuStreamSynchronize != nullptr) {
    for (std::size_t i = 0; i < g.stream_count; ++i) {
      if (!Capturing(s, g.streams[i])) s.real.cuStreamSynchronize(g.streams[i]);
    }
  }
  if (exchanged) s.real.cuThreadExchangeStreamCaptureMode(&mode);
  g.stream_count = 0;
  g.streams_overflow = false;
  return MonotonicNowNs();
}

// After cuCtxSynchronize: nothing of ours is queued on the current context's GPU, so a holder
// whose turn is over hands on now instead of at its next launch.
void ArbiterAfterContextSync(ShimState& s) {
  if (!s.arbiter.configured) return;
  GpuArbiter* g = ArbiterFor(s);
  if (g == nullptr) return;
  std::lock_guard<std::mutex> lock(g->mutex);
  if (g->gate == nullptr || g->pid != ::getpid() || !g->gate->holding()) return;
  if (!g->gate->ReleaseRequested()) return;
  SetHolding(*g, false);
  CountFastLaunches(*g);
  g->stream_count = 0;
  g->streams_overflow = false;
  const std::uint64_t now = MonotonicNowNs();
  g->gate->Release(now, now, false);
}

void LeaveArbiter(ShimState& s) {
  ArbiterState& a = s.arbiter;
  if (!a.configured) return;
  for (std::uint32_t i = 0; i < a.count; ++i) {
    GpuArbiter& g = a.gpus[i];
    if (g.gate != nullptr && g.pid == ::getpid()) g.region.Leave(g.process);
  }
}

// Admits a launch on `stream` on `g`'s GPU: launches recorded into a graph during capture go at
// once (neither gated nor charged; the graph's launch is); otherwise wait for the token, handing
// on at a turn's end.
CUresult AdmitOn(ShimState& s, GpuArbiter& g, CUstream stream) {
  ArbiterState& a = s.arbiter;
  std::unique_lock<std::mutex> lock(g.mutex);
  if (!EnsureTenant(a, g)) return CUDA_SUCCESS;
  CountFastLaunches(g);
  for (;;) {
    LearnHolderId(g);
    const std::uint32_t seen = __atomic_load_n(&g.region.page()->seq, __ATOMIC_ACQUIRE);
    const std::uint64_t now = MonotonicNowNs();
    const GateDecision decision = g.gate->BeforeLaunch(now);
    if (decision == GateDecision::kGo) {
      if (g.gate->holding()) {
        RememberStream(g, stream);
        GrantFastLaunches(g, stream);
      }
      SetHolding(g, g.gate->holding());
      if (a.fork_page != nullptr) a.fork_page[1 + g.index] = 1;  // joined (a forked child: 0)
      return CUDA_SUCCESS;
    }
    SetHolding(g, false);
    // A launch recorded into a graph during capture is neither gated nor charged.
    if (Capturing(s, stream)) return CUDA_SUCCESS;
    if (decision == GateDecision::kDrain) {
      g.gate->Drained(DrainTurn(s, g));  // a turn of work queued: wait for it, keep the token
    } else if (decision == GateDecision::kDrainThenRelease) {
      const std::uint64_t done = DrainTurn(s, g);
      g.gate->Release(done, MonotonicNowNs(), true);
    } else {
      lock.unlock();
      g.region.WaitForChange(seen, 1'000'000);  // the referee's next grant, or 1 ms
      lock.lock();
    }
  }
}

// ---- Multi-device cooperative launches (cuLaunchCooperativeKernelMultiDevice) ----------------
//
// Such a launch runs on every device its CUDA_LAUNCH_PARAMS name (each entry's stream decides
// its device), so it waits for the token of each arbitrated one. The tokens are taken one at a
// time in one global order (ascending grant-page identity, order_dev/order_ino), and before it
// waits for a token a launch hands back every token of its GPUs that its process holds and that
// comes later in that order: so it never waits for a token while holding a later one, and two
// processes launching over the same GPUs (in any parameter order) cannot wait for each other in
// a cycle. A token
// taken earlier stays held while the launch waits for a later one: the referee of that GPU ends
// the holder's turn as for any holder and revokes it after turn + lease if it has not come back
// (others wait at most that long, and this process is charged for the time it held it); the
// launch then sees the revocation before it launches (StillHolds) and takes the tokens again
// from that GPU on (handing back, before it waits, those it holds after it in the order).

struct GangMember {
  GpuArbiter* g = nullptr;
  CUstream stream = nullptr;  // the launch's stream on that GPU
  bool joined = false;        // false: no process record, that GPU's part goes unarbitrated
  bool held = false;          // its last kGo was as holder (not a bypass)
};

// The device of `stream`'s context, asked of the driver; the stream's context is made current
// for the question when it is not (and the caller's current context restored).
CUresult StreamDevice(ShimState& s, CUstream stream, CUdevice* device) {
  CUcontext context = nullptr;
  if (const CUresult r = s.real.cuStreamGetCtx(stream, &context); r != CUDA_SUCCESS) return r;
  CUcontext current = nullptr;
  if (s.real.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == context) {
    return s.real.cuCtxGetDevice(device);
  }
  if (const CUresult r = s.real.cuCtxPushCurrent_v2(context); r != CUDA_SUCCESS) return r;
  const CUresult r = s.real.cuCtxGetDevice(device);
  CUcontext popped = nullptr;
  s.real.cuCtxPopCurrent_v2(&popped);
  return r;
}

// The arbitrated GPUs of a multi-device launch, each once. A stream whose device the driver
// cannot name fails the launch with the driver's answer (the launch would fail on it anyway).
CUresult GangOf(ShimState& s, const CUDA_LAUNCH_PARAMS* params, unsigned int device_count,
                GangMember* members, std::size_t* n) {
  ArbiterState& a = s.arbiter;
  *n = 0;
  for (unsigned int i = 0; i < device_count; ++i) {
    CUdevice device = 0;
    if (const CUresult r = StreamDevice(s, params[i].hStream, &device); r != CUDA_SUCCESS) {
      return r;
    }
    std::uint32_t entry = 0;
    if (!EntryOf(s, device, &entry) || a.of_entry[entry] < 0) continue;  // not arbitrated
    GpuArbiter* g = &a.gpus[a.of_entry[entry]];
    bool listed = false;
    for (std::size_t j = 0; j < *n; ++j) listed = listed || members[j].g == g;
    if (!listed) members[(*n)++] = GangMember{g, params[i].hStream};
  }
  return CUDA_SUCCESS;
}

void LockGang(GangMember* m, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) m[i].g->mutex.lock();  // the global order: no cycle
}
void UnlockGang(GangMember* m, std::size_t n) {
  for (std::size_t i = n; i > 0; --i) m[i - 1].g->mutex.unlock();
}

// Hands the tokens of members [from, n) back (their work drained first), wanting them no more
// until this launch asks again in order.
void HandBackFrom(ShimState& s, GangMember* m, std::size_t from, std::size_t n) {
  for (std::size_t j = from; j < n; ++j) {
    GpuArbiter& g = *m[j].g;
    m[j].held = false;
    if (!m[j].joined || !g.gate->holding()) continue;
    SetHolding(g, false);
    const std::uint64_t done = DrainTurn(s, g);
    g.gate->Release(done, MonotonicNowNs(), false);
  }
}

// The first member whose token this launch took and has lost since (revoked, or handed on by
// another of this process's threads while this one waited); n when it holds them all.
std::size_t FirstLost(const GangMember* m, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (m[i].held && !m[i].g->gate->StillHolds()) return i;
  }
  return n;
}

// Takes every member's token in order (see above); returns when the launch may go. The members'
// mutexes are held in the same order, released while waiting.
void AdmitGang(ShimState& s, GangMember* m, std::size_t n) {
  ArbiterState& a = s.arbiter;
  LockGang(m, n);
  for (std::size_t i = 0; i < n; ++i) {
    m[i].joined = EnsureTenant(a, *m[i].g);
    if (m[i].joined) CountFastLaunches(*m[i].g);
  }
  std::size_t k = 0;
  for (;;) {
    if (k == n) {
      k = FirstLost(m, n);  // lost: take it again (later ones are handed back before waiting)
      if (k == n) break;
      continue;
    }
    GpuArbiter& g = *m[k].g;
    if (!m[k].joined) {
      ++k;
      continue;
    }
    LearnHolderId(g);
    const std::uint32_t seen = __atomic_load_n(&g.region.page()->seq, __ATOMIC_ACQUIRE);
    const GateDecision decision = g.gate->BeforeLaunch(MonotonicNowNs());
    SetHolding(g, decision == GateDecision::kGo && g.gate->holding());
    if (decision == GateDecision::kGo) {
      m[k].held = g.gate->holding();
      if (m[k].held) RememberStream(g, m[k].stream);
      if (a.fork_page != nullptr) a.fork_page[1 + g.index] = 1;
      ++k;
    } else if (decision == GateDecision::kDrain) {
      g.gate->Drained(DrainTurn(s, g));
    } else if (decision == GateDecision::kDrainThenRelease) {
      const std::uint64_t done = DrainTurn(s, g);
      g.gate->Release(done, MonotonicNowNs(), true);
    } else {
      HandBackFrom(s, m, k + 1, n);  // wait for no token while holding a later one
      UnlockGang(m, n);
      g.region.WaitForChange(seen, 1'000'000);
      LockGang(m, n);
    }
  }
  UnlockGang(m, n);
}

// Reads the limits, maps the region and claims this process's slot. The real driver is loaded
// on the first CUDA call (x86-64), so processes that never use CUDA never load it.
__attribute__((constructor)) void LoadShim() {
  auto* s = new (std::nothrow) ShimState;
  if (s == nullptr) return;
  for (int& e : s->device_entry) e = kUnlisted;
  s->fork_token = NewForkToken();
  LoadLimits(*s);
  if (s->enforcing && !s->broken) {
    ClaimSlot(*s);
    if (s->slot.load() < 0) {
      Complain("the accounting region has no free process slot", "");
      s->broken = true;
    }
  }
  if (s->enforcing && !s->broken) SetUpArbiter(*s);
  ::pthread_atfork(nullptr, nullptr, &AfterForkInChild);
  g_state = s;
#if !GPUSLICE_HAS_LAZY_LOADING
  gpuslice_cuda_load_driver();
#endif
}

__attribute__((destructor)) void UnloadShim() {
  // Normal exit: the driver frees this process's memory, so its usage stops counting now.
  // Only the slot's owner: a vfork or raw-fork child calling exit() runs this too.
  // (MADV_WIPEONFORK does not reach a vfork child, which shares our memory: compare pids too.)
  if (g_state != nullptr && g_state->enforcing && OwnsSlot(*g_state) &&
      ::getpid() == g_state->owner_pid) {
    g_state->region.ReleaseSlot(g_state->slot.exchange(-1));
  }
  if (g_state != nullptr) LeaveArbiter(*g_state);
}

// ---- Accounting helpers ---------------------------------------------------------------------

void FormatUuid(const CUuuid& uuid, char* out, std::size_t size) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  std::snprintf(out, size,
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
}

// Maps CUDA ordinals to limits entries: by UUID when the entry names one, else by position.
void ResolveDevices(ShimState& s) {
  if (s.devices_resolved.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(s.resolve_mutex);
  if (s.devices_resolved.load(std::memory_order_relaxed)) return;
  int count = 0;
  if (s.real.cuDeviceGetCount == nullptr || s.real.cuDeviceGetCount(&count) != CUDA_SUCCESS) {
    return;  // not initialised yet; retried on the next call
  }
  for (int ordinal = 0; ordinal < count && ordinal < kMaxCudaDevices; ++ordinal) {
    char uuid_text[kMaxUuid] = {};
    CUuuid uuid{};
    if (s.real.cuDeviceGetUuid != nullptr &&
        s.real.cuDeviceGetUuid(&uuid, ordinal) == CUDA_SUCCESS) {
      FormatUuid(uuid, uuid_text, sizeof(uuid_text));
    }
    int entry = kUnlisted;
    for (std::uint32_t i = 0; i < s.limits.device_count && entry == kUnlisted; ++i) {
      if (s.limits.devices[i].uuid[0] != '\0' &&
          strcasecmp(s.limits.devices[i].uuid, uuid_text) == 0) {
        entry = static_cast<int>(i);
      }
    }
    if (entry == kUnlisted && static_cast<std::uint32_t>(ordinal) < s.limits.device_count &&
        s.limits.devices[ordinal].uuid[0] == '\0') {
      entry = ordinal;
    }
    s.device_entry[ordinal] = entry;
  }
  s.devices_resolved.store(true, std::memory_order_release);
}

// The limits entry of CUDA device `device`, or false when the container has no limit for it
// (then it gets no memory).
bool EntryOf(ShimState& s, CUdevice device, std::uint32_t* entry) {
  if (!s.devices_resolved.load(std::memory_order_acquire)) ResolveDevices(s);
  if (device < 0 || device >= kMaxCudaDevices || s.device_entry[device] == kUnlisted) return false;
  *entry = static_cast<std::uint32_t>(s.device_entry[device]);
  return true;
}

int Slot(ShimState& s) {
  int slot = s.slot.load(std::memory_order_acquire);
  if (slot < 0 || !OwnsSlot(s)) {
    ClaimSlot(s);  // first allocation in a forked child
    slot = s.slot.load(std::memory_order_acquire);
  }
  return slot;
}

bool Reserve(ShimState& s, std::uint32_t entry, std::uint64_t bytes) {
  // Counted either way (what cuMemGetInfo/NVML report as used); refused only on shim-tier GPUs.
  return s.region.Reserve(Slot(s), entry, bytes, s.refuse_above_bytes[entry]);
}

void Unreserve(ShimState& s, std::uint32_t entry, std::uint64_t bytes) {
  s.region.Release(Slot(s), entry, bytes);
}

const void* CurrentContext(ShimState& s) {
  CUcontext context = nullptr;
  if (s.real.cuCtxGetCurrent != nullptr) s.real.cuCtxGetCurrent(&context);
  return context;
}

// Where the current context's allocations count, or the CUresult to fail with.
CUresult CurrentEntry(ShimState& s, std::uint32_t* entry, bool* listed) {
  CUdevice device = 0;
  if (s.real.cuCtxGetDevice == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  if (const CUresult r = s.real.cuCtxGetDevice(&device); r != CUDA_SUCCESS) return r;
  *listed = EntryOf(s, device, entry);
  return CUDA_SUCCESS;
}

// Reserve, allocate, record; on any failure nothing stays allocated or counted.
// `allocate` performs the real call; `key` returns the new allocation's key; `undo` frees it.
template <typename Allocate, typename Key, typename Undo>
CUresult CountedAllocation(ShimState& s, AllocationKind kind, std::uint32_t entry,
                           std::uint64_t bytes, const void* context, Allocate&& allocate, Key&& key,
                           Undo&& undo) {
  if (!Reserve(s, entry, bytes)) return CUDA_ERROR_OUT_OF_MEMORY;
  const CUresult r = allocate();
  if (r != CUDA_SUCCESS) {
    Unreserve(s, entry, bytes);
    return r;
  }
  if (!s.allocations.Insert(kind, key(), {entry, bytes, context})) {
    undo();
    Unreserve(s, entry, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return CUDA_SUCCESS;
}

void ForgetAllocation(ShimState& s, AllocationKind kind, std::uint64_t key) {
  AllocationRecord record;
  if (s.allocations.Remove(kind, key, &record)) Unreserve(s, record.device_entry, record.bytes);
}

// Bytes of one array level; saturates so an absurd descriptor fails the limit check.
std::uint64_t ArrayBytes(std::uint64_t width, std::uint64_t height, std::uint64_t depth,
                         CUarray_format format, unsigned channels) {
  std::uint64_t element = 4;
  switch (format) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
      element = 1;
      break;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
      element = 2;
      break;
    default:
      element = 4;  // 32-bit formats; other formats are counted as 4 bytes per channel
      break;
  }
  const std::uint64_t factors[] = {width == 0 ? 1 : width, height == 0 ? 1 : height,
                                   depth == 0 ? 1 : depth, element, channels == 0 ? 1 : channels};
  std::uint64_t bytes = 1;
  for (std::uint64_t f : factors) {
    if (bytes > UINT64_MAX / f) return UINT64_MAX;
    bytes *= f;
  }
  return bytes;
}

std::uint64_t MipmappedBytes(const CUDA_ARRAY3D_DESCRIPTOR& d, unsigned levels) {
  std::uint64_t total = 0;
  std::uint64_t w = d.Width, h = d.Height, depth = d.Depth;
  for (unsigned level = 0; level < (levels == 0 ? 1 : levels); ++level) {
    const std::uint64_t bytes = ArrayBytes(w, h, depth, d.Format, d.NumChannels);
    if (total > UINT64_MAX - bytes) return UINT64_MAX;
    total += bytes;
    w = w > 1 ? w / 2 : 1;
    h = h > 1 ? h / 2 : (h == 0 ? 0 : 1);
    depth = depth > 1 ? depth / 2 : (depth == 0 ? 0 : 1);
  }
  return total;
}

bool Active(const ShimState* s) { return s != nullptr && s->enforcing; }

// Frees an allocation the shim could not record, bypassing accounting.
void FreeUncounted(CUdeviceptr dptr) {
  if (g_state != nullptr && g_state->real.cuMemFree_v2 != nullptr) g_state->real.cuMemFree_v2(dptr);
}

// Counts an array on the current context's device.
template <typename Create, typename Key, typename Undo>
CUresult CountedArray(ShimState& s, AllocationKind kind, std::uint64_t bytes, Create&& create,
                      Key&& key, Undo&& undo) {
  std::uint32_t entry = 0;
  bool listed = false;
  if (const CUresult rc = CurrentEntry(s, &entry, &listed); rc != CUDA_SUCCESS) return rc;
  if (!listed) return CUDA_ERROR_OUT_OF_MEMORY;
  return CountedAllocation(s, kind, entry, bytes, CurrentContext(s), create, key, undo);
}

std::uint64_t Key(const void* handle) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(handle));
}

// ---- Lifetimes: stream-ordered pools, VMM handles, graph memory ---------------------------------

// Records what a pool holds: memory of CUDA device `device` (-1: unknown), counted unless host.
void LearnPool(ShimState& s, const void* pool, int device, bool counted) {
  try {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    PoolState& p = s.pools[pool];
    p.counted = counted;
    if (device >= 0) p.device = device;
  } catch (...) {
    // Unrecorded: its allocations count against the current device (and stay counted).
  }
}

// A freed stream-ordered allocation joins its pool's reserve and stays counted there.
void ReturnToPool(ShimState& s, const AllocationRecord& record, bool async, const void* stream) {
  try {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    PoolState& p = s.pools[record.pool];
    p.in_use -= record.bytes < p.in_use ? record.bytes : p.in_use;
    if (async) {
      p.pending[stream] += record.bytes;
    } else {
      p.cached += record.bytes;
    }
    p.entry = record.device_entry;
    p.entry_known = true;
    s.pools_hold_memory.store(true, std::memory_order_relaxed);
  } catch (...) {
    // Cannot track it: it stays counted until the process exits (never looser).
  }
}

// An allocation being freed: plain memory stops counting, pool memory joins the pool's reserve.
void FreeAllocation(ShimState& s, std::uint64_t key, bool async, const void* stream) {
  AllocationRecord record;
  if (!s.allocations.Remove(AllocationKind::kDevicePointer, key, &record)) return;
  if (record.pool != nullptr) {
    ReturnToPool(s, record, async, stream);
  } else {
    Unreserve(s, record.device_entry, record.bytes);
  }
}

// What a pool keeps after a release: never below its in-use memory, at most `keep_bytes` in all.
std::uint64_t KeptReserve(const PoolState& p, std::uint64_t keep_bytes) {
  if (keep_bytes <= p.in_use) return 0;
  return p.cached < keep_bytes - p.in_use ? p.cached : keep_bytes - p.in_use;
}

// A synchronisation: the driver releases each pool's reserve above its threshold. `complete`:
// frees pending on `stream` (every stream when `all_streams`) have completed first.
void PoolsSynchronised(ShimState& s, const void* stream, bool all_streams, bool complete) {
  if (!s.pools_hold_memory.load(std::memory_order_relaxed)) return;
  constexpr int kMaxReleases = 64;  // more pools wait for the next synchronisation
  GraphCharge releases[kMaxReleases];
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    bool holding = false;
    for (auto& [pool, p] : s.pools) {
      if (complete) {
        for (auto& [pending_stream, bytes] : p.pending) {
          if (all_streams || pending_stream == stream) {
            p.cached += bytes;
            bytes = 0;
          }
        }
      }
      const std::uint64_t keep = KeptReserve(p, p.threshold);
      if (p.cached > keep && p.entry_known && count < kMaxReleases) {
        releases[count++] = {p.entry, p.cached - keep};
        p.cached = keep;
      }
      holding = holding || p.cached > 0;
      for (const auto& [pending_stream, bytes] : p.pending) holding = holding || bytes > 0;
    }
    s.pools_hold_memory.store(holding || count == kMaxReleases, std::memory_order_relaxed);
  }
  for (int i = 0; i < count; ++i) Unreserve(s, releases[i].entry, releases[i].bytes);
}

// cuMemPoolTrimTo / cuMemPoolDestroy: the pool keeps at most `keep_bytes` reserved.
void TrimPool(ShimState& s, const void* pool, std::uint64_t keep_bytes, bool destroyed) {
  std::uint32_t entry = 0;
  std::uint64_t release = 0;
  {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    auto it = s.pools.find(pool);
    if (it == s.pools.end()) return;
    PoolState& p = it->second;
    if (destroyed) p.threshold = 0;
    const std::uint64_t keep = KeptReserve(p, keep_bytes);
    if (!p.entry_known || p.cached <= keep) return;
    entry = p.entry;
    release = p.cached - keep;
    p.cached = keep;
  }
  Unreserve(s, entry, release);
}

// Counts a stream-ordered allocation of `bytes` from `pool` on `stream`: memory the pool
// already holds (completed frees, and this stream's own pending frees, which stream order lets
// it reuse) is already counted; the rest is reserved against the pool's own GPU.
template <typename Allocate>
CUresult PoolAllocation(ShimState& s, const void* pool, const void* stream, CUdeviceptr* dptr,
                        std::uint64_t bytes, Allocate&& allocate) {
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  bool counted = true;
  int device = -1;
  {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    if (auto it = s.pools.find(pool); it != s.pools.end()) {
      counted = it->second.counted;
      device = it->second.device;
    }
  }
  if (!counted) return allocate();
  std::uint32_t entry = 0;
  bool listed = false;
  if (device >= 0) {
    listed = EntryOf(s, device, &entry);
  } else if (const CUresult rc = CurrentEntry(s, &entry, &listed); rc != CUDA_SUCCESS) {
    return rc;
  }
  if (!listed) return CUDA_ERROR_OUT_OF_MEMORY;
  std::uint64_t from_cache = 0;
  std::uint64_t from_pending = 0;
  try {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    PoolState& p = s.pools[pool];
    p.entry = entry;
    p.entry_known = true;
    from_cache = p.cached < bytes ? p.cached : bytes;
    p.cached -= from_cache;
    if (auto it = p.pending.find(stream); it != p.pending.end()) {
      from_pending = it->second < bytes - from_cache ? it->second : bytes - from_cache;
      it->second -= from_pending;
    }
    p.in_use += bytes;
  } catch (...) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  auto undo_pool = [&] {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    PoolState& p = s.pools[pool];
    p.cached += from_cache + from_pending;  // conservatively: reusable by anyone now
    p.in_use -= bytes;
  };
  const std::uint64_t charge = bytes - from_cache - from_pending;
  if (!Reserve(s, entry, charge)) {
    undo_pool();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  const CUresult r = allocate();
  if (r != CUDA_SUCCESS) {
    Unreserve(s, entry, charge);
    undo_pool();
    return r;
  }
  if (!s.allocations.Insert(AllocationKind::kDevicePointer, *dptr, {entry, bytes, nullptr, pool})) {
    FreeUncounted(*dptr);
    Unreserve(s, entry, charge);
    undo_pool();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return CUDA_SUCCESS;
}

// The pool cuMemAllocAsync uses on the current device (learned as that device's pool).
const void* CurrentDevicePool(ShimState& s) {
  CUdevice device = 0;
  CUmemoryPool pool = nullptr;
  if (s.real.cuCtxGetDevice == nullptr || s.real.cuCtxGetDevice(&device) != CUDA_SUCCESS ||
      s.real.cuDeviceGetMemPool == nullptr ||
      s.real.cuDeviceGetMemPool(&pool, device) != CUDA_SUCCESS) {
    return nullptr;  // unknown: counted against the current device
  }
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(s.pool_mutex);
    auto it = s.pools.find(pool);
    known = it != s.pools.end() && it->second.device >= 0;
  }
  if (!known) LearnPool(s, pool, device, true);
  return pool;
}

// Drops one reference (release, unmap) to a VMM handle; the last one gives its memory back,
// unless it was exported: other processes may keep it alive, so it stays charged until exit.
void DropVmmReference(ShimState& s, std::uint64_t handle) {
  std::uint32_t entry = 0;
  std::uint64_t release = 0;
  {
    std::lock_guard<std::mutex> lock(s.vmm_mutex);
    auto it = s.vmm.find(handle);
    if (it == s.vmm.end() || --it->second.refs > 0) return;
    if (it->second.charged && !it->second.exported) {
      entry = it->second.entry;
      release = it->second.bytes;
    }
    s.vmm.erase(it);
  }
  if (release > 0) Unreserve(s, entry, release);
}

// Adds a reference (retain, map, import of a known handle); false when the handle is unknown.
bool AddVmmReference(ShimState& s, std::uint64_t handle) {
  std::lock_guard<std::mutex> lock(s.vmm_mutex);
  auto it = s.vmm.find(handle);
  if (it == s.vmm.end()) return false;
  ++it->second.refs;
  return true;
}

// Charges a graph exec's allocation nodes at its first launch (all or nothing).
CUresult ChargeGraphLaunch(ShimState& s, const void* exec) {
  std::lock_guard<std::mutex> lock(s.graph_mutex);
  auto it = s.graph_execs.find(exec);
  if (it == s.graph_execs.end() || it->second.charged) return CUDA_SUCCESS;
  const std::vector<GraphCharge>& charges = it->second.charges;
  for (std::size_t i = 0; i < charges.size(); ++i) {
    if (!Reserve(s, charges[i].entry, charges[i].bytes)) {
      for (std::size_t j = 0; j < i; ++j) Unreserve(s, charges[j].entry, charges[j].bytes);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
  }
  it->second.charged = true;
  return CUDA_SUCCESS;
}

template <typename Instantiate>
CUresult InstantiateGraph(CUgraphExec* exec, CUgraph graph, Instantiate&& instantiate) {
  ShimState* s = g_state;
  const CUresult r = instantiate();
  if (r != CUDA_SUCCESS || !Active(s) || s->broken || exec == nullptr ||
      !s->graphs_allocate.load(std::memory_order_relaxed)) {
    return r;
  }
  try {
    std::lock_guard<std::mutex> lock(s->graph_mutex);
    if (auto it = s->graph_allocations.find(graph); it != s->graph_allocations.end()) {
      s->graph_execs[*exec] = {it->second, false};
    }
  } catch (...) {
    // An exec whose memory cannot be tracked is not handed out.
    if (s->real.cuGraphExecDestroy != nullptr) s->real.cuGraphExecDestroy(*exec);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return r;
}

// IPC: an importer is charged the whole allocation while it has it open (the exporter until its
// free), on its current device.
template <typename Open>
CUresult OpenIpcMemory(CUdeviceptr* dptr, Open&& open) {
  ShimState* s = g_state;
  const CUresult r = open();
  if (r != CUDA_SUCCESS || !Active(s) || dptr == nullptr) return r;
  auto close = [&] {
    if (s->real.cuIpcCloseMemHandle != nullptr) s->real.cuIpcCloseMemHandle(*dptr);
  };
  std::uint32_t entry = 0;
  bool listed = false;
  size_t size = 0;
  if (s->broken || s->real.cuMemGetAddressRange_v2 == nullptr ||
      s->real.cuMemGetAddressRange_v2(nullptr, &size, *dptr) != CUDA_SUCCESS ||
      CurrentEntry(*s, &entry, &listed) != CUDA_SUCCESS || !listed || !Reserve(*s, entry, size)) {
    close();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (!s->allocations.Insert(AllocationKind::kIpcPointer, *dptr,
                             {entry, size, CurrentContext(*s), nullptr})) {
    close();
    Unreserve(*s, entry, size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return r;
}

// ---- Context overhead -------------------------------------------------------------------------

template <typename Create>
CUresult CreateContext(CUcontext* context, CUdevice device, Create&& create) {
  ShimState* s = g_state;
  if (!Active(s)) return create();
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  std::uint32_t entry = 0;
  if (!EntryOf(*s, device, &entry)) {
    // An unlisted GPU gets no memory; let the driver report a bad ordinal first.
    return device < 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_OUT_OF_MEMORY;
  }
  const std::uint64_t overhead = s->limits.context_overhead_bytes;
  if (!Reserve(*s, entry, overhead)) return CUDA_ERROR_OUT_OF_MEMORY;
  const CUresult r = create();
  if (r != CUDA_SUCCESS) {
    Unreserve(*s, entry, overhead);
    return r;
  }
  try {
    std::lock_guard<std::mutex> lock(s->context_mutex);
    s->contexts[*context] = {entry, overhead};
  } catch (...) {
    // Keep the context; its overhead stays counted until the process exits.
  }
  return CUDA_SUCCESS;
}

template <typename Destroy>
CUresult DestroyContext(CUcontext context, Destroy&& destroy) {
  ShimState* s = g_state;
  const CUresult r = destroy();
  if (r != CUDA_SUCCESS || !Active(s) || s->broken) return r;
  ContextInfo info{};
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(s->context_mutex);
    if (auto it = s->contexts.find(context); it != s->contexts.end()) {
      info = it->second;
      known = true;
      s->contexts.erase(it);
    }
  }
  if (known) Unreserve(*s, info.entry, info.overhead_bytes);
  // The driver freed everything the context owned.
  s->allocations.RemoveContext(context, [s](const AllocationRecord& record) {
    Unreserve(*s, record.device_entry, record.bytes);
  });
  return r;
}

template <typename Release>
CUresult ReleasePrimary(CUdevice device, bool reset, Release&& release) {
  ShimState* s = g_state;
  const CUresult r = release();
  if (r != CUDA_SUCCESS || !Active(s) || s->broken || device < 0 || device >= kMaxCudaDevices) {
    return r;
  }
  std::uint32_t entry = 0;
  if (!EntryOf(*s, device, &entry)) return r;
  CUcontext primary = nullptr;
  std::uint64_t overhead = 0;
  bool last = false;  // the driver destroyed the context: everything it owned is freed
  {
    std::lock_guard<std::mutex> lock(s->context_mutex);
    if (s->primary_refs[device] == 0) return r;
    primary = s->primary_context[device];
    if (reset) {
      s->primary_refs[device] = 0;
    } else {
      --s->primary_refs[device];
    }
    if (s->primary_refs[device] == 0) {
      last = true;
      overhead = s->primary_overhead[device];
      s->primary_overhead[device] = 0;
    }
  }
  if (overhead > 0) Unreserve(*s, entry, overhead);
  // Not keyed on the overhead: with context-overhead-bytes 0 the allocations must go too.
  if (reset || last) {
    s->allocations.RemoveContext(primary, [s](const AllocationRecord& record) {
      Unreserve(*s, record.device_entry, record.bytes);
    });
  }
  return r;
}

// ---- cuGetProcAddress ----------------------------------------------------------------------

// The wrapper to hand out instead of `real`, or `real` when the symbol is not intercepted.
void* Substitute(const char* symbol, void* real, int cuda_version, cuuint64_t flags) {
  if (real == nullptr) return real;
  for (const ProcEntry& e : g_proc_entries) {
    if (e.real == real) return e.wrapper;
  }
  // A driver may hand out an internal pointer rather than its exported one: pick by name the
  // variant the driver would choose for this cudaVersion and stream mode.
  const bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const ProcEntry* best = nullptr;
  for (const ProcEntry& e : g_proc_entries) {
    if (std::strcmp(e.family, symbol) != 0 || e.since_version > cuda_version) continue;
    if (e.per_thread && !per_thread) continue;
    if (best == nullptr || e.per_thread > best->per_thread ||
        (e.per_thread == best->per_thread && e.since_version > best->since_version)) {
      best = &e;
    }
  }
  return best != nullptr ? best->wrapper : real;
}

}  // namespace
}  // namespace gpuslice::shim

namespace gpuslice::shim {

LaunchGateFastPath g_launch_gate;

// The launch slow path: launches recorded into a graph during capture go at once (neither gated
// nor charged; the graph's launch is); otherwise wait for the token, handing on at a turn's end.
CUresult AdmitLaunchSlow(CUstream stream) noexcept {
  ShimState* s = g_state;
  if (s == nullptr || !s->arbiter.configured) return CUDA_SUCCESS;
  GpuArbiter* g = ArbiterFor(*s);
  if (g == nullptr) return CUDA_SUCCESS;
  // More than one arbitrated GPU: that GPU's holder fast path (launch_gate.h).
  if (g->fast != &g_launch_gate && HolderMayLaunch(*g->fast, g->fast->token, stream)) {
    return CUDA_SUCCESS;
  }
  return AdmitOn(*s, *g, stream);
}

// A multi-device cooperative launch: admitted on every arbitrated GPU its streams are on.
CUresult AdmitMultiDeviceLaunchSlow(const CUDA_LAUNCH_PARAMS* params,
                                    unsigned int device_count) noexcept {
  ShimState* s = g_state;
  if (s == nullptr || !s->arbiter.configured) return CUDA_SUCCESS;
  if (params == nullptr || device_count == 0) return CUDA_SUCCESS;  // the driver refuses it
  if (s->real.cuStreamGetCtx == nullptr || s->real.cuCtxPushCurrent_v2 == nullptr ||
      s->real.cuCtxPopCurrent_v2 == nullptr || s->real.cuCtxGetCurrent == nullptr ||
      s->real.cuCtxGetDevice == nullptr) {
    return AdmitLaunchSlow(nullptr);  // a driver that cannot say: the current context's GPU
  }
  // Recorded into a graph during capture: neither gated nor charged (the graph's launch is).
  for (unsigned int i = 0; i < device_count; ++i) {
    if (Capturing(*s, params[i].hStream)) return CUDA_SUCCESS;
  }
  GangMember members[kMaxLimitedDevices];
  std::size_t n = 0;
  if (const CUresult r = GangOf(*s, params, device_count, members, &n); r != CUDA_SUCCESS) {
    return r;
  }
  if (n == 0) return CUDA_SUCCESS;
  if (n == 1) return AdmitOn(*s, *members[0].g, members[0].stream);
  std::sort(members, members + n, [](const GangMember& x, const GangMember& y) {
    return x.g->order_dev != y.g->order_dev ? x.g->order_dev < y.g->order_dev
                                            : x.g->order_ino < y.g->order_ino;
  });
  AdmitGang(*s, members, n);
  return CUDA_SUCCESS;
}

}  // namespace gpuslice::shim

extern "C" void gpuslice_cuda_load_driver() noexcept {
  ::pthread_once(&gpuslice::shim::g_driver_once, &gpuslice::shim::LoadDriverOnce);
}

// ---- The exported wrappers ---------------------------------------------------------------------

using gpuslice::shim::Active;
using gpuslice::shim::AllocationKind;
using gpuslice::shim::ShimState;

extern "C" {

CUresult cuInit(unsigned int flags) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuInit == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  if (s->enforcing && s->broken) return CUDA_ERROR_OPERATING_SYSTEM;
  const CUresult r = s->real.cuInit(flags);
  if (r == CUDA_SUCCESS && s->enforcing) gpuslice::shim::ResolveDevices(*s);
  return r;
}

CUresult cuGetProcAddress(const char* symbol, void** pfn, int cuda_version,
                          cuuint64_t flags) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuGetProcAddress == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuGetProcAddress(symbol, pfn, cuda_version, flags);
  if (r == CUDA_SUCCESS && pfn != nullptr && symbol != nullptr) {
    *pfn = gpuslice::shim::Substitute(symbol, *pfn, cuda_version, flags);
  }
  return r;
}

CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* symbol_status) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuGetProcAddress_v2 == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, symbol_status);
  if (r == CUDA_SUCCESS && pfn != nullptr && symbol != nullptr) {
    *pfn = gpuslice::shim::Substitute(symbol, *pfn, cuda_version, flags);
  }
  return r;
}

#define GPUSLICE_REAL_OR_UNSUPPORTED(fn)        \
  ShimState* s = gpuslice::shim::LoadedState(); \
  if (s == nullptr || s->real.fn == nullptr) return CUDA_ERROR_NOT_SUPPORTED

// Linear device memory ---------------------------------------------------------------------------

// Calls `real` when the shim does not enforce; otherwise counts `bytes` on the current device.
#define GPUSLICE_COUNTED_DEVICE_ALLOCATION(real_fn, dptr, bytes, call)                        \
  ShimState* s = gpuslice::shim::LoadedState();                                               \
  if (s == nullptr || s->real.real_fn == nullptr) return CUDA_ERROR_NOT_SUPPORTED;            \
  if (!Active(s)) return (call);                                                              \
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;                                             \
  if ((dptr) == nullptr) return CUDA_ERROR_INVALID_VALUE;                                     \
  std::uint32_t entry = 0;                                                                    \
  bool listed = false;                                                                        \
  if (const CUresult rc = gpuslice::shim::CurrentEntry(*s, &entry, &listed); rc != 0) {       \
    return rc;                                                                                \
  }                                                                                           \
  if (!listed) return CUDA_ERROR_OUT_OF_MEMORY;                                               \
  return gpuslice::shim::CountedAllocation(                                                   \
      *s, AllocationKind::kDevicePointer, entry, (bytes), gpuslice::shim::CurrentContext(*s), \
      [&] { return (call); }, [&] { return static_cast<std::uint64_t>(*(dptr)); },            \
      [&] { gpuslice::shim::FreeUncounted(*(dptr)); })

CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes) noexcept {
  GPUSLICE_COUNTED_DEVICE_ALLOCATION(cuMemAlloc_v2, dptr, bytes,
                                     s->real.cuMemAlloc_v2(dptr, bytes));
}

CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytes, unsigned int flags) noexcept {
  GPUSLICE_COUNTED_DEVICE_ALLOCATION(cuMemAllocManaged, dptr, bytes,
                                     s->real.cuMemAllocManaged(dptr, bytes, flags));
}

// Stream-ordered allocations are counted in their pool (gpuslice::shim::PoolAllocation).
#define GPUSLICE_POOL_ALLOCATION(real_fn, pool, stream, dptr, bytes, call)         \
  ShimState* s = gpuslice::shim::LoadedState();                                    \
  if (s == nullptr || s->real.real_fn == nullptr) return CUDA_ERROR_NOT_SUPPORTED; \
  if (!Active(s)) return (call);                                                   \
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;                                  \
  return gpuslice::shim::PoolAllocation(*s, (pool), (stream), (dptr), (bytes),     \
                                        [&] { return (call); })

CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, CUstream stream) noexcept {
  GPUSLICE_POOL_ALLOCATION(cuMemAllocAsync, gpuslice::shim::CurrentDevicePool(*s), stream, dptr,
                           bytes, s->real.cuMemAllocAsync(dptr, bytes, stream));
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytes, CUstream stream) noexcept {
  GPUSLICE_POOL_ALLOCATION(cuMemAllocAsync_ptsz, gpuslice::shim::CurrentDevicePool(*s), stream,
                           dptr, bytes, s->real.cuMemAllocAsync_ptsz(dptr, bytes, stream));
}

// The pool's own GPU is charged, not the current context's.
CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool,
                                 CUstream stream) noexcept {
  GPUSLICE_POOL_ALLOCATION(cuMemAllocFromPoolAsync, pool, stream, dptr, bytes,
                           s->real.cuMemAllocFromPoolAsync(dptr, bytes, pool, stream));
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool,
                                      CUstream stream) noexcept {
  GPUSLICE_POOL_ALLOCATION(cuMemAllocFromPoolAsync_ptsz, pool, stream, dptr, bytes,
                           s->real.cuMemAllocFromPoolAsync_ptsz(dptr, bytes, pool, stream));
}

CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t width_bytes, size_t height,
                            unsigned int element_bytes) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemAllocPitch_v2 == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  if (!Active(s))
    return s->real.cuMemAllocPitch_v2(dptr, pitch, width_bytes, height, element_bytes);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  if (dptr == nullptr || pitch == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::uint32_t entry = 0;
  bool listed = false;
  if (const CUresult rc = gpuslice::shim::CurrentEntry(*s, &entry, &listed); rc != 0) return rc;
  if (!listed) return CUDA_ERROR_OUT_OF_MEMORY;
  // Reserve with the pitch rounded to 512 bytes, then settle on what the driver chose.
  constexpr std::uint64_t kPitchAlignment = 512;
  const std::uint64_t rounded =
      (width_bytes + kPitchAlignment - 1) / kPitchAlignment * kPitchAlignment;
  const std::uint64_t estimate =
      height != 0 && rounded > UINT64_MAX / height ? UINT64_MAX : rounded * height;
  const CUresult r = gpuslice::shim::CountedAllocation(
      *s, AllocationKind::kDevicePointer, entry, estimate, gpuslice::shim::CurrentContext(*s),
      [&] { return s->real.cuMemAllocPitch_v2(dptr, pitch, width_bytes, height, element_bytes); },
      [&] { return static_cast<std::uint64_t>(*dptr); },
      [&] { gpuslice::shim::FreeUncounted(*dptr); });
  if (r == CUDA_SUCCESS) {
    const std::uint64_t actual = static_cast<std::uint64_t>(*pitch) * height;
    gpuslice::shim::AllocationRecord record;
    if (actual != estimate &&
        s->allocations.Remove(AllocationKind::kDevicePointer, *dptr, &record)) {
      if (actual > estimate) {
        s->region.ForceAdd(gpuslice::shim::Slot(*s), entry, actual - estimate);
      } else {
        gpuslice::shim::Unreserve(*s, entry, estimate - actual);
      }
      record.bytes = actual;
      s->allocations.Insert(AllocationKind::kDevicePointer, *dptr, record);
    }
  }
  return r;
}

// Legacy 32-bit entry points (before CUDA 3.2): refused under a limit rather than uncounted.
CUresult cuMemAlloc(unsigned int* dptr, unsigned int bytes) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemAlloc == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  return Active(s) ? CUDA_ERROR_NOT_SUPPORTED : s->real.cuMemAlloc(dptr, bytes);
}

CUresult cuMemAllocPitch(unsigned int* dptr, unsigned int* pitch, unsigned int width_bytes,
                         unsigned int height, unsigned int element_bytes) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemAllocPitch == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  return Active(s) ? CUDA_ERROR_NOT_SUPPORTED
                   : s->real.cuMemAllocPitch(dptr, pitch, width_bytes, height, element_bytes);
}

CUresult cuArrayCreate(CUarray* array, const void* legacy_descriptor) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuArrayCreate == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  return Active(s) ? CUDA_ERROR_NOT_SUPPORTED : s->real.cuArrayCreate(array, legacy_descriptor);
}

CUresult cuArray3DCreate(CUarray* array, const void* legacy_descriptor) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuArray3DCreate == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  return Active(s) ? CUDA_ERROR_NOT_SUPPORTED : s->real.cuArray3DCreate(array, legacy_descriptor);
}

CUresult cuMemFree_v2(CUdeviceptr dptr) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemFree_v2 == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemFree_v2(dptr);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::FreeAllocation(*s, dptr, false, nullptr);
  }
  return r;
}

// A stream-ordered free completes when the stream reaches it, and its memory then stays in the
// pool: it is counted until a synchronisation releases it (PoolsSynchronised).
CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemFreeAsync == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemFreeAsync(dptr, stream);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::FreeAllocation(*s, dptr, true, stream);
  }
  return r;
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemFreeAsync_ptsz == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemFreeAsync_ptsz(dptr, stream);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::FreeAllocation(*s, dptr, true, stream);
  }
  return r;
}

// Synchronisations: where the driver releases pool memory above the release threshold.
CUresult cuStreamSynchronize(CUstream stream) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuStreamSynchronize);
  const CUresult r = s->real.cuStreamSynchronize(stream);
  if (r == CUDA_SUCCESS) gpuslice::shim::PoolsSynchronised(*s, stream, false, true);
  return r;
}

CUresult cuStreamSynchronize_ptsz(CUstream stream) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuStreamSynchronize_ptsz);
  const CUresult r = s->real.cuStreamSynchronize_ptsz(stream);
  if (r == CUDA_SUCCESS) gpuslice::shim::PoolsSynchronised(*s, stream, false, true);
  return r;
}

CUresult cuCtxSynchronize() noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxSynchronize);
  const CUresult r = s->real.cuCtxSynchronize();
  if (r == CUDA_SUCCESS) {
    gpuslice::shim::PoolsSynchronised(*s, nullptr, true, true);
    gpuslice::shim::ArbiterAfterContextSync(*s);
  }
  return r;
}

CUresult cuCtxSynchronize_v2(CUcontext context) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxSynchronize_v2);
  const CUresult r = s->real.cuCtxSynchronize_v2(context);
  if (r == CUDA_SUCCESS) gpuslice::shim::PoolsSynchronised(*s, nullptr, true, true);
  return r;
}

// An event covers some streams' work, not necessarily the frees pending: those stay counted.
CUresult cuEventSynchronize(CUevent event) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuEventSynchronize);
  const CUresult r = s->real.cuEventSynchronize(event);
  if (r == CUDA_SUCCESS) gpuslice::shim::PoolsSynchronised(*s, nullptr, false, false);
  return r;
}

CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemPoolCreate == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemPoolCreate(pool, props);
  if (r == CUDA_SUCCESS && Active(s) && pool != nullptr && props != nullptr) {
    // Pinned pools at a host location hold host memory. Managed pools are GPU memory wherever
    // their location points (as cuMemAllocManaged is counted): their device, else the current.
    const bool device_location = props->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
    const bool managed = props->allocType == CU_MEM_ALLOCATION_TYPE_MANAGED;
    CUdevice current = -1;
    if (!device_location && managed && s->real.cuCtxGetDevice != nullptr &&
        s->real.cuCtxGetDevice(&current) != CUDA_SUCCESS) {
      current = -1;
    }
    gpuslice::shim::LearnPool(*s, *pool, device_location ? props->location.id : current,
                              device_location || managed);
  }
  return r;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemPoolDestroy == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemPoolDestroy(pool);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::TrimPool(*s, pool, 0, true);  // outstanding allocations go as they are freed
  }
  return r;
}

CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attribute,
                               void* value) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemPoolSetAttribute);
  const CUresult r = s->real.cuMemPoolSetAttribute(pool, attribute, value);
  if (r == CUDA_SUCCESS && Active(s) && attribute == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD &&
      value != nullptr) {
    try {
      std::lock_guard<std::mutex> lock(s->pool_mutex);
      s->pools[pool].threshold = *static_cast<const cuuint64_t*>(value);
    } catch (...) {
      // Unrecorded threshold: 0, so the shim gives back less at a sync, never more.
    }
  }
  return r;
}

CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep_bytes) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemPoolTrimTo);
  const CUresult r = s->real.cuMemPoolTrimTo(pool, keep_bytes);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::TrimPool(*s, pool, keep_bytes, false);
  }
  return r;
}

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDeviceGetDefaultMemPool);
  const CUresult r = s->real.cuDeviceGetDefaultMemPool(pool, device);
  if (r == CUDA_SUCCESS && Active(s) && pool != nullptr) {
    gpuslice::shim::LearnPool(*s, *pool, device, true);
  }
  return r;
}

CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDeviceGetMemPool);
  return s->real.cuDeviceGetMemPool(pool, device);  // a pool set by the application: as created
}

// Virtual memory management --------------------------------------------------------------------

CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t bytes,
                     const CUmemAllocationProp* prop, unsigned long long flags) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemCreate == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  // Only device-located physical memory counts; host (NUMA) locations pass through.
  if (!Active(s) || prop == nullptr || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    return s->real.cuMemCreate(handle, bytes, prop, flags);
  }
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  if (handle == nullptr || s->real.cuMemRelease == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::uint32_t entry = 0;
  if (!gpuslice::shim::EntryOf(*s, prop->location.id, &entry)) return CUDA_ERROR_OUT_OF_MEMORY;
  if (!gpuslice::shim::Reserve(*s, entry, bytes)) return CUDA_ERROR_OUT_OF_MEMORY;
  const CUresult r = s->real.cuMemCreate(handle, bytes, prop, flags);
  if (r != CUDA_SUCCESS) {
    gpuslice::shim::Unreserve(*s, entry, bytes);
    return r;
  }
  try {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    s->vmm[*handle] = {entry, bytes, 1, true, false};
  } catch (...) {
    s->real.cuMemRelease(*handle);
    gpuslice::shim::Unreserve(*s, entry, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return CUDA_SUCCESS;
}

// The memory lives on while mapped or retained: released, it stops counting only with the last
// reference (DropVmmReference).
CUresult cuMemRelease(CUmemGenericAllocationHandle handle) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemRelease == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMemRelease(handle);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::DropVmmReference(*s, handle);
  }
  return r;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemMap);
  if (!Active(s)) return s->real.cuMemMap(ptr, size, offset, handle, flags);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  // An imported handle is charged to this process at its first mapping, by the size mapped.
  bool known = false;
  bool charge_now = false;
  {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    if (auto it = s->vmm.find(handle); it != s->vmm.end()) {
      known = true;
      charge_now = !it->second.charged;
    }
  }
  std::uint32_t entry = 0;
  if (charge_now) {
    bool listed = false;
    if (const CUresult rc = gpuslice::shim::CurrentEntry(*s, &entry, &listed); rc != 0) return rc;
    if (!listed || !gpuslice::shim::Reserve(*s, entry, size)) return CUDA_ERROR_OUT_OF_MEMORY;
  }
  const CUresult r = s->real.cuMemMap(ptr, size, offset, handle, flags);
  if (r != CUDA_SUCCESS) {
    if (charge_now) gpuslice::shim::Unreserve(*s, entry, size);
    return r;
  }
  if (!known) return r;  // host memory, or not created through the shim
  try {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    gpuslice::shim::VmmRecord& record = s->vmm[handle];
    if (charge_now && !record.charged) {
      record.charged = true;
      record.entry = entry;
      record.bytes = size;
    } else if (charge_now) {
      gpuslice::shim::Unreserve(*s, entry, size);  // another thread charged it meanwhile
    }
    ++record.refs;
    s->vmm_mappings[ptr] = {size, handle};
  } catch (...) {
    // Untracked mapping: the handle's charge then ends at its last release (looser by the
    // mapping's lifetime only when memory is exhausted in the shim itself).
  }
  return r;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemUnmap);
  const CUresult r = s->real.cuMemUnmap(ptr, size);
  if (r != CUDA_SUCCESS || !Active(s) || s->broken) return r;
  constexpr int kMaxHandles = 64;
  std::uint64_t handles[kMaxHandles];
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    auto it = s->vmm_mappings.lower_bound(ptr);
    while (it != s->vmm_mappings.end() && it->first < ptr + size && count < kMaxHandles) {
      handles[count++] = it->second.second;
      it = s->vmm_mappings.erase(it);
    }
  }
  for (int i = 0; i < count; ++i) gpuslice::shim::DropVmmReference(*s, handles[i]);
  return r;
}

CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle* handle, void* addr) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemRetainAllocationHandle);
  const CUresult r = s->real.cuMemRetainAllocationHandle(handle, addr);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken && handle != nullptr) {
    gpuslice::shim::AddVmmReference(*s, *handle);  // released by a matching cuMemRelease
  }
  return r;
}

CUresult cuMemExportToShareableHandle(void* shareable_handle, CUmemGenericAllocationHandle handle,
                                      CUmemAllocationHandleType handle_type,
                                      unsigned long long flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemExportToShareableHandle);
  const CUresult r =
      s->real.cuMemExportToShareableHandle(shareable_handle, handle, handle_type, flags);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    if (auto it = s->vmm.find(handle); it != s->vmm.end()) it->second.exported = true;
  }
  return r;
}

CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle, void* os_handle,
                                        CUmemAllocationHandleType handle_type) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemImportFromShareableHandle);
  const CUresult r = s->real.cuMemImportFromShareableHandle(handle, os_handle, handle_type);
  if (r != CUDA_SUCCESS || !Active(s) || s->broken || handle == nullptr) return r;
  if (gpuslice::shim::AddVmmReference(*s, *handle)) return r;
  try {
    std::lock_guard<std::mutex> lock(s->vmm_mutex);
    s->vmm[*handle] = {0, 0, 1, false, false};  // charged at its first mapping
  } catch (...) {
    if (s->real.cuMemRelease != nullptr) s->real.cuMemRelease(*handle);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return r;
}

CUresult cuIpcOpenMemHandle(CUdeviceptr* dptr, CUipcMemHandle handle, unsigned int flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuIpcOpenMemHandle);
  return gpuslice::shim::OpenIpcMemory(
      dptr, [&] { return s->real.cuIpcOpenMemHandle(dptr, handle, flags); });
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr* dptr, CUipcMemHandle handle,
                               unsigned int flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuIpcOpenMemHandle_v2);
  return gpuslice::shim::OpenIpcMemory(
      dptr, [&] { return s->real.cuIpcOpenMemHandle_v2(dptr, handle, flags); });
}

// An imported pool pointer: charged to the importer (whole allocation) on the pool's GPU, until
// it frees the import (cuMemFree / cuMemFreeAsync), which unmaps it.
CUresult cuMemPoolImportPointer(CUdeviceptr* dptr, CUmemoryPool pool,
                                CUmemPoolPtrExportData* share_data) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuMemPoolImportPointer);
  const CUresult r = s->real.cuMemPoolImportPointer(dptr, pool, share_data);
  if (r != CUDA_SUCCESS || !Active(s) || dptr == nullptr) return r;
  auto unmap = [&] {
    if (s->real.cuMemFree_v2 != nullptr) s->real.cuMemFree_v2(*dptr);
  };
  int device = -1;
  {
    std::lock_guard<std::mutex> lock(s->pool_mutex);
    if (auto it = s->pools.find(pool); it != s->pools.end()) device = it->second.device;
  }
  std::uint32_t entry = 0;
  bool listed = false;
  size_t size = 0;
  if (device >= 0) {
    listed = gpuslice::shim::EntryOf(*s, device, &entry);
  } else if (gpuslice::shim::CurrentEntry(*s, &entry, &listed) != CUDA_SUCCESS) {
    listed = false;
  }
  if (s->broken || !listed || s->real.cuMemGetAddressRange_v2 == nullptr ||
      s->real.cuMemGetAddressRange_v2(nullptr, &size, *dptr) != CUDA_SUCCESS ||
      !gpuslice::shim::Reserve(*s, entry, size)) {
    unmap();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (!s->allocations.Insert(AllocationKind::kDevicePointer, *dptr,
                             {entry, size, nullptr, nullptr})) {
    unmap();
    gpuslice::shim::Unreserve(*s, entry, size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return r;
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuIpcCloseMemHandle);
  const CUresult r = s->real.cuIpcCloseMemHandle(dptr);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::ForgetAllocation(*s, AllocationKind::kIpcPointer, dptr);
  }
  return r;
}

// Graph memory: allocation nodes are charged to their GPU at the exec's first launch and stay
// charged until the exec is destroyed (the graph's pool keeps the memory between launches).
CUresult cuGraphAddMemAllocNode(CUgraphNode* node, CUgraph graph, const CUgraphNode* dependencies,
                                size_t dependency_count,
                                CUDA_MEM_ALLOC_NODE_PARAMS* params) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphAddMemAllocNode);
  auto add = [&] {
    return s->real.cuGraphAddMemAllocNode(node, graph, dependencies, dependency_count, params);
  };
  if (!Active(s) || params == nullptr ||
      params->poolProps.location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    return add();
  }
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  std::uint32_t entry = 0;
  if (!gpuslice::shim::EntryOf(*s, params->poolProps.location.id, &entry)) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // a GPU the container was not given
  }
  const CUresult r = add();
  if (r != CUDA_SUCCESS) return r;
  try {
    std::lock_guard<std::mutex> lock(s->graph_mutex);
    s->graph_allocations[graph].push_back({entry, params->bytesize});
    s->graphs_allocate.store(true, std::memory_order_relaxed);
  } catch (...) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // the node exists but the graph will not be launched
  }
  return r;
}

CUresult cuGraphInstantiate(CUgraphExec* exec, CUgraph graph, CUgraphNode* error_node,
                            char* log_buffer, size_t log_bytes) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphInstantiate);
  return gpuslice::shim::InstantiateGraph(exec, graph, [&] {
    return s->real.cuGraphInstantiate(exec, graph, error_node, log_buffer, log_bytes);
  });
}

CUresult cuGraphInstantiate_v2(CUgraphExec* exec, CUgraph graph, CUgraphNode* error_node,
                               char* log_buffer, size_t log_bytes) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphInstantiate_v2);
  return gpuslice::shim::InstantiateGraph(exec, graph, [&] {
    return s->real.cuGraphInstantiate_v2(exec, graph, error_node, log_buffer, log_bytes);
  });
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec* exec, CUgraph graph,
                                     unsigned long long flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphInstantiateWithFlags);
  return gpuslice::shim::InstantiateGraph(
      exec, graph, [&] { return s->real.cuGraphInstantiateWithFlags(exec, graph, flags); });
}

CUresult cuGraphInstantiateWithParams(CUgraphExec* exec, CUgraph graph,
                                      CUDA_GRAPH_INSTANTIATE_PARAMS* params) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphInstantiateWithParams);
  return gpuslice::shim::InstantiateGraph(
      exec, graph, [&] { return s->real.cuGraphInstantiateWithParams(exec, graph, params); });
}

CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec* exec, CUgraph graph,
                                           CUDA_GRAPH_INSTANTIATE_PARAMS* params) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphInstantiateWithParams_ptsz);
  return gpuslice::shim::InstantiateGraph(
      exec, graph, [&] { return s->real.cuGraphInstantiateWithParams_ptsz(exec, graph, params); });
}

CUresult cuGraphExecDestroy(CUgraphExec exec) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuGraphExecDestroy);
  const CUresult r = s->real.cuGraphExecDestroy(exec);
  if (r != CUDA_SUCCESS || !Active(s) || !s->graphs_allocate.load(std::memory_order_relaxed)) {
    return r;
  }
  std::vector<gpuslice::shim::GraphCharge> release;
  {
    std::lock_guard<std::mutex> lock(s->graph_mutex);
    auto it = s->graph_execs.find(exec);
    if (it == s->graph_execs.end()) return r;
    if (it->second.charged) release.swap(it->second.charges);
    s->graph_execs.erase(it);
  }
  for (const auto& c : release) gpuslice::shim::Unreserve(*s, c.entry, c.bytes);
  return r;
}

// Arrays ------------------------------------------------------------------------------------------

CUresult cuArrayCreate_v2(CUarray* array, const CUDA_ARRAY_DESCRIPTOR* descriptor) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuArrayCreate_v2 == nullptr || s->real.cuArrayDestroy == nullptr) {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (!Active(s)) return s->real.cuArrayCreate_v2(array, descriptor);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  if (array == nullptr || descriptor == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const std::uint64_t bytes = gpuslice::shim::ArrayBytes(
      descriptor->Width, descriptor->Height, 1, descriptor->Format, descriptor->NumChannels);
  return gpuslice::shim::CountedArray(
      *s, AllocationKind::kArray, bytes,
      [&] { return s->real.cuArrayCreate_v2(array, descriptor); },
      [&] { return gpuslice::shim::Key(*array); }, [&] { s->real.cuArrayDestroy(*array); });
}

CUresult cuArray3DCreate_v2(CUarray* array, const CUDA_ARRAY3D_DESCRIPTOR* descriptor) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuArray3DCreate_v2 == nullptr || s->real.cuArrayDestroy == nullptr) {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (!Active(s)) return s->real.cuArray3DCreate_v2(array, descriptor);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  if (array == nullptr || descriptor == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const std::uint64_t bytes =
      gpuslice::shim::ArrayBytes(descriptor->Width, descriptor->Height, descriptor->Depth,
                                 descriptor->Format, descriptor->NumChannels);
  return gpuslice::shim::CountedArray(
      *s, AllocationKind::kArray, bytes,
      [&] { return s->real.cuArray3DCreate_v2(array, descriptor); },
      [&] { return gpuslice::shim::Key(*array); }, [&] { s->real.cuArrayDestroy(*array); });
}

CUresult cuArrayDestroy(CUarray array) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuArrayDestroy == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuArrayDestroy(array);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::ForgetAllocation(*s, AllocationKind::kArray, gpuslice::shim::Key(array));
  }
  return r;
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray* array, const CUDA_ARRAY3D_DESCRIPTOR* descriptor,
                                unsigned int levels) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMipmappedArrayCreate == nullptr ||
      s->real.cuMipmappedArrayDestroy == nullptr) {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (!Active(s)) return s->real.cuMipmappedArrayCreate(array, descriptor, levels);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  if (array == nullptr || descriptor == nullptr) return CUDA_ERROR_INVALID_VALUE;
  return gpuslice::shim::CountedArray(
      *s, AllocationKind::kMipmappedArray, gpuslice::shim::MipmappedBytes(*descriptor, levels),
      [&] { return s->real.cuMipmappedArrayCreate(array, descriptor, levels); },
      [&] { return gpuslice::shim::Key(*array); },
      [&] { s->real.cuMipmappedArrayDestroy(*array); });
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray array) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMipmappedArrayDestroy == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuMipmappedArrayDestroy(array);
  if (r == CUDA_SUCCESS && Active(s) && !s->broken) {
    gpuslice::shim::ForgetAllocation(*s, AllocationKind::kMipmappedArray,
                                     gpuslice::shim::Key(array));
  }
  return r;
}

// What the container sees ------------------------------------------------------------------------

CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuMemGetInfo_v2 == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  size_t real_free = 0;
  size_t real_total = 0;
  const CUresult r = s->real.cuMemGetInfo_v2(&real_free, &real_total);
  if (r != CUDA_SUCCESS || !Active(s)) {
    if (free_bytes != nullptr) *free_bytes = real_free;
    if (total_bytes != nullptr) *total_bytes = real_total;
    return r;
  }
  std::uint64_t limit = 0;
  std::uint64_t used = 0;
  std::uint32_t entry = 0;
  bool listed = false;
  if (!s->broken && gpuslice::shim::CurrentEntry(*s, &entry, &listed) == CUDA_SUCCESS && listed) {
    limit = s->limit_bytes[entry];
    s->region.ReclaimDead(gpuslice::shim::Slot(*s));
    used = s->region.Usage(entry);
  }
  const std::uint64_t available = used < limit ? limit - used : 0;
  if (free_bytes != nullptr) *free_bytes = available < real_free ? available : real_free;
  if (total_bytes != nullptr) *total_bytes = limit;
  return r;
}

CUresult cuMemGetInfo(unsigned int* free_bytes, unsigned int* total_bytes) noexcept {
  size_t free64 = 0;
  size_t total64 = 0;
  const CUresult r = cuMemGetInfo_v2(&free64, &total64);
  if (r == CUDA_SUCCESS) {
    if (free_bytes != nullptr)
      *free_bytes = free64 > UINT_MAX ? UINT_MAX : static_cast<unsigned>(free64);
    if (total_bytes != nullptr)
      *total_bytes = total64 > UINT_MAX ? UINT_MAX : static_cast<unsigned>(total64);
  }
  return r;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) noexcept {
  ShimState* s = gpuslice::shim::LoadedState();
  if (s == nullptr || s->real.cuDeviceTotalMem_v2 == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const CUresult r = s->real.cuDeviceTotalMem_v2(bytes, device);
  if (r != CUDA_SUCCESS || !Active(s) || bytes == nullptr) return r;
  std::uint32_t entry = 0;
  *bytes = !s->broken && gpuslice::shim::EntryOf(*s, device, &entry) ? s->limit_bytes[entry] : 0;
  return r;
}

CUresult cuDeviceTotalMem(unsigned int* bytes, CUdevice device) noexcept {
  size_t bytes64 = 0;
  const CUresult r = cuDeviceTotalMem_v2(&bytes64, device);
  if (r == CUDA_SUCCESS && bytes != nullptr) {
    *bytes = bytes64 > UINT_MAX ? UINT_MAX : static_cast<unsigned>(bytes64);
  }
  return r;
}

// Contexts ----------------------------------------------------------------------------------------

CUresult cuCtxCreate(CUcontext* context, unsigned int flags, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxCreate);
  return gpuslice::shim::CreateContext(context, device,
                                       [&] { return s->real.cuCtxCreate(context, flags, device); });
}

CUresult cuCtxCreate_v2(CUcontext* context, unsigned int flags, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxCreate_v2);
  return gpuslice::shim::CreateContext(
      context, device, [&] { return s->real.cuCtxCreate_v2(context, flags, device); });
}

CUresult cuCtxCreate_v3(CUcontext* context, CUexecAffinityParam* affinity, int affinity_count,
                        unsigned int flags, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxCreate_v3);
  return gpuslice::shim::CreateContext(context, device, [&] {
    return s->real.cuCtxCreate_v3(context, affinity, affinity_count, flags, device);
  });
}

CUresult cuCtxCreate_v4(CUcontext* context, CUctxCreateParams* params, unsigned int flags,
                        CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxCreate_v4);
  return gpuslice::shim::CreateContext(
      context, device, [&] { return s->real.cuCtxCreate_v4(context, params, flags, device); });
}

CUresult cuCtxDestroy(CUcontext context) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxDestroy);
  return gpuslice::shim::DestroyContext(context, [&] { return s->real.cuCtxDestroy(context); });
}

CUresult cuCtxDestroy_v2(CUcontext context) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuCtxDestroy_v2);
  return gpuslice::shim::DestroyContext(context, [&] { return s->real.cuCtxDestroy_v2(context); });
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDevicePrimaryCtxRetain);
  if (!Active(s)) return s->real.cuDevicePrimaryCtxRetain(context, device);
  if (s->broken) return CUDA_ERROR_OUT_OF_MEMORY;
  std::uint32_t entry = 0;
  if (device < 0 || device >= gpuslice::shim::kMaxCudaDevices ||
      !gpuslice::shim::EntryOf(*s, device, &entry)) {
    return device < 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_OUT_OF_MEMORY;
  }
  // The overhead counts once per device per process, from the first retain to the last release.
  std::lock_guard<std::mutex> lock(s->context_mutex);
  const std::uint64_t overhead = s->limits.context_overhead_bytes;
  const bool first = s->primary_refs[device] == 0;
  if (first && !gpuslice::shim::Reserve(*s, entry, overhead)) return CUDA_ERROR_OUT_OF_MEMORY;
  const CUresult r = s->real.cuDevicePrimaryCtxRetain(context, device);
  if (r != CUDA_SUCCESS) {
    if (first) gpuslice::shim::Unreserve(*s, entry, overhead);
    return r;
  }
  if (first) {
    s->primary_overhead[device] = overhead;
    s->primary_context[device] = context != nullptr ? *context : nullptr;
  }
  ++s->primary_refs[device];
  return r;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDevicePrimaryCtxRelease);
  return gpuslice::shim::ReleasePrimary(device, false,
                                        [&] { return s->real.cuDevicePrimaryCtxRelease(device); });
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDevicePrimaryCtxRelease_v2);
  return gpuslice::shim::ReleasePrimary(
      device, false, [&] { return s->real.cuDevicePrimaryCtxRelease_v2(device); });
}

CUresult cuDevicePrimaryCtxReset(CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDevicePrimaryCtxReset);
  return gpuslice::shim::ReleasePrimary(device, true,
                                        [&] { return s->real.cuDevicePrimaryCtxReset(device); });
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice device) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuDevicePrimaryCtxReset_v2);
  return gpuslice::shim::ReleasePrimary(device, true,
                                        [&] { return s->real.cuDevicePrimaryCtxReset_v2(device); });
}

// Launches: every one passes AdmitLaunch (launch_gate.h) --------------------------------------

// Each gated launch symbol is an assembly entry (gated_trampoline.h) that runs AdmitLaunch's fast
// path and jumps to the real function; anything else jumps to the C++ wrapper below, renamed
// gpuslice_gated_<name> (hidden), which is the reference: it runs AdmitLaunch in full, calls the
// real function and records it in the entry's slot. Without trampolines (not x86-64) the wrapper
// is the exported symbol itself.
#if GPUSLICE_HAS_GATED_TRAMPOLINES
#define GPUSLICE_GATED_NAME(fn) gpuslice_gated_##fn
#define GPUSLICE_GATED_ENTRY(fn, params)                                              \
  __attribute__((visibility("hidden"))) CUresult gpuslice_gated_##fn params noexcept; \
  __attribute__((visibility("hidden"))) void* gpuslice_gated_real_##fn = nullptr;     \
  GPUSLICE_GATED_TRAMPOLINE(fn, gpuslice_gated_real_##fn, gpuslice_gated_##fn)
#define GPUSLICE_GATED_REMEMBER(fn) \
  __atomic_store_n(&gpuslice_gated_real_##fn, reinterpret_cast<void*>(s->real.fn), __ATOMIC_RELEASE)
#else
#define GPUSLICE_GATED_NAME(fn) fn
#define GPUSLICE_GATED_ENTRY(fn, params)
#define GPUSLICE_GATED_REMEMBER(fn) static_cast<void>(0)
#endif

GPUSLICE_GATED_ENTRY(cuLaunchKernel,
                     (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                      unsigned int, unsigned int, unsigned int, CUstream, void**, void**))
GPUSLICE_GATED_ENTRY(cuLaunchKernel_ptsz,
                     (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                      unsigned int, unsigned int, unsigned int, CUstream, void**, void**))
GPUSLICE_GATED_ENTRY(cuLaunchKernelEx, (const CUlaunchConfig*, CUfunction, void**, void**))
GPUSLICE_GATED_ENTRY(cuLaunchKernelEx_ptsz, (const CUlaunchConfig*, CUfunction, void**, void**))
GPUSLICE_GATED_ENTRY(cuLaunchCooperativeKernel,
                     (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                      unsigned int, unsigned int, unsigned int, CUstream, void**))
GPUSLICE_GATED_ENTRY(cuLaunchCooperativeKernel_ptsz,
                     (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                      unsigned int, unsigned int, unsigned int, CUstream, void**))
GPUSLICE_GATED_ENTRY(cuLaunch, (CUfunction))
GPUSLICE_GATED_ENTRY(cuLaunchGrid, (CUfunction, int, int))
GPUSLICE_GATED_ENTRY(cuLaunchGridAsync, (CUfunction, int, int, CUstream))
GPUSLICE_GATED_ENTRY(cuLaunchCooperativeKernelMultiDevice,
                     (CUDA_LAUNCH_PARAMS*, unsigned int, unsigned int))

#define GPUSLICE_GATED_LAUNCH(fn, stream, call)                                 \
  GPUSLICE_REAL_OR_UNSUPPORTED(fn);                                             \
  GPUSLICE_GATED_REMEMBER(fn);                                                  \
  if (const CUresult admit = gpuslice::shim::AdmitLaunch(stream); admit != 0) { \
    return admit;                                                               \
  }                                                                             \
  return (call)

CUresult GPUSLICE_GATED_NAME(cuLaunchKernel)(CUfunction f, unsigned int grid_x, unsigned int grid_y,
                                             unsigned int grid_z, unsigned int block_x,
                                             unsigned int block_y, unsigned int block_z,
                                             unsigned int shared_bytes, CUstream stream,
                                             void** params, void** extra) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchKernel, stream,
                        s->real.cuLaunchKernel(f, grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                               shared_bytes, stream, params, extra));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchKernel_ptsz)(CUfunction f, unsigned int grid_x,
                                                  unsigned int grid_y, unsigned int grid_z,
                                                  unsigned int block_x, unsigned int block_y,
                                                  unsigned int block_z, unsigned int shared_bytes,
                                                  CUstream stream, void** params,
                                                  void** extra) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchKernel_ptsz, stream,
                        s->real.cuLaunchKernel_ptsz(f, grid_x, grid_y, grid_z, block_x, block_y,
                                                    block_z, shared_bytes, stream, params, extra));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchKernelEx)(const CUlaunchConfig* config, CUfunction f,
                                               void** params, void** extra) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchKernelEx, config != nullptr ? config->hStream : nullptr,
                        s->real.cuLaunchKernelEx(config, f, params, extra));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchKernelEx_ptsz)(const CUlaunchConfig* config, CUfunction f,
                                                    void** params, void** extra) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchKernelEx_ptsz, config != nullptr ? config->hStream : nullptr,
                        s->real.cuLaunchKernelEx_ptsz(config, f, params, extra));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchCooperativeKernel)(CUfunction f, unsigned int grid_x,
                                                        unsigned int grid_y, unsigned int grid_z,
                                                        unsigned int block_x, unsigned int block_y,
                                                        unsigned int block_z,
                                                        unsigned int shared_bytes, CUstream stream,
                                                        void** params) noexcept {
  GPUSLICE_GATED_LAUNCH(
      cuLaunchCooperativeKernel, stream,
      s->real.cuLaunchCooperativeKernel(f, grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                        shared_bytes, stream, params));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchCooperativeKernel_ptsz)(
    CUfunction f, unsigned int grid_x, unsigned int grid_y, unsigned int grid_z,
    unsigned int block_x, unsigned int block_y, unsigned int block_z, unsigned int shared_bytes,
    CUstream stream, void** params) noexcept {
  GPUSLICE_GATED_LAUNCH(
      cuLaunchCooperativeKernel_ptsz, stream,
      s->real.cuLaunchCooperativeKernel_ptsz(f, grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                             shared_bytes, stream, params));
}

// Legacy launches (deprecated since CUDA 4 but still exported): gated like the others, by the
// current context's GPU.
CUresult GPUSLICE_GATED_NAME(cuLaunch)(CUfunction f) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunch, nullptr, s->real.cuLaunch(f));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchGrid)(CUfunction f, int grid_width, int grid_height) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchGrid, nullptr, s->real.cuLaunchGrid(f, grid_width, grid_height));
}

CUresult GPUSLICE_GATED_NAME(cuLaunchGridAsync)(CUfunction f, int grid_width, int grid_height,
                                                CUstream stream) noexcept {
  GPUSLICE_GATED_LAUNCH(cuLaunchGridAsync, stream,
                        s->real.cuLaunchGridAsync(f, grid_width, grid_height, stream));
}

// A multi-device launch waits for the token of every arbitrated GPU its streams are on.
CUresult GPUSLICE_GATED_NAME(cuLaunchCooperativeKernelMultiDevice)(
    CUDA_LAUNCH_PARAMS* launch_params, unsigned int device_count, unsigned int flags) noexcept {
  GPUSLICE_REAL_OR_UNSUPPORTED(cuLaunchCooperativeKernelMultiDevice);
  GPUSLICE_GATED_REMEMBER(cuLaunchCooperativeKernelMultiDevice);
  if (const CUresult admit = gpuslice::shim::AdmitMultiDeviceLaunch(launch_params, device_count);
      admit != 0) {
    return admit;
  }
  return s->real.cuLaunchCooperativeKernelMultiDevice(launch_params, device_count, flags);
}

// A graph with allocation nodes takes its memory at its first launch: charged then.
#define GPUSLICE_CHARGED_GRAPH_LAUNCH(fn, graph, stream)                             \
  GPUSLICE_REAL_OR_UNSUPPORTED(fn);                                                  \
  if (s->graphs_allocate.load(std::memory_order_relaxed)) {                          \
    if (const CUresult rc = gpuslice::shim::ChargeGraphLaunch(*s, graph); rc != 0) { \
      return rc;                                                                     \
    }                                                                                \
  }                                                                                  \
  if (const CUresult admit = gpuslice::shim::AdmitLaunch(stream); admit != 0) {      \
    return admit;                                                                    \
  }                                                                                  \
  return s->real.fn(graph, stream)

CUresult cuGraphLaunch(CUgraphExec graph, CUstream stream) noexcept {
  GPUSLICE_CHARGED_GRAPH_LAUNCH(cuGraphLaunch, graph, stream);
}

CUresult cuGraphLaunch_ptsz(CUgraphExec graph, CUstream stream) noexcept {
  GPUSLICE_CHARGED_GRAPH_LAUNCH(cuGraphLaunch_ptsz, graph, stream);
}

}  // extern "C"
