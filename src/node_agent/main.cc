// gpuslice-node-agent: the composition root. Builds the real backend and MPS control, hands them
// to NodeAgent, and turns signals into reloads (SIGHUP) and a clean stop (SIGTERM, SIGINT).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <set>
#include <thread>

#include "backends/gpu_backend.h"
#include "backends/mps_control.h"
#include "backends/nvml_memory_limits.h"
#include "backends/simulated_memory_limits.h"
#include "isolation/mps_v3_process.h"
#include "isolation/oci_hook_cli.h"
#include "node_agent/cluster_side.h"
#include "node_agent/mps_daemon_supervisor.h"
#include "node_agent/no_gpu_backend.h"
#include "node_agent/node_agent.h"
#include "node_agent/oci_hook_install.h"
#include "node_agent/shim_injection.h"
#include "watchdog/memory_watchdog.h"
#include "watchdog/nvml_process_usage.h"

namespace {

// The MPS control command: the real daemon on a GPU node; with a simulated backend, the helper
// built beside this binary, so MPS supervision runs end to end without a GPU.
std::vector<std::string> DefaultMpsCommand(const std::string& backend) {
  if (backend.rfind("sim:", 0) == 0) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      const auto helper = self.parent_path() / "gpuslice-fake-mps-control";
      if (std::filesystem::exists(helper)) return {helper.string()};
    }
  }
  return gpuslice::ProcessMpsControl::NvidiaCommand();
}

// The out-of-process GPU-memory watchdog (src/watchdog, docs/shim.md). Containers are
// registered with Watch() by whatever creates their limits; unregistered processes are ignored.
struct MemoryWatchdogParts {
  std::unique_ptr<gpuslice::watchdog::NvmlProcessUsage> nvml;
  gpuslice::watchdog::ProcfsProcessTable processes;
  gpuslice::watchdog::SigkillProcessKiller killer;
  gpuslice::watchdog::LogLineEventSink events{
      [](const std::string& line) { spdlog::warn("{}", line); }};
  gpuslice::SteadyClock clock;
  std::unique_ptr<gpuslice::watchdog::MemoryWatchdog> watchdog;
};

std::unique_ptr<MemoryWatchdogParts> StartMemoryWatchdog(
    const std::string& mode, const std::string& nvml_library, int interval_ms, int grace_ms,
    gpuslice::watchdog::WatchdogEventSink* events) {
  gpuslice::watchdog::WatchdogOptions options;
  options.check_interval = std::chrono::milliseconds(interval_ms);
  options.kill_grace = std::chrono::milliseconds(grace_ms);
  options.kill = mode == "kill";
  if (mode == "off") return nullptr;
  auto nvml = gpuslice::watchdog::NvmlProcessUsage::Open(nvml_library);
  if (!nvml.ok()) {
    spdlog::warn("memory watchdog off: {}", nvml.status().message());
    return nullptr;
  }
  auto parts = std::make_unique<MemoryWatchdogParts>();
  parts->nvml = std::move(*nvml);
  parts->watchdog = std::make_unique<gpuslice::watchdog::MemoryWatchdog>(
      options, *parts->nvml, parts->processes, parts->killer,
      events != nullptr ? *events : parts->events, parts->clock);
  parts->watchdog->Start(
      [](const gpuslice::Status& s) { spdlog::warn("memory watchdog: {}", s.message()); });
  return parts;
}

// `gpuslice-node-agent hook create-container ...`: the OCI createContainer hook the CDI spec
// carries (docs/isolation.md). Reads the container state on stdin; exit 0 lets it start.
int RunHook(int argc, char** argv) {
  return gpuslice::RunOciHookCommand(argc, argv, std::cin, std::cerr);
}

