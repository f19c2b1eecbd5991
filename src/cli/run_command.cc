// `gpuslice run`: GPU sharing without Kubernetes. Runs a command with the libcuda/NVML shims
// preloaded and a per-run limits file, so several jobs can share a workstation's GPUs, each held
// to its own memory limit. Also how the GPU test suite drives the shim.
//
// Where the shims are found, first match wins: --shim-dir; <binary dir>/../lib/gpuslice (an
// installed tree); the build tree's src/shim (compiled in as GPUSLICE_SHIM_BUILD_DIR).
//
// The supervisor (this process) also runs the memory watchdog (src/watchdog): it reads the
// driver's per-process usage through NVML, sums it over every process descended from it (it is
// a child subreaper, so daemonised descendants stay its descendants), and kills offenders past
// the grace period. The shim inside the command is only a first line: the command can point it
// at another limits file or bypass it; the watchdog's limit lives in this process.
//
// With --user (root only) the command runs as another user: the run directory and limits file
// belong to root, the accounting region to the user, the command gets no_new_privs (so its shim
// trusts only root-owned limits files, see src/shim/limits_loader.h) and cannot signal or trace
// this process.
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/run_as_user.h"
#include "core/status.h"
#include "shim/accounting_region.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/container_limits.h"
#include "shim/limits_loader.h"
#include "watchdog/memory_watchdog.h"
#include "watchdog/nvml_process_usage.h"

extern char** environ;

namespace gpuslice::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCudaShimName = shim::kCudaShimFileName;
constexpr const char* kNvmlShimName = shim::kNvmlShimFileName;

struct RunOptions {
  std::string gpus = "0";
  std::string memory;
  int compute_percent = 100;
  int compute_cap_percent = 0;
  std::string context_overhead = "0";
  std::string shim_dir;
  std::string cuda_driver;
  std::string nvml_driver;
  std::string state_dir;
  std::string watchdog = "kill";  // kill, report, off
  int watchdog_interval_ms = 500;
  int watchdog_grace_ms = 2000;
  std::string user;  // --user NAME|UID[:GID]; empty: the command runs as this process's user
  std::vector<std::string> command;
};

// The supervisor's watchdog over this run's processes; null when off or NVML is unavailable.
struct RunWatchdog {
  std::unique_ptr<watchdog::NvmlProcessUsage> nvml;
  watchdog::ProcfsProcessTable processes;
  watchdog::SigkillProcessKiller killer;
  watchdog::LogLineEventSink events{[](const std::string& line) { std::cerr << line << "\n"; }};
  SteadyClock clock;
  std::unique_ptr<watchdog::MemoryWatchdog> watchdog;
};

Result<watchdog::WatchdogOptions> WatchdogOptionsFrom(const RunOptions& options) {
  if (options.watchdog != "kill" && options.watchdog != "report" && options.watchdog != "off") {
    return InvalidArgument("--watchdog: '" + options.watchdog + "' (accepted: kill, report, off)");
  }
  watchdog::WatchdogOptions w;
  w.check_interval = std::chrono::milliseconds(options.watchdog_interval_ms);
  w.kill_grace = std::chrono::milliseconds(options.watchdog_grace_ms);
  w.kill = options.watchdog == "kill";
  if (Status status = w.Validate(); !status.ok()) {
    return InvalidArgument("--watchdog-interval-ms/--watchdog-grace-ms: " + status.message());
  }
  return w;
}

