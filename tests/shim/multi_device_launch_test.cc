// cuLaunchCooperativeKernelMultiDevice under the arbiter (docs/shim.md, "Compute shares"): the
// launch runs on the device of every entry's stream, so it waits for the token of every
// arbitrated one, takes them in one global order (no deadlock between processes launching over
// the same GPUs in any parameter order), is counted and charged on each, and is not gated while
// recorded into a capture. The real shim on a two-GPU fake driver (tests/fakes/fake_cuda.cc: each
// stream belongs to its context's device, kernels add simulated time to their device), the GPUs'
// referees in the test process, other containers played by TenantGates. The shim reads its
// configuration once per process, so every scenario runs in a process of its own (a
// "threadsafe" death test: the binary re-executed for that test alone).
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "arbitrated_shim.h"

namespace {

using gpuslice::shim::ArbiterGrantPage;
using gpuslice::shim::ArbiterRequests;
using gpuslice::shim::GateDecision;
using gpuslice::shim::kNoTenant;
using gpuslice::shim::kTokenRelease;
using gpuslice::shim::MonotonicNowNs;
using gpuslice::shim::TokenHolder;
using gpuslice::shim::TokenWaiters;
using gpuslice::testing::ArbitratedShim;
using gpuslice::testing::ArbitratedShimOptions;
using gpuslice::testing::OtherTenant;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kKernelNs = 100'000;  // the fake's simulated kernel time (kernel-us=100)

// The shim's and the fake's entry points a scenario uses.
struct Api {
  CUresult (*launch_multi)(CUDA_LAUNCH_PARAMS*, unsigned, unsigned) = nullptr;
  CUresult (*retain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*set_current)(CUcontext) = nullptr;
  CUresult (*stream_create)(CUstream*, unsigned) = nullptr;
  CUresult (*begin_capture)(CUstream, CUstreamCaptureMode) = nullptr;
  CUresult (*end_capture)(CUstream, CUgraph*) = nullptr;
  CUresult (*ctx_synchronize)() = nullptr;
  std::uint64_t (*device_launches)(int) = nullptr;
  std::uint64_t (*device_busy_ns)(int) = nullptr;
  std::uint64_t (*captured_launches)() = nullptr;
  CUcontext ctx[2] = {};
  CUstream stream[2] = {};  // stream[i] on GPU i