// The simulated driver's memory limits: every whole GPU of a simulated r615+ node.
std::unique_ptr<gpuslice::MemoryLimitDriver> SimulatedMemoryLimits(gpuslice::GpuBackend& backend) {
  auto driver = backend.GetDriverInfo();
  auto gpus = backend.ListGpus();
  if (!driver.ok() || !gpus.ok() ||
      gpuslice::DriverMajorVersion(driver->driver_version) <
          gpuslice::kMinDriverMajorForDriverIsolation) {
    return nullptr;
  }
  std::set<std::string> whole;
  for (const auto& gpu : *gpus) {
    if (!gpu.mig_enabled) whole.insert(gpu.uuid);
  }
  return std::make_unique<gpuslice::FileMemoryLimits>(whole);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "hook") return RunHook(argc - 1, argv + 1);
  CLI::App app{
      "gpuslice node agent: kubelet device plugin for whole GPUs, time-slicing, MPS and MIG"};
  std::string backend_spec = "nvml";
  std::string ignored_xids = "13,31,43,45,68,109";
  std::string log_level = "info";
  std::string replica_policy;
  std::string fallbacks = "named,single";
  std::string mps_command;
  gpuslice::NodeAgentOptions options;
  app.add_option("--backend", backend_spec, "GPU backend: nvml, or sim:<node YAML>")
      ->capture_default_str();
  app.add_option(
      "--config", options.config_path,
      "sharing config file (NVIDIA's device-plugin format); reloaded on change or SIGHUP");
  // The GPU Operator's per-node configuration flow, with NVIDIA config-manager's names.
  app.add_option("--config-dir", options.named.directory,
                 "directory of named sharing configs (a ConfigMap volume, one file per name); "
                 "the node label picks one, re-read live")
      ->envname("CONFIG_FILE_SRCDIR");
  app.add_option("--default-config", options.named.default_name,
                 "named config used when the node label is not set")
      ->envname("DEFAULT_CONFIG");
  app.add_option("--node-label", options.named.label_key, "node label whose value names the config")
      ->envname("NODE_LABEL")
      ->capture_default_str();
  app.add_option("--node-labels-file", options.node_labels_file,
                 "file of key=value node labels, watched for the config label")
      ->envname("NODE_LABELS_FILE");
  app.add_option("--fallback-strategies", fallbacks,
                 "when the label and --default-config are unset: named (a config called "
                 "\"default\"), single (the only config), empty (built-in default), in order")
      ->envname("FALLBACK_STRATEGIES")
      ->capture_default_str();
  app.add_option("--device-plugin-dir", options.device_plugin_dir,
                 "kubelet device-plugin directory (holds kubelet.sock)")
      ->capture_default_str();
  app.add_option("--features-file", options.features_file,
                 "Node Feature Discovery local feature file for the GPU labels")
      ->capture_default_str();
  app.add_option("--cdi-dir", options.cdi_dir, "directory for the CDI spec")->capture_default_str();
  app.add_option("--mps-root", options.mps_root, "host directory for MPS pipes and logs")
      ->capture_default_str();
  app.add_option("--mps-control-command", mps_command,
                 "MPS control daemon command (default: nvidia-cuda-mps-control -f)");
  std::string mps_v3_command;
  app.add_option("--mps-v3-control-command", mps_v3_command,
                 "MPS v3 control binary for one server per GPU and one namespace per container "
                 "on r615+ nodes (docs/isolation.md; default: nvidia-cuda-mps-control with the "
                 "nvml backend, none on simulated nodes; 'off': MPS v2 only)");
  app.add_option("--mig-minors-file", options.mig_minors_file,
                 "MIG capability minors (for passDeviceSpecs and CDI)")
      ->capture_default_str();
  app.add_option("--ignored-xids", ignored_xids,
                 "comma-separated Xids that do not make a device unhealthy")
      ->capture_default_str();
  app.add_option("--replica-policy,--shared-devices-allocation-policy", replica_policy,
                 "preferred allocation for replicas and MIG devices: distributed or packed "
                 "(default: the config's flags.plugin.sharedDevicesAllocationPolicy, distributed)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  std::string watchdog_mode = "kill";
  std::string watchdog_nvml = "libnvidia-ml.so.1";
  int watchdog_interval_ms = 500;
  int watchdog_grace_ms = 2000;
  app.add_option("--memory-watchdog", watchdog_mode,
                 "GPU-memory watchdog over containers' real usage (NVML): kill (SIGKILL past the "
                 "grace period), report (log only), off")
      ->check(CLI::IsMember({"kill", "report", "off"}))
      ->capture_default_str();
  app.add_option("--memory-watchdog-interval-ms", watchdog_interval_ms, "check interval")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--memory-watchdog-grace-ms", watchdog_grace_ms,
                 "how long a container may stay over its limit before it is killed")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--memory-watchdog-nvml", watchdog_nvml, "NVML library the watchdog reads")
      ->capture_default_str();
  std::string isolation_mode = "auto";
  std::string hook_path;
  app.add_option("--isolation", isolation_mode,
                 "driver isolation tier (docs/isolation.md): auto (where the node is capable) or "
                 "off")
      ->check(CLI::IsMember({"auto", "off"}))
      ->capture_default_str();
  app.add_option("--isolation-dir", options.isolation.directory,
                 "spool and state of the driver isolation tier (shared with the hook)")
      ->capture_default_str();
  std::int64_t unclaimed_grace_ms = 300000;
  app.add_option("--unclaimed-token-grace-ms", unclaimed_grace_ms,
                 "how long the kubelet's PodResources may list no container holding a never-bound "
                 "isolation token's devices before the token is released (its pod was deleted "
                 "before its container was created)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}))
      ->capture_default_str();
  app.add_option("--cgroup-mount", options.isolation.cgroup_mount, "cgroup v2 mount")
      ->capture_default_str();
  app.add_option("--hook-path", hook_path,
                 "host path of a binary with the agent's `hook create-container` command (this "
                 "binary where its libraries are on the host, or gpuslice-oci-hook) for the CDI "
                 "createContainer hook; overrides --install-hook-from's copy. Neither = no hook, "
                 "so containers stay on the shim tier");
  std::string install_hook_from;
  std::string hook_dir = gpuslice::kDefaultHostHookDir;
  app.add_option("--install-hook-from", install_hook_from,
                 "copy the static gpuslice-oci-hook from this directory (e.g. the image's "
                 "/usr/local/libexec/gpuslice) into --hook-dir at start-up, atomically, and name "
                 "that host copy in the CDI spec's createContainer hook");
  app.add_option("--hook-dir", hook_dir,
                 "host directory --install-hook-from copies the hook into (the runtime runs it "
                 "from there, on the host)")
      ->capture_default_str();
  // Issue 13 node side: the Kubernetes API (capacity annotation, node label, limits hand-off).
  gpuslice::ClusterSideOptions cluster;
  std::string cgroup_driver = "systemd";
  app.add_option("--node-name", cluster.node_name,
                 "this node's name; enables the Kubernetes API side (gpuslice.io/gpus "
                 "annotation, the config label from the API, fractional limits files)")
      ->envname("NODE_NAME");
  app.add_option("--kubeconfig", cluster.kubeconfig,
                 "kubeconfig file (default: in-cluster service account, then $KUBECONFIG)");
  app.add_option("--pod-resources-socket", cluster.pod_resources_socket,
                 "the kubelet's PodResources API socket")
      ->capture_default_str();
  app.add_option("--allocations-dir", cluster.handoff.host_root,
                 "host directory for per-allocation limits files and accounting regions")
      ->capture_default_str();
  std::string install_shims_from;
  app.add_option("--shim-dir", cluster.handoff.shim_dir,
                 "host directory of libgpuslice-cuda.so and libgpuslice-nvml.so, mounted into "
                 "fractional containers with an /etc/ld.so.preload naming them (and, "
                 "report-only, into replica containers on driver-tier GPUs)")
      ->capture_default_str();
  app.add_option("--install-shims-from", install_shims_from,
                 "copy the shims from this directory (e.g. the image's /usr/local/lib/gpuslice) "
                 "into --shim-dir at start-up, atomically");
  app.add_option("--cgroup-driver", cgroup_driver,
                 "the kubelet's cgroup driver, for the memory watchdog: systemd or cgroupfs")
      ->check(CLI::IsMember({"systemd", "cgroupfs"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  cluster.cgroup_driver = cgroup_driver == "cgroupfs" ? gpuslice::CgroupDriver::kCgroupfs
                                                      : gpuslice::CgroupDriver::kSystemd;
  options.isolation.enabled = isolation_mode == "auto";
  spdlog::set_level(spdlog::level::from_str(log_level));
  auto xids = gpuslice::HealthTracker::ParseXidList(ignored_xids);
  if (!xids.ok()) {
    spdlog::critical("--ignored-xids: {}", xids.status().message());
    return 2;
  }
  options.ignored_xids = *xids;
  if (!replica_policy.empty()) {
    auto policy = gpuslice::ParseReplicaPolicy(replica_policy);
    if (!policy.ok()) {
      spdlog::critical("--replica-policy: {}", policy.status().message());
      return 2;
    }
    options.replica_policy = *policy;
  }
  auto fallback_list = gpuslice::ParseConfigFallbacks(fallbacks);
  if (!fallback_list.ok()) {
    spdlog::critical("--fallback-strategies: {}", fallback_list.status().message());
    return 2;
  }
  options.named.fallbacks = *fallback_list;
  if (!options.named.directory.empty() && !options.config_path.empty()) {
    spdlog::critical(
        "--config and --config-dir exclude each other: give one file, or a "
        "directory of named configs");
    return 2;
  }

  // Signals are taken synchronously by one thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto backend = gpuslice::CreateGpuBackend(backend_spec);
  if (!backend.ok()) {
    // NVIDIA's flags.failOnInitError: false keeps the plugin up, with no GPUs, on nodes where the
    // driver cannot be used (a DaemonSet that also lands on CPU nodes).
    auto config = gpuslice::LoadStartupConfig(options);
    if (!config.ok()) {
      spdlog::critical("{}; and the configuration does not load: {}", backend.status().message(),
                       config.status().message());
      return 1;
    }
    if (config->flags.fail_on_init_error) {
      spdlog::critical("{} (set flags.failOnInitError: false to run without GPUs on such nodes)",
                       backend.status().message());
      return 1;
    }
    spdlog::warn("{}; flags.failOnInitError is false: running with no GPUs",
                 backend.status().message());
    backend = std::unique_ptr<gpuslice::GpuBackend>(
        std::make_unique<gpuslice::NoGpuBackend>(backend.status().message()));
  }
  std::vector<std::string> command;
  if (mps_command.empty()) {
    command = DefaultMpsCommand(backend_spec);
  } else {
    std::istringstream words(mps_command);
    for (std::string w; words >> w;) command.push_back(w);
  }
  gpuslice::ProcessMpsControl mps_control(command);
  // The hook the CDI spec names; only written where the driver tier is in use (NodeAgent).
  if (!install_hook_from.empty() && hook_path.empty()) {
    auto installed = gpuslice::InstallOciHook(install_hook_from, hook_dir);
    if (!installed.ok()) {
      spdlog::critical("{}", installed.status().message());
      return 1;
    }
    spdlog::info("OCI hook installed from {} as {}", install_hook_from, *installed);
    options.isolation.hook_installed = true;
    options.hook_command = gpuslice::OciHookCommand(
        *installed, false, options.isolation.directory + "/spool", options.isolation.cgroup_mount);
  } else if (!hook_path.empty()) {
    if (!install_hook_from.empty()) {
      spdlog::info("--hook-path {} given: --install-hook-from is not used", hook_path);
    }
    options.isolation.hook_installed = true;
    options.hook_command = gpuslice::OciHookCommand(
        hook_path, true, options.isolation.directory + "/spool", options.isolation.cgroup_mount);
  }
  if (!install_shims_from.empty()) {
    if (gpuslice::Status s = gpuslice::InstallShims(install_shims_from, cluster.handoff.shim_dir);
        !s.ok()) {
      spdlog::critical("{}", s.message());
      return 1;
    }
    spdlog::info("shims installed from {} into {}", install_shims_from, cluster.handoff.shim_dir);
  }
  std::unique_ptr<gpuslice::ClusterSide> cluster_side;
  if (!cluster.node_name.empty()) {
    auto created = gpuslice::ClusterSide::Create(cluster);
    if (!created.ok()) {
      spdlog::critical("--node-name {}: {}", cluster.node_name, created.status().message());
      return 1;
    }
    cluster_side = std::move(*created);
  }
  std::unique_ptr<gpuslice::ConfigSource> config_source;
  if (cluster_side != nullptr && !options.named.directory.empty() &&
      options.node_labels_file.empty()) {
    // Issue 13 part 7: the config label is read from this node in the API server.
    config_source = std::make_unique<gpuslice::NamedConfigSource>(options.named,
                                                                  cluster_side->MakeLabelSource());
  } else if (!options.named.directory.empty()) {
    config_source = std::make_unique<gpuslice::NamedConfigSource>(
        options.named, std::make_unique<gpuslice::FileNodeLabelSource>(options.node_labels_file));
  } else {
    config_source = std::make_unique<gpuslice::SingleFileConfigSource>(options.config_path);
  }
  // Fractional containers on capable GPUs get a driver limit from the hand-off's limits files.
  if (!cluster.node_name.empty()) options.isolation.allocations_dir = cluster.handoff.host_root;
  // Replica containers on capable GPUs get the shims too, report-only (the driver enforces).
  options.isolation.shim_dir = cluster.handoff.shim_dir;
  // Tokens of pods deleted before their container was created are released once the kubelet's
  // PodResources no longer lists their devices (a failed List releases nothing).
  gpuslice::GrpcPodResources isolation_pod_resources(cluster.pod_resources_socket);
  options.isolation.pod_resources = &isolation_pod_resources;
  // An MPS v3 container's client priority, when its bundle lacks the pod's annotation, comes
  // from the pod in the API server (docs/isolation.md).
  if (cluster_side != nullptr) {
    options.isolation.pod_annotation_of = cluster_side->MakePodAnnotationSource();
  }
  options.isolation.unclaimed_token_grace = std::chrono::milliseconds(unclaimed_grace_ms);
  // MPS v3 (docs/isolation.md): its daemons replace the v2 ones on the GPUs the agent finds
  // capable; the others still get `mps_control`'s.
  std::vector<std::string> v3_command;
  if (mps_v3_command.empty() && backend_spec == "nvml") {
    v3_command = gpuslice::ProcessMpsV3::NvidiaCommand();
  } else if (mps_v3_command != "off") {
    std::istringstream words(mps_v3_command);
    for (std::string w; words >> w;) v3_command.push_back(w);
  }
  const bool mps_v3_enabled = !v3_command.empty() && isolation_mode == "auto";
  // Even with v3 off it runs the daemons (all v2 then), so that v3 daemons a previous agent left
  // running are stopped before a v2 daemon takes their pipe directory.
  auto mps_v3 = std::make_unique<gpuslice::ProcessMpsV3>(
      mps_v3_enabled ? v3_command : std::vector<std::string>{}, mps_control,
      [root = options.mps_root](const std::string& uuid) {
        return gpuslice::MpsDaemonSupervisor::PipeDirectory(root, uuid);
      });
  gpuslice::MpsControl& daemons = *mps_v3;
  gpuslice::NodeAgent agent(options, **backend, daemons, std::move(config_source));
  // Driver memory limits: the simulated driver's on a simulated node; NVML's
  // nvmlDeviceSetMemoryLimits_v1 where the driver library has it (r615+).
  std::unique_ptr<gpuslice::MemoryLimitDriver> memory_limits;
  if (backend_spec.rfind("sim:", 0) == 0) {
    memory_limits = SimulatedMemoryLimits(**backend);
  } else if (backend_spec == "nvml" && isolation_mode == "auto") {
    auto nvml_limits =
        gpuslice::NvmlMemoryLimits::Create("libnvidia-ml.so.1", options.isolation.cgroup_mount);
    if (nvml_limits.ok()) {
      memory_limits = std::move(*nvml_limits);
    } else {
      spdlog::info("driver memory limits unavailable: {}", nvml_limits.status().message());
    }
  }
  agent.SetIsolationDrivers(memory_limits.get(), mps_v3_enabled ? mps_v3.get() : nullptr);
  if (cluster_side != nullptr) cluster_side->Attach(agent);
  if (gpuslice::Status s = agent.Start(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.message());
    mps_v3->LeaveDaemonsRunning();  // not a config change
    return 1;
  }

  const auto memory_watchdog =
      StartMemoryWatchdog(watchdog_mode, watchdog_nvml, watchdog_interval_ms, watchdog_grace_ms,
                          // With the API: log line plus a core/v1 Event on the pod.
                          cluster_side != nullptr ? &cluster_side->event_sink() : nullptr);
  if (cluster_side != nullptr) {
    cluster_side->AttachWatchdog(memory_watchdog != nullptr ? memory_watchdog->watchdog.get()
                                                            : nullptr);
    cluster_side->Start();
  }

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    const timespec wait{0, 100'000'000};
    while (!stop) {
      const int sig = sigtimedwait(&signals, nullptr, &wait);
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading the config");
        agent.RequestReload();
      } else if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        stop = true;
      }
    }
  });
  while (!stop) {
    agent.RunOnce();
    if (cluster_side != nullptr) cluster_side->Tick();
  }
  if (cluster_side != nullptr) cluster_side->Stop();
  if (memory_watchdog != nullptr) memory_watchdog->watchdog->Stop();
  // MPS v3 daemons outlive the agent (docs/isolation.md): running containers keep their MPS
  // server, and the next agent adopts them. Only a config change stops them.
  mps_v3->LeaveDaemonsRunning();
  agent.Stop();
  signal_thread.join();
  spdlog::info("stopped");
  return 0;
}