// Starts watching every process descended from this one, each GPU held to `memory_bytes`.
std::unique_ptr<RunWatchdog> StartWatchdog(const RunOptions& options,
                                           const watchdog::WatchdogOptions& watchdog_options,
                                           const Result<std::string>& nvml_driver,
                                           const std::vector<int>& gpus, std::uint64_t memory_bytes,
                                           const std::string& name) {
  if (options.watchdog == "off") return nullptr;
  if (!nvml_driver.ok()) {
    std::cerr << "gpuslice run: warning: no NVML, so no watchdog; the limit is the shim's only: "
              << nvml_driver.status().message() << "\n";
    return nullptr;
  }
  auto nvml = watchdog::NvmlProcessUsage::Open(*nvml_driver);
  if (!nvml.ok()) {
    std::cerr << "gpuslice run: warning: no watchdog: " << nvml.status().message() << "\n";
    return nullptr;
  }
  auto run = std::make_unique<RunWatchdog>();
  run->nvml = std::move(*nvml);
  run->watchdog = std::make_unique<watchdog::MemoryWatchdog>(
      watchdog_options, *run->nvml, run->processes, run->killer, run->events, run->clock);
  watchdog::WatchedContainer container;
  container.name = name;
  container.root_pid = static_cast<std::int32_t>(::getpid());
  for (int gpu : gpus) container.limit_bytes[static_cast<std::uint32_t>(gpu)] = memory_bytes;
  run->watchdog->Watch(container);
  run->watchdog->Start([](const Status& status) {
    std::cerr << "gpuslice run: watchdog: " << status.message() << "\n";
  });
  return run;
}

Result<std::vector<int>> ParseGpuList(const std::string& text) {
  std::vector<int> gpus;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value < 0 || value > 1023) {
      return InvalidArgument("--gpu: '" + item + "' is not a GPU index (e.g. --gpu 0 or 0,1)");
    }
    gpus.push_back(static_cast<int>(value));
  }
  if (gpus.empty()) return InvalidArgument("--gpu: give at least one GPU index");
  if (gpus.size() > shim::kMaxLimitedDevices) {
    return InvalidArgument("--gpu: at most 16 GPUs per run");
  }
  return gpus;
}

Result<fs::path> FindShimDir(const std::string& flag) {
  std::vector<fs::path> candidates;
  if (!flag.empty()) {
    candidates.push_back(flag);
  } else {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back(exe.parent_path() / ".." / "lib" / "gpuslice");
#ifdef GPUSLICE_SHIM_BUILD_DIR
    candidates.push_back(GPUSLICE_SHIM_BUILD_DIR);
#endif
  }
  for (const fs::path& dir : candidates) {
    std::error_code ec;
    if (fs::exists(dir / kCudaShimName, ec) && fs::exists(dir / kNvmlShimName, ec)) {
      return fs::weakly_canonical(dir, ec);
    }
  }
  std::string tried;
  for (const fs::path& dir : candidates) tried += " " + dir.string();
  return NotFound(std::string("cannot find ") + kCudaShimName + " and " + kNvmlShimName +
                  " (looked in:" + tried + "); pass --shim-dir");
}

// The absolute path the dynamic linker would load for `soname`, or an error.
Result<std::string> ResolveLibrary(const std::string& flag, const char* soname,
                                   const char* flag_name) {
  if (!flag.empty()) {
    if (flag.front() != '/') return InvalidArgument(std::string(flag_name) + " must be absolute");
    return flag;
  }
  void* handle = ::dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
  if (handle == nullptr) {
    return NotFound(std::string("cannot find the real ") + soname + " (" + ::dlerror() +
                    "); pass " + flag_name);
  }
  link_map* map = nullptr;
  std::string path;
  if (::dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr) {
    path = map->l_name;
  }
  ::dlclose(handle);
  if (path.empty() || path.front() != '/') {
    return NotFound(std::string("cannot locate ") + soname + " on disk; pass " + flag_name);
  }
  if (path.find("libgpuslice-") != std::string::npos) {
    return FailedPrecondition(std::string(soname) + " resolves to a gpuslice shim (" + path +
                              "); pass " + flag_name);
  }
  return path;
}