  template <typename Fn>
  static void Get(void* handle, const char* name, Fn* fn) {
    *fn = reinterpret_cast<Fn>(::dlsym(handle, name));
  }
  // Empty when every entry point was found and both GPUs have a context and a stream.
  std::string Load(const ArbitratedShim& setup) {
    Get(setup.shim, "cuLaunchCooperativeKernelMultiDevice", &launch_multi);
    Get(setup.shim, "cuDevicePrimaryCtxRetain", &retain);
    Get(setup.shim, "cuCtxSetCurrent", &set_current);
    Get(setup.shim, "cuStreamCreate", &stream_create);
    Get(setup.shim, "cuStreamBeginCapture_v2", &begin_capture);
    Get(setup.shim, "cuStreamEndCapture", &end_capture);
    Get(setup.shim, "cuCtxSynchronize", &ctx_synchronize);
    Get(setup.fake, "gpuslice_fake_cuda_device_launches", &device_launches);
    Get(setup.fake, "gpuslice_fake_cuda_device_busy_ns", &device_busy_ns);
    Get(setup.fake, "gpuslice_fake_cuda_captured_launches", &captured_launches);
    if (launch_multi == nullptr || retain == nullptr || set_current == nullptr ||
        stream_create == nullptr || begin_capture == nullptr || end_capture == nullptr ||
        ctx_synchronize == nullptr || device_launches == nullptr || device_busy_ns == nullptr ||
        captured_launches == nullptr) {
      return "entry points missing";
    }
    for (int i = 0; i < 2; ++i) {
      if (retain(&ctx[i], i) != CUDA_SUCCESS || set_current(ctx[i]) != CUDA_SUCCESS ||
          stream_create(&stream[i], 0) != CUDA_SUCCESS) {
        return "cannot make GPU " + std::to_string(i) + "'s context and stream";
      }
    }
    return set_current(ctx[0]) == CUDA_SUCCESS ? "" : "cannot make GPU 0 current";
  }
  // One kernel on each of `streams` (a multi-device cooperative launch).
  CUresult Launch(CUstream first, CUstream second) const {
    CUDA_LAUNCH_PARAMS params[2] = {};
    params[0].hStream = first;
    params[1].hStream = second;
    for (CUDA_LAUNCH_PARAMS& p : params) p.gridDimX = p.gridDimY = p.gridDimZ = p.blockDimX = 1;
    return launch_multi(params, 2, 0);
  }
};

std::uint64_t Token(const ArbiterGrantPage* page) {
  return __atomic_load_n(&page->token, __ATOMIC_ACQUIRE);
}

// Waits up to 10 s for `done`.
template <typename Pred>
bool WaitFor(Pred done) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// The other container's process takes GPU `gpu`'s token (alone there).
bool TakeToken(OtherTenant& other) {
  const ArbiterGrantPage* page = other.region.page();
  return WaitFor([&] {
    const std::uint32_t seen = __atomic_load_n(&page->seq, __ATOMIC_ACQUIRE);
    if (other.gate->BeforeLaunch(MonotonicNowNs()) == GateDecision::kWait) {
      other.region.WaitForChange(seen, 1'000'000);
    }
    return other.gate->holding();
  });
}

// This process's record in a request file (the one with its pid), read as the referee reads it.
bool OwnRecord(const std::string& requests_path, gpuslice::shim::ProcessRequest* out) {
  ArbiterRequests requests{};
  const int fd = ::open(requests_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool read = ::pread(fd, &requests, sizeof(requests), 0) == sizeof(requests);
  ::close(fd);
  for (const auto& r : requests.processes) {
    if (read && r.in_use == 1 && r.pid == ::getpid()) {
      *out = r;
      return true;
    }
  }
  return false;
}

// How many grants GPU `gpu`'s referee has made (its grant page's diagnostics counter).
std::uint64_t GrantsOf(const ArbitratedShim& setup, int gpu) {
  ArbiterGrantPage page{};
  const int fd =
      ::open(setup.grants.at(static_cast<std::size_t>(gpu)).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const bool read = ::pread(fd, &page, sizeof(page), 0) == sizeof(page);
  ::close(fd);
  return read ? page.grants : 0;
}

// Joins a thread however the scenario returns (a failed REQUIRE returns early).
struct JoinAtExit {
  std::thread& thread;
  ~JoinAtExit() {
    if (thread.joinable()) thread.join();
  }
};

#define REQUIRE(cond)                                                                      \
  do {                                                                                     \
    if (!(cond)) return std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond; \
  } while (0)

// The two GPUs in the order the shim takes their tokens (ascending grant-page identity).
struct GpuOrder {
  int first = 0;
  int later = 1;
};
GpuOrder OrderOf(const ArbitratedShim& setup) {
  struct stat a {
  }, b{};
  ::stat(setup.grants[0].c_str(), &a);
  ::stat(setup.grants[1].c_str(), &b);
  const bool swapped = a.st_dev != b.st_dev ? a.st_dev > b.st_dev : a.st_ino > b.st_ino;
  return swapped ? GpuOrder{1, 0} : GpuOrder{0, 1};
}

gpuslice::shim::ArbiterReferee& RefereeOf(ArbitratedShim& setup, int gpu) {
  return gpu == 0 ? *setup.referee : *setup.more_referees[0];
}

// Replaces GPU `gpu`'s referee by one with `params` over the same grant page (re-initialised in
// place, as an agent restart does) and registers both containers again; before anyone joined.
std::string RestartReferee(ArbitratedShim& setup, int gpu,
                           const gpuslice::shim::ArbiterParams& params) {
  std::unique_ptr<gpuslice::shim::ArbiterReferee>& slot =
      gpu == 0 ? setup.referee : setup.more_referees[0];
  slot.reset();
  const auto i = static_cast<std::size_t>(gpu);
  auto referee = gpuslice::shim::ArbiterReferee::Start(setup.grants[i], params);
  if (!referee.ok()) return referee.status().message();
  slot = std::move(*referee);
  if (!slot->AddTenant("this", setup.requests_of[i], 50, 0).ok() ||
      !slot->AddTenant("other", setup.other_requests_of[i], 50, 0).ok()) {
    return "cannot register the containers again";
  }
  return "";
}

// (a) Another container holds the later GPU's token: a launch over both GPUs takes the first
// GPU's token, waits for the later one's, then runs on both; both referees charge it (another
// waits on each) and it counts as one launch in each GPU's grant.
std::string WaitsForBothTokensAndIsChargedOnBoth(ArbitratedShim& setup, Api& api) {
  const auto [f, l] = OrderOf(setup);
  OtherTenant other[2];
  REQUIRE(other[0].Join(setup, {}, 0).empty() && other[1].Join(setup, {}, 1).empty());
  const ArbiterGrantPage* page[2] = {other[0].region.page(), other[1].region.page()};
  REQUIRE(TakeToken(other[l]));
  const std::uint64_t before0 = api.device_launches(0), before1 = api.device_launches(1);
  std::atomic<bool> launched{false};
  CUresult result = CUDA_ERROR_UNKNOWN;
  std::thread launcher([&] {
    api.set_current(api.ctx[0]);
    result = api.Launch(api.stream[0], api.stream[1]);
    launched = true;
  });
  const JoinAtExit join_launcher{launcher};
  // It holds the first GPU's token and waits for the later one's; nothing has run.
  const bool waiting = WaitFor([&] {
    const std::uint32_t holder = TokenHolder(Token(page[f]));
    return TokenWaiters(Token(page[l])) == 1 && holder != kNoTenant && holder != other[f].id;
  });
  REQUIRE(waiting);
  REQUIRE(!launched);
  REQUIRE(api.device_launches(0) == before0 && api.device_launches(1) == before1);
  // The other container now wants the first GPU too, then hands the later one on.
  REQUIRE(other[f].gate->BeforeLaunch(MonotonicNowNs()) == GateDecision::kWait);
  REQUIRE(WaitFor([&] { return TokenWaiters(Token(page[f])) == 1; }));
  REQUIRE(!launched);
  const std::uint64_t now = MonotonicNowNs();
  other[l].gate->Release(now, now, false);
  launcher.join();
  REQUIRE(result == CUDA_SUCCESS);
  REQUIRE(api.device_launches(0) == before0 + 1 && api.device_launches(1) == before1 + 1);
  REQUIRE(api.device_busy_ns(0) >= kKernelNs && api.device_busy_ns(1) >= kKernelNs);
  // It holds both; the other container wants the later GPU back.
  REQUIRE(other[l].gate->BeforeLaunch(MonotonicNowNs()) == GateDecision::kWait);
  REQUIRE(WaitFor([&] { return TokenWaiters(Token(page[l])) == 1; }));
  // Both turns end (another waits on each); a context synchronisation hands each token back.
  REQUIRE(WaitFor([&] {
    return (Token(page[0]) & kTokenRelease) != 0 && (Token(page[1]) & kTokenRelease) != 0;
  }));
  for (int i = 0; i < 2; ++i) {
    REQUIRE(api.set_current(api.ctx[i]) == CUDA_SUCCESS);
    REQUIRE(api.ctx_synchronize() == CUDA_SUCCESS);
  }
  REQUIRE(WaitFor([&] {
    return RefereeOf(setup, 0).ChargedNs("this") > 0 && RefereeOf(setup, 1).ChargedNs("this") > 0;
  }));
  gpuslice::shim::ProcessRequest mine0{}, mine1{};
  REQUIRE(OwnRecord(setup.requests_of[0], &mine0) && OwnRecord(setup.requests_of[1], &mine1));
  if (mine0.launches != 1 || mine1.launches != 1) {  // one launch in each GPU's grant
    return "launches counted in the grants of GPUs 0 and 1: " + std::to_string(mine0.launches) +
           " and " + std::to_string(mine1.launches) + " (1 each expected)";
  }
  return "";
}

// (f) The launch holds the first GPU's token and waits for the later one's past the first's turn
// and lease (30 ms on the first GPU, 60 s on the later one): the first GPU's referee revokes it
// and grants the other container. When
// the later token comes, the launch sees the revocation, hands the later token back (it must not
// wait for the first while holding the later one) and takes both again in order; it runs once,
// after the other container's turn on the first GPU.
std::string ARevokedEarlierTokenIsTakenAgainInOrder(ArbitratedShim& setup, Api& api) {
  const auto [f, l] = OrderOf(setup);
  gpuslice::shim::ArbiterParams long_lease;  // the later GPU's holder is never revoked here
  long_lease.lease_ns = 60'000'000'000;
  if (std::string error = RestartReferee(setup, l, long_lease); !error.empty()) return error;
  OtherTenant other[2];
  REQUIRE(other[0].Join(setup, {}, 0).empty() && other[1].Join(setup, {}, 1).empty());
  const ArbiterGrantPage* page[2] = {other[0].region.page(), other[1].region.page()};
  REQUIRE(TakeToken(other[l]));
  const std::uint64_t before0 = api.device_launches(0), before1 = api.device_launches(1);
  std::atomic<bool> launched{false};
  CUresult result = CUDA_ERROR_UNKNOWN;
  std::thread launcher([&] {
    api.set_current(api.ctx[0]);
    result = api.Launch(api.stream[0], api.stream[1]);
    launched = true;
  });
  const JoinAtExit join_launcher{launcher};
  std::uint32_t mine = kNoTenant;
  const bool waiting = WaitFor([&] {
    mine = TokenHolder(Token(page[f]));
    return TokenWaiters(Token(page[l])) == 1 && mine != kNoTenant && mine != other[f].id;
  });
  REQUIRE(waiting);
  // The other container wants the first GPU: the launch's turn there ends and, as it does not
  // come back, the referee revokes it and grants the other container.
  REQUIRE(other[f].gate->BeforeLaunch(MonotonicNowNs()) == GateDecision::kWait);
  REQUIRE(WaitFor([&] { return TokenHolder(Token(page[f])) == other[f].id; }));
  REQUIRE(!launched);
  // The later GPU is handed on: the launch takes it, sees the first one lost, hands the later one
  // back and waits for the first.
  std::uint64_t now = MonotonicNowNs();
  other[l].gate->Release(now, now, false);
  const bool back_in_order = WaitFor([&] {
    return TokenHolder(Token(page[l])) == kNoTenant && TokenWaiters(Token(page[f])) == 1;
  });
  REQUIRE(!launched);
  REQUIRE(api.device_launches(0) == before0 && api.device_launches(1) == before1);
  // The other container takes its turn on the first GPU and hands it on: the launch goes.
  REQUIRE(TakeToken(other[f]));
  now = MonotonicNowNs();
  other[f].gate->Release(now, now, false);
  launcher.join();
  REQUIRE(back_in_order);
  REQUIRE(result == CUDA_SUCCESS);
  REQUIRE(api.device_launches(0) == before0 + 1 && api.device_launches(1) == before1 + 1);
  return "";
}

// (b) Two processes of this container launch over GPUs 0 and 1 for 300 ms each, one with GPU 0's
// stream first, the other with GPU 1's; the tokens change hands at every turn's end (2 ms). The
// referees' lease is 60 s, so nothing but the order in which the shim takes the tokens keeps them
// from holding one each and waiting for the other until their 4 s maximum wait: both must be
// done within 3 s, with every launch run on both GPUs.
std::string OppositeParameterOrdersNeverDeadlock(ArbitratedShim& setup, Api& api) {
  constexpr std::uint64_t kRunNs = 300'000'000;
  std::uint64_t grants_before[2];
  for (int i = 0; i < 2; ++i) grants_before[i] = GrantsOf(setup, i);
  int barrier[2];
  REQUIRE(::pipe(barrier) == 0);
  pid_t children[2];
  for (int i = 0; i < 2; ++i) {
    children[i] = ::fork();
    REQUIRE(children[i] >= 0);
    if (children[i] != 0) continue;
    ::close(barrier[1]);
    char byte;
    if (::read(barrier[0], &byte, 1) < 0) ::_exit(4);  // EOF: go
    const std::uint64_t before0 = api.device_launches(0), before1 = api.device_launches(1);
    api.set_current(api.ctx[i]);
    std::uint64_t launches = 0;
    for (const std::uint64_t start = MonotonicNowNs(); MonotonicNowNs() - start < kRunNs;) {
      const CUresult r = i == 0 ? api.Launch(api.stream[0], api.stream[1])
                                : api.Launch(api.stream[1], api.stream[0]);
      if (r != CUDA_SUCCESS) ::_exit(2);
      ++launches;
    }
    const bool ran = api.device_launches(0) == before0 + launches &&
                     api.device_launches(1) == before1 + launches;
    ::_exit(ran ? 0 : 3);
  }
  ::close(barrier[0]);
  ::close(barrier[1]);  // both start
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  int status[2] = {0, 0};
  bool reaped[2] = {false, false};
  while (!(reaped[0] && reaped[1]) && Clock::now() < deadline) {
    for (int i = 0; i < 2; ++i) {
      if (!reaped[i]) reaped[i] = ::waitpid(children[i], &status[i], WNOHANG) == children[i];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string stuck;
  for (int i = 0; i < 2; ++i) {
    if (reaped[i]) continue;
    ::kill(children[i], SIGKILL);
    ::waitpid(children[i], &status[i], 0);
    stuck += "process " + std::to_string(i) + " did not finish its launches within 3 s; ";
  }
  if (!stuck.empty()) return stuck + "deadlock";
  for (int i = 0; i < 2; ++i) REQUIRE(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0);
  // The tokens did change hands all along (a turn is 2 ms): the two contended.
  const std::uint64_t grants0 = GrantsOf(setup, 0) - grants_before[0];
  const std::uint64_t grants1 = GrantsOf(setup, 1) - grants_before[1];
  if (grants0 < 20 || grants1 < 20) {
    return "the tokens changed hands only " + std::to_string(grants0) + " and " +
           std::to_string(grants1) + " times: the two did not contend";
  }
  return "";
}

// (c) GPU 1 is not arbitrated: a launch over both, made with GPU 1's context current, waits for
// GPU 0's token only (another container holds it), then runs on both.
std::string WaitsForTheArbitratedGpuOnly(ArbitratedShim& setup, Api& api) {
  OtherTenant other0;
  REQUIRE(other0.Join(setup, {}, 0).empty());
  const ArbiterGrantPage* page0 = other0.region.page();
  REQUIRE(TakeToken(other0));
  const std::uint64_t before0 = api.device_launches(0), before1 = api.device_launches(1);
  std::atomic<bool> launched{false};
  CUresult result = CUDA_ERROR_UNKNOWN;
  std::thread launcher([&] {
    api.set_current(api.ctx[1]);
    result = api.Launch(api.stream[1], api.stream[0]);
    launched = true;
  });
  const JoinAtExit join_launcher{launcher};
  const bool waiting = WaitFor([&] { return TokenWaiters(Token(page0)) == 1 || launched; });
  REQUIRE(waiting);
  REQUIRE(!launched);
  REQUIRE(api.device_launches(0) == before0 && api.device_launches(1) == before1);
  const std::uint64_t now = MonotonicNowNs();
  other0.gate->Release(now, now, false);
  launcher.join();
  REQUIRE(result == CUDA_SUCCESS);
  REQUIRE(api.device_launches(0) == before0 + 1 && api.device_launches(1) == before1 + 1);
  // Alone with GPU 0's token now: the next launch goes at once.
  REQUIRE(api.Launch(api.stream[0], api.stream[1]) == CUDA_SUCCESS);
  REQUIRE(api.device_launches(0) == before0 + 2 && api.device_launches(1) == before1 + 2);
  return "";
}

// (d) Other containers hold both tokens; a launch recorded into captures on both streams is
// neither gated (it returns at once, asks no referee for a token) nor run, and both captures
// stay valid.
std::string RecordedIntoACaptureIsNotGated(ArbitratedShim& setup, Api& api) {
  OtherTenant other0, other1;
  REQUIRE(other0.Join(setup, {}, 0).empty() && other1.Join(setup, {}, 1).empty());
  REQUIRE(TakeToken(other0) && TakeToken(other1));
  const std::uint64_t before0 = api.device_launches(0), before1 = api.device_launches(1);
  const std::uint64_t captured = api.captured_launches();
  REQUIRE(api.begin_capture(api.stream[0], CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
  REQUIRE(api.begin_capture(api.stream[1], CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
  REQUIRE(api.Launch(api.stream[0], api.stream[1]) == CUDA_SUCCESS);
  REQUIRE(api.captured_launches() == captured + 2);
  REQUIRE(api.device_launches(0) == before0 && api.device_launches(1) == before1);
  REQUIRE(TokenWaiters(Token(other0.region.page())) == 0);
  REQUIRE(TokenWaiters(Token(other1.region.page())) == 0);
  CUgraph graph0 = nullptr, graph1 = nullptr;
  REQUIRE(api.end_capture(api.stream[0], &graph0) == CUDA_SUCCESS);
  REQUIRE(api.end_capture(api.stream[1], &graph1) == CUDA_SUCCESS);
  return "";
}

// (e) Two children forked before this process ever launched (so before it took a record): each
// takes a record of its own. Record locks belong to the open file description the children
// inherit, so through the inherited descriptor both would lock, and share, one record (one holder
// id: both would launch on one token).
std::string ChildrenForkedBeforeTheFirstLaunchAreTenantsOfTheirOwn(ArbitratedShim& setup,
                                                                   Api& api) {
  int go[2];
  REQUIRE(::pipe(go) == 0);
  pid_t children[2];
  for (int i = 0; i < 2; ++i) {
    children[i] = ::fork();
    REQUIRE(children[i] >= 0);
    if (children[i] != 0) continue;
    ::close(go[1]);
    const CUresult r = api.Launch(api.stream[0], api.stream[1]);  // joins both GPUs' arbiters
    char byte;
    if (::read(go[0], &byte, 1) < 0) ::_exit(4);
    ::_exit(r == CUDA_SUCCESS ? 0 : 2);
  }
  ::close(go[0]);
  // Records the children hold on `gpu`, read as the referee reads them.
  auto records = [&](std::size_t gpu) {
    ArbiterRequests requests{};
    const int fd = ::open(setup.requests_of[gpu].c_str(), O_RDONLY | O_CLOEXEC);
    const bool read = fd >= 0 && ::pread(fd, &requests, sizeof(requests), 0) == sizeof(requests);
    if (fd >= 0) ::close(fd);
    int n = 0;
    for (const auto& r : requests.processes) {
      n += read && r.in_use == 1 && (r.pid == children[0] || r.pid == children[1]) ? 1 : 0;
    }
    return n;
  };
  // Both have joined once one holds the tokens and the other waits for them.
  const bool joined = WaitFor([&] { return records(0) == 2 && records(1) == 2; });
  const std::string error = joined ? ""
                                   : "the two children hold " + std::to_string(records(0)) +
                                         " and " + std::to_string(records(1)) +
                                         " records on GPUs 0 and 1 (one each expected)";
  ::close(go[1]);
  for (pid_t child : children) {
    int status = 0;
    ::waitpid(child, &status, 0);
    if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      return "a child's launch failed";
    }
  }
  return error;
}

#undef REQUIRE

// Runs `scenario` on a two-GPU container in this (re-executed) process; exits 0 when it passed,
// 1 with its failure on stderr otherwise.
void RunScenario(std::string (*scenario)(ArbitratedShim&, Api&), std::uint32_t unarbitrated_gpus,
                 std::uint64_t lease_ns) {
  std::string error;
  {
    ArbitratedShimOptions options;
    options.shim_path = GPUSLICE_CUDA_SHIM_PATH;
    options.fake_path = GPUSLICE_FAKE_CUDA_PATH;
    options.gpus = 2;
    options.unarbitrated_gpus = unarbitrated_gpus;
    options.fake_gpus_extra = ",kernel-us=100";
    options.params.lease_ns = lease_ns;
    ArbitratedShim setup;
    error = gpuslice::testing::SetUpArbitratedShim(options, &setup);
    Api api;
    if (error.empty()) error = api.Load(setup);
    if (error.empty()) error = scenario(setup, api);
  }
  if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
  std::fflush(stderr);
  std::_Exit(error.empty() ? 0 : 1);
}

constexpr std::uint64_t kLongLeaseNs = 60'000'000'000;  // only the test's own steps end a turn
constexpr std::uint64_t kShortLeaseNs = 30'000'000;     // a holder that does not come back

// One row per behaviour: the scenario (run in a child process), the GPUs left unarbitrated (bit
// per GPU) and the lease.
struct ScenarioRow {
  const char* name;
  std::string (*scenario)(ArbitratedShim&, Api&);
  std::uint32_t unarbitrated_gpus;
  std::uint64_t lease_ns;
};

class MultiDeviceLaunch : public ::testing::TestWithParam<ScenarioRow> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_P(MultiDeviceLaunch, Scenario) {
  const ScenarioRow& row = GetParam();
  EXPECT_EXIT(RunScenario(row.scenario, row.unarbitrated_gpus, row.lease_ns),
              ::testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(
    Rows, MultiDeviceLaunch,
    ::testing::Values(ScenarioRow{"WaitsForTheTokenOfEveryGpuAndIsChargedOnEach",
                                  &WaitsForBothTokensAndIsChargedOnBoth, 0, kLongLeaseNs},
                      ScenarioRow{"ARevokedEarlierTokenIsTakenAgainInOrder",
                                  &ARevokedEarlierTokenIsTakenAgainInOrder, 0, kShortLeaseNs},
                      ScenarioRow{"TwoProcessesInOppositeParameterOrdersNeverDeadlock",
                                  &OppositeParameterOrdersNeverDeadlock, 0, kLongLeaseNs},
                      ScenarioRow{"WaitsOnlyForTheArbitratedGpu", &WaitsForTheArbitratedGpuOnly,
                                  0b10, kLongLeaseNs},
                      ScenarioRow{"ALaunchRecordedIntoACaptureIsNotGated",
                                  &RecordedIntoACaptureIsNotGated, 0, kLongLeaseNs},
                      ScenarioRow{"ChildrenForkedBeforeTheFirstLaunchAreTenantsOfTheirOwn",
                                  &ChildrenForkedBeforeTheFirstLaunchAreTenantsOfTheirOwn, 0,
                                  kLongLeaseNs}),
    [](const ::testing::TestParamInfo<ScenarioRow>& row) { return std::string(row.param.name); });

}  // namespace