// UUIDs of `gpus` from NVML, so the shims match GPUs by identity; empty strings when NVML is
// unavailable (then they match by index).
std::vector<std::string> GpuUuids(const std::string& nvml_path, const std::vector<int>& gpus) {
  std::vector<std::string> uuids(gpus.size());
  void* nvml = ::dlopen(nvml_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (nvml == nullptr) return uuids;
  using InitFn = int (*)();
  using HandleFn = int (*)(unsigned, void**);
  using UuidFn = int (*)(void*, char*, unsigned);
  auto init = reinterpret_cast<InitFn>(::dlsym(nvml, "nvmlInit_v2"));
  auto handle_of = reinterpret_cast<HandleFn>(::dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2"));
  auto uuid_of = reinterpret_cast<UuidFn>(::dlsym(nvml, "nvmlDeviceGetUUID"));
  if (init != nullptr && handle_of != nullptr && uuid_of != nullptr && init() == 0) {
    for (std::size_t i = 0; i < gpus.size(); ++i) {
      void* device = nullptr;
      char uuid[96] = {};
      if (handle_of(static_cast<unsigned>(gpus[i]), &device) == 0 &&
          uuid_of(device, uuid, sizeof(uuid)) == 0) {
        uuids[i] = uuid;
      }
    }
  }
  // NVML stays loaded: nvmlShutdown is not worth a dlsym here and the process execs soon.
  return uuids;
}

template <std::size_t N>
Status CopyPath(const std::string& from, char (&to)[N], const char* what) {
  if (from.size() >= N) return InvalidArgument(std::string(what) + " path is too long: " + from);
  from.copy(to, N - 1);
  to[from.size()] = '\0';
  return Status::Ok();
}

// The checks the command's shim will make on `limits_path`, made here first so that a state
// directory the shim would refuse is a clear error before the command starts: under --user the
// file must be root's all the way up (and reachable by the user), else root's or this user's.
Status CheckLimitsFileAsTheShimWill(const fs::path& limits_path, const TargetUser* user) {
  const bool no_new_privs = user != nullptr || ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
  char why[512] = {};
  const int fd = shim::OpenTrustedLimitsFile(
      limits_path.c_str(),
      no_new_privs ? shim::LimitsFileOwners::kRootOnly : shim::LimitsFileOwners::kRootOrSelf,
      ::getuid(), why, sizeof(why));
  if (fd < 0) {
    return FailedPrecondition(
        std::string("--state-dir: the command's shim would refuse this run's limits file: ") + why +
        (user != nullptr ? " (use a directory owned by root such as the default /run/gpuslice)"
                         : ""));
  }
  ::close(fd);
  if (user == nullptr) return Status::Ok();
  return CheckReadableBy(limits_path, *user, "--state-dir: the command could not read its limits");
}

volatile sig_atomic_t g_child = 0;

// The GPU's compute arbiter, shared by every `gpuslice run` on that GPU under `base`: this run's
// request file (in its run directory) registered with the runs' shared referee (one of the
// supervisors runs it; the others take over when it ends). Sets the device's two paths.
Result<std::unique_ptr<shim::SharedReferee>> JoinComputeArbiter(const fs::path& base,
                                                                const std::string& gpu_name,
                                                                const fs::path& run_dir,
                                                                const TargetUser* run_as,
                                                                shim::DeviceLimit& d) {
  const fs::path requests = run_dir / ("compute-requests-" + gpu_name);
  if (const int rc = shim::ArbiterRegion::CreateRequests(requests.c_str(), 0600); rc != 0) {
    return Unavailable("cannot create the compute request file " + requests.string() + ": " +
                       std::strerror(rc));
  }
  // Under --user the command's shim writes its request file, as it writes its region.
  if (run_as != nullptr && ::lchown(requests.c_str(), run_as->uid, run_as->gid) != 0) {
    return Unavailable("cannot give the compute request file to uid " +
                       std::to_string(run_as->uid) + ": " + std::strerror(errno));
  }
  GPUSLICE_ASSIGN_OR_RETURN(
      std::unique_ptr<shim::SharedReferee> referee,
      shim::SharedReferee::Join((base / ("gpu-" + gpu_name)).string(), run_dir.filename().string(),
                                requests.string(), d.compute_percent, d.compute_cap_percent));
  GPUSLICE_RETURN_IF_ERROR(CopyPath(referee->grant_path(), d.arbiter_path, "compute-arbiter"));
  GPUSLICE_RETURN_IF_ERROR(CopyPath(requests.string(), d.requests_path, "compute-requests"));
  return referee;
}

void ForwardSignal(int signal) {
  if (g_child > 0) ::kill(g_child, signal);
}

Result<int> Run(const RunOptions& options) {
  if (options.command.empty()) return InvalidArgument("give the command to run after --");
  GPUSLICE_ASSIGN_OR_RETURN(std::vector<int> gpus, ParseGpuList(options.gpus));
  std::uint64_t memory_bytes = 0;
  if (!shim::ParseByteQuantity(options.memory, &memory_bytes) || memory_bytes == 0) {
    return InvalidArgument("--memory: '" + options.memory +
                           "' is not a memory size (e.g. 4Gi, 512Mi, 4294967296)");
  }
  std::uint64_t overhead_bytes = 0;
  if (!shim::ParseByteQuantity(options.context_overhead, &overhead_bytes)) {
    return InvalidArgument("--context-overhead: '" + options.context_overhead +
                           "' is not a memory size");
  }
  if (options.compute_percent < 1 || options.compute_percent > 100) {
    return InvalidArgument("--compute must be 1-100");
  }
  if (options.compute_cap_percent != 0 && (options.compute_cap_percent < options.compute_percent ||
                                           options.compute_cap_percent > 100)) {
    return InvalidArgument("--compute-cap must be between --compute and 100 (0: no cap)");
  }
  GPUSLICE_ASSIGN_OR_RETURN(const watchdog::WatchdogOptions watchdog_options,
                            WatchdogOptionsFrom(options));
  std::optional<TargetUser> user;
  if (!options.user.empty()) {
    if (::geteuid() != 0) {
      return FailedPrecondition(
          "--user needs root: the supervisor must own the run directory and become the user "
          "(run gpuslice run as root, e.g. with sudo, or leave out --user to run as yourself)");
    }
    GPUSLICE_ASSIGN_OR_RETURN(user, ResolveTargetUser(options.user));
  }
  const TargetUser* run_as = user ? &*user : nullptr;
  GPUSLICE_ASSIGN_OR_RETURN(fs::path shim_dir, FindShimDir(options.shim_dir));
  for (const char* shim_name : {kCudaShimName, kNvmlShimName}) {
    if (run_as == nullptr) break;
    GPUSLICE_RETURN_IF_ERROR(
        CheckReadableBy(shim_dir / shim_name, *run_as, "--user: the shim would not load"));
  }
  GPUSLICE_ASSIGN_OR_RETURN(std::string cuda_driver,
                            ResolveLibrary(options.cuda_driver, "libcuda.so.1", "--cuda-driver"));
  Result<std::string> nvml_driver =
      ResolveLibrary(options.nvml_driver, "libnvidia-ml.so.1", "--nvml-driver");
  const std::vector<std::string> uuids =
      nvml_driver.ok() ? GpuUuids(*nvml_driver, gpus) : std::vector<std::string>(gpus.size());

  // A private directory for this run's limits file and accounting region.
  fs::path base = options.state_dir;
  if (base.empty() && run_as != nullptr) {
    base = "/run/gpuslice";  // root's, searchable by the user
  } else if (base.empty()) {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    base = runtime != nullptr && runtime[0] == '/'
               ? fs::path(runtime) / "gpuslice"
               : fs::path("/tmp") / ("gpuslice-" + std::to_string(::getuid()));
  }
  std::error_code ec;
  if (!fs::exists(base, ec)) {
    fs::create_directories(base, ec);
    ::chmod(base.c_str(), run_as != nullptr ? 0711 : 0700);
  }
  std::string pattern = (base / "run-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Unavailable("cannot create a run directory under " + base.string() + ": " +
                       std::strerror(errno));
  }
  const fs::path run_dir = fs::weakly_canonical(fs::path(pattern), ec);
  // Under --user: root's, searchable but not listable or writable by the user, so the limits
  // file and the region cannot be replaced, renamed or removed.
  if (run_as != nullptr) ::chmod(run_dir.c_str(), 0711);
  const fs::path limits_path = run_dir / "limits";
  const fs::path region_path = run_dir / "accounting";

  shim::ContainerLimits limits;
  GPUSLICE_RETURN_IF_ERROR(CopyPath(region_path.string(), limits.region_path, "region"));
  GPUSLICE_RETURN_IF_ERROR(CopyPath(cuda_driver, limits.cuda_driver_path, "--cuda-driver"));
  if (nvml_driver.ok()) {
    GPUSLICE_RETURN_IF_ERROR(CopyPath(*nvml_driver, limits.nvml_driver_path, "--nvml-driver"));
  }
  limits.context_overhead_bytes = overhead_bytes;
  limits.device_count = static_cast<std::uint32_t>(gpus.size());
  std::vector<std::unique_ptr<shim::SharedReferee>> referees;  // for as long as the run lasts
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    shim::DeviceLimit& d = limits.devices[i];
    d.nvml_index = gpus[i];
    GPUSLICE_RETURN_IF_ERROR(CopyPath(uuids[i], d.uuid, "uuid"));
    d.memory_bytes = memory_bytes;
    d.compute_percent = static_cast<std::uint32_t>(options.compute_percent);
    d.compute_cap_percent = static_cast<std::uint32_t>(options.compute_cap_percent);
    GPUSLICE_ASSIGN_OR_RETURN(
        std::unique_ptr<shim::SharedReferee> referee,
        JoinComputeArbiter(base, uuids[i].empty() ? std::to_string(gpus[i]) : uuids[i], run_dir,
                           run_as, d));
    referees.push_back(std::move(referee));
  }
  GPUSLICE_RETURN_IF_ERROR(shim::WriteContainerLimitsFile(limits_path.string(), limits));
  if (Status trusted = CheckLimitsFileAsTheShimWill(limits_path, run_as); !trusted.ok()) {
    fs::remove_all(run_dir, ec);
    return trusted;
  }
  if (const int rc = shim::AccountingRegion::Create(region_path.c_str(), 0600); rc != 0) {
    return Unavailable("cannot create the accounting region " + region_path.string() + ": " +
                       std::strerror(rc));
  }
  // The shim must write the region (its slots and locks); only the user may, not every user:
  // another tenant pointing its shim at this run's limits file cannot open it.
  if (run_as != nullptr && ::lchown(region_path.c_str(), run_as->uid, run_as->gid) != 0) {
    fs::remove_all(run_dir, ec);
    return Unavailable("cannot give the accounting region to uid " + std::to_string(run_as->uid) +
                       ": " + std::strerror(errno));
  }

  // The child's environment: ours, plus the shims and the limits.
  std::vector<std::string> env;
  std::string preload =
      (shim_dir / kCudaShimName).string() + " " + (shim_dir / kNvmlShimName).string();
  std::string visible;
  bool all_uuids = true;
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    all_uuids = all_uuids && !uuids[i].empty();
  }
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    if (i > 0) visible += ",";
    visible += all_uuids ? uuids[i] : std::to_string(gpus[i]);
  }
  // Under --user, the user's identity replaces root's (as runuser does).
  std::vector<std::string> replaced = {
      "GPUSLICE_LIMITS_FILE=", "CUDA_VISIBLE_DEVICES=", "CUDA_DEVICE_ORDER="};
  if (run_as != nullptr) {
    replaced.insert(replaced.end(), {"XDG_RUNTIME_DIR=", "HOME=", "USER=", "LOGNAME="});
    if (!run_as->name.empty()) {
      env.insert(env.end(),
                 {"HOME=" + run_as->home, "USER=" + run_as->name, "LOGNAME=" + run_as->name});
    }
  }
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("LD_PRELOAD=", 0) == 0) {
      preload += " " + entry.substr(11);
      continue;
    }
    bool keep = true;
    for (const std::string& prefix : replaced) keep = keep && entry.rfind(prefix, 0) != 0;
    if (keep) env.push_back(entry);
  }
  env.push_back("LD_PRELOAD=" + preload);
  env.push_back("GPUSLICE_LIMITS_FILE=" + limits_path.string());
  env.push_back("CUDA_VISIBLE_DEVICES=" + visible);
  env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");  // indices as nvidia-smi numbers them

  std::vector<char*> argv;
  for (const std::string& a : options.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // Orphaned descendants are re-parented here, so the watchdog still sees them as the run's.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  Result<pid_t> started = StartCommand(options.command, argv.data(), envp.data(), env, run_as);
  if (!started.ok()) {
    fs::remove_all(run_dir, ec);
    return started.status();
  }
  const pid_t child = *started;
  g_child = child;
  struct sigaction forward {};
  forward.sa_handler = &ForwardSignal;
  ::sigaction(SIGINT, &forward, nullptr);
  ::sigaction(SIGTERM, &forward, nullptr);
  ::sigaction(SIGHUP, &forward, nullptr);
  std::unique_ptr<RunWatchdog> watchdog = StartWatchdog(
      options, watchdog_options, nvml_driver, gpus, memory_bytes, run_dir.filename().string());
  // Reap every descendant re-parented here until the command itself exits.
  int status = 0;
  for (;;) {
    int reaped_status = 0;
    const pid_t reaped = ::waitpid(-1, &reaped_status, 0);
    if (reaped < 0 && errno == EINTR) continue;
    if (reaped < 0) break;
    if (reaped == child) {
      status = reaped_status;
      break;
    }
  }
  g_child = 0;
  if (watchdog != nullptr) watchdog->watchdog->Stop();
  fs::remove_all(run_dir, ec);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Run a command with a hard GPU-memory limit (shared among its processes): the libcuda and "
      "NVML shims are preloaded and the GPUs report the limit as their memory.");
  cmd->add_option("--gpu", options->gpus, "GPU index or comma-separated indices (NVML numbering)")
      ->capture_default_str();
  cmd->add_option("--memory", options->memory, "Memory limit per GPU, e.g. 4Gi")->required();
  cmd->add_option("--compute", options->compute_percent,
                  "Share of GPU time in percent, 1-100: the weight among every gpuslice run on "
                  "the same GPU (work-conserving: all of it when nobody else wants it)")
      ->capture_default_str();
  cmd->add_option("--compute-cap", options->compute_cap_percent,
                  "Hard cap on GPU time in percent, even on an idle GPU (0: none)")
      ->capture_default_str();
  cmd->add_option("--context-overhead", options->context_overhead,
                  "Memory charged per CUDA context, e.g. 300Mi")
      ->capture_default_str();
  cmd->add_option("--shim-dir", options->shim_dir,
                  "Directory holding libgpuslice-cuda.so and libgpuslice-nvml.so");
  cmd->add_option(
      "--cuda-driver", options->cuda_driver,
      "Absolute path of the real libcuda.so.1 (default: as the dynamic linker finds it)");
  cmd->add_option("--nvml-driver", options->nvml_driver,
                  "Absolute path of the real libnvidia-ml.so.1");
  cmd->add_option("--state-dir", options->state_dir,
                  "Where this run's limits file and accounting region live "
                  "(default $XDG_RUNTIME_DIR/gpuslice or /tmp/gpuslice-<uid>)");
  cmd->add_option("--watchdog", options->watchdog,
                  "Out-of-process memory watchdog (NVML per-process usage of the command's "
                  "processes): kill (SIGKILL past the grace period), report (log only), off")
      ->capture_default_str();
  cmd->add_option("--watchdog-interval-ms", options->watchdog_interval_ms,
                  "How often the watchdog checks, 1-1000 ms")
      ->capture_default_str();
  cmd->add_option("--watchdog-grace-ms", options->watchdog_grace_ms,
                  "How long the run may stay over its limit before the watchdog kills")
      ->capture_default_str();
  cmd->add_option("--user", options->user,
                  "Run the command as this user (NAME or UID[:GID]; needs root): the limits "
                  "file and run directory stay root's, the command cannot change its limit or "
                  "signal the supervisor");
  cmd->add_option("command", options->command, "The command, after --")->required();
  cmd->callback([options, exit_code] {
    Result<int> result = Run(*options);
    if (!result.ok()) {
      std::cerr << "gpuslice run: " << result.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    *exit_code = *result;
  });
}

}  // namespace gpuslice::cli
