#include "node_agent/node_agent.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>

#include "node_agent/atomic_file.h"

namespace gpuslice {

namespace {

std::unique_ptr<ConfigSource> MakeConfigSource(const NodeAgentOptions& options) {
  if (options.named.directory.empty()) {
    return std::make_unique<SingleFileConfigSource>(options.config_path);
  }
  return std::make_unique<NamedConfigSource>(
      options.named, std::make_unique<FileNodeLabelSource>(options.node_labels_file));
}

std::string NameOf(const ConfigSnapshot& s) {
  if (!s.name.empty()) return "\"" + s.name + "\"";
  return s.path.empty() ? "the built-in default" : s.path;
}

}  // namespace

Result<SharingConfig> LoadStartupConfig(const NodeAgentOptions& options) {
  GPUSLICE_ASSIGN_OR_RETURN(ConfigSnapshot snapshot, MakeConfigSource(options)->Read());
  if (snapshot.path.empty()) return DefaultSharingConfig();
  return ParseSharingConfig(snapshot.text, snapshot.path);
}

NodeAgent::NodeAgent(NodeAgentOptions options, GpuBackend& backend, MpsControl& mps_control)
    : NodeAgent(options, backend, mps_control, MakeConfigSource(options)) {}

NodeAgent::NodeAgent(NodeAgentOptions options, GpuBackend& backend, MpsControl& mps_control,
                     std::unique_ptr<ConfigSource> config_source)
    : options_(std::move(options)),
      backend_(backend),
      mps_(mps_control, options_.mps_root),
      plugins_(options_.device_plugin_dir, kubelet_socket()),
      features_(options_.features_file),
      cdi_(options_.cdi_dir),
      health_(options_.ignored_xids),
      config_source_(std::move(config_source)),
      started_unix_(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()) {
  options_.isolation.mps_root = options_.mps_root;  // MPS v3 namespace directories
}

NodeAgent::~NodeAgent() { Stop(); }

void NodeAgent::SetIsolationDrivers(MemoryLimitDriver* limits, MpsV3Control* mps) {
  isolation_ = std::make_unique<AgentIsolation>(options_.isolation, limits, mps);
}

std::string NodeAgent::kubelet_socket() const {
  return (std::filesystem::path(options_.device_plugin_dir) / options_.kubelet_socket_name)
      .string();
}

NodeAgent::KubeletSocketId NodeAgent::KubeletSocketNow() const {
  struct stat st {};
  if (stat(kubelet_socket().c_str(), &st) != 0) return {};
  return {true, static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec};
}

Result<SharingConfig> NodeAgent::ParseSnapshot(const ConfigSnapshot& snapshot) {
  if (snapshot.path.empty()) return DefaultSharingConfig();
  return ParseSharingConfig(snapshot.text, snapshot.path);
}

Status NodeAgent::Start() {
  spdlog::info("gpuslice-node-agent starting: backend {}, device-plugin dir {}", backend_.Name(),
               options_.device_plugin_dir);
  GPUSLICE_ASSIGN_OR_RETURN(seen_, config_source_->Read());
  spdlog::info("configuration {} from {} ({})", NameOf(seen_), config_source_->Describe(),
               seen_.selected_by);
  mig_cap_minors_ = ParseMigMinors(ReadFileOrEmpty(options_.mig_minors_file));
  GPUSLICE_ASSIGN_OR_RETURN(SharingConfig config, ParseSnapshot(seen_));
  kubelet_id_ = KubeletSocketNow();
  GPUSLICE_RETURN_IF_ERROR(Apply(config));
  applied_ = seen_;
  return Status::Ok();
}

Status NodeAgent::Apply(const SharingConfig& config) {
  GPUSLICE_ASSIGN_OR_RETURN(std::vector<GpuInfo> gpus, backend_.ListGpus());
  GPUSLICE_ASSIGN_OR_RETURN(DriverInfo driver, backend_.GetDriverInfo());
  NodeFacts facts;
  facts.machine_type = ReadMachineType(config.flags.gfd.machine_type_file);
  if (!config.flags.gfd.no_timestamp) facts.timestamp_unix = started_unix_;
  Result<NodeAdvertisement> advertised = AdvertiseNode(gpus, config, driver, facts);
  if (!advertised.ok()) return advertised.status();
  for (const std::string& warning : advertised->warnings) spdlog::warn("{}", warning);

  if (!health_seeded_) {
    // Devices the driver reports unhealthy at start stay so until a recovery event.
    for (const GpuInfo& gpu : gpus) {
      if (!gpu.healthy) health_.MarkUnhealthy(gpu.uuid, "unhealthy at start");
      for (const MigDeviceInfo& mig : gpu.mig_devices) {
        if (!mig.healthy) health_.MarkUnhealthy(mig.uuid, "unhealthy at start");
      }
    }
    health_seeded_ = true;
  }
  config_ = config;
  gpus_ = std::move(gpus);
  driver_ = driver;
  advertisement_ = std::move(advertised).value();
  if (isolation_ == nullptr)
    isolation_ = std::make_unique<AgentIsolation>(options_.isolation, nullptr, nullptr);
  if (Status s = isolation_->Update(driver_, gpus_); !s.ok()) {
    spdlog::error("isolation state: {}", s.message());
  }
  // The GPUs that get an MPS daemon: MPS replicas' (NVIDIA's sharing.mps), and fractional
  // GPUs whose compute MPS v3 shares (gpuslice.fractional.compute: mps on a v3 GPU).
  std::set<std::string> mps_devices;
  for (const AdvertisedResource& r : advertisement_.resources) {
    for (const AdvertisedDevice& d : r.devices) {
      if (r.sharing == SharingStrategy::kMps ||
          isolation_->FractionalComputeByMps(r, d.device_uuid)) {
        mps_devices.insert(d.device_uuid);
      }
    }
  }
  const bool mps_sharing = !mps_devices.empty();
  for (auto& [key, value] : isolation_->Labels(mps_sharing)) advertisement_.labels[key] = value;

  std::string summary;
  for (const AdvertisedResource& r : advertisement_.resources) {
    summary += (summary.empty() ? "" : ", ") + r.name + " x" + std::to_string(r.devices.size());
  }
  if (advertisement_.resources.empty()) {
    spdlog::warn(
        "no devices to advertise on this node ({} GPUs found by {}); no device-plugin "
        "server is started",
        gpus_.size(), backend_.Name());
  } else {
    spdlog::info("advertising {}", summary);
  }

  Result<bool> wrote = features_.Write(advertisement_.labels);
  if (!wrote.ok()) {
    spdlog::error("cannot write the node feature file: {}", wrote.status().message());
  } else if (*wrote) {
    spdlog::info("wrote {} labels to {}", advertisement_.labels.size(), features_.path());
  }
  Result<bool> cdi = cdi_.Write(
      gpus_, mig_cap_minors_,
      isolation_->manager() != nullptr ? options_.hook_command : std::vector<std::string>{});
  if (!cdi.ok()) spdlog::error("cannot write the CDI spec: {}", cdi.status().message());

  (void)mps_.Reconcile(mps_devices);
  // Last, so that the CDI spec and the MPS daemons exist before the kubelet can allocate.
  return Publish();
}

Status NodeAgent::Publish() {
  AllocationSettings settings;
  settings.plugin = config_->flags.plugin;
  settings.mps_root = options_.mps_root;
  settings.mig_cap_minors = mig_cap_minors_;
  // The parser accepts only the two names, so the fallback is never taken.
  const ReplicaPolicy policy = options_.replica_policy.value_or(
      ParseReplicaPolicy(config_->flags.plugin.shared_devices_allocation_policy)
          .value_or(ReplicaPolicy::kDistributed));
  std::map<std::string, std::shared_ptr<const ResourceState>> states;
  for (const AdvertisedResource& advertised : advertisement_.resources) {
    AdvertisedResource r = advertised;
    auto state = std::make_shared<ResourceState>();
    for (AdvertisedDevice& d : r.devices) {
      d.healthy = health_.IsHealthy(d);
      v1beta1::Device* out = state->devices.add_devices();
      out->set_id(d.id);
      out->set_health(std::string(d.healthy ? kHealthy : kUnhealthy));
      if (d.numa_node >= 0) out->mutable_topology()->add_nodes()->set_id(d.numa_node);
    }
    state->allocator = std::make_shared<ContainerAllocator>(r, gpus_, settings);
    state->preferred = std::make_shared<PreferredAllocator>(r, policy);
    state->decorate = [this, r, gpus = gpus_](const std::vector<std::string>& ids,
                                              v1beta1::ContainerAllocateResponse& out) {
      return isolation_->Decorate(r, gpus, ids, out);
    };
    if (r.fractional) state->after_allocate = fractional_allocate_;
    states[r.name] = std::move(state);
  }
  Status reconciled = plugins_.Reconcile(states);
  if (on_publish_) {
    on_publish_(advertisement_, gpus_,
                [this](const AdvertisedDevice& d) { return health_.IsHealthy(d); });
  }
  return reconciled;
}

void NodeAgent::HandleHealthEvents(const std::vector<HealthEvent>& events) {
  bool changed = false;
  for (const HealthEvent& e : events) {
    const bool ignored = e.kind == HealthEvent::Kind::kXid && health_.ignored_xids().count(e.xid);
    if (e.kind == HealthEvent::Kind::kXid) {
      spdlog::log(ignored ? spdlog::level::info : spdlog::level::warn, "Xid {} on {}{}{}", e.xid,
                  e.device_uuid, e.detail.empty() ? "" : ": " + e.detail,
                  ignored ? " (application error; ignored)" : "; marking it unhealthy");
    } else {
      spdlog::info("{} recovered{}", e.device_uuid, e.detail.empty() ? "" : ": " + e.detail);
    }
    changed = health_.Apply(e) || changed;
  }
  if (!changed || !config_) return;
  Status s = Publish();
  if (!s.ok()) spdlog::error("cannot publish health change: {}", s.message());
}

void NodeAgent::CheckConfig() {
  const bool requested = reload_requested_.exchange(false);
  Result<ConfigSnapshot> now = config_source_->Read();
  if (!now.ok()) {
    if (now.status().message() != source_error_) {
      source_error_ = now.status().message();
      spdlog::error("{}; keeping configuration {}", source_error_, NameOf(applied_));
    }
    return;
  }
  source_error_.clear();
  if (!requested && *now == seen_) return;
  const bool same_choice = now->name == seen_.name && now->path == seen_.path;
  seen_ = *std::move(now);
  spdlog::info("reloading config {} ({}), chosen by {}", NameOf(seen_),
               requested ? "SIGHUP" : (same_choice ? "file changed" : "selection changed"),
               seen_.selected_by);
  Result<SharingConfig> config = ParseSnapshot(seen_);
  Status s = config.ok() ? Apply(*config) : config.status();
  if (!s.ok()) {
    spdlog::error("new config {} rejected, keeping the previous one ({}): {}", NameOf(seen_),
                  NameOf(applied_), s.message());
    return;
  }
  applied_ = seen_;
}

void NodeAgent::CheckKubelet() {
  const KubeletSocketId now = KubeletSocketNow();
  if (now == kubelet_id_) return;
  kubelet_id_ = now;
  if (!now.exists) {
    spdlog::warn("kubelet socket {} is gone; waiting for the kubelet", kubelet_socket());
    return;
  }
  spdlog::info("kubelet socket {} was (re)created; restarting servers and registering again",
               kubelet_socket());
  Status s = plugins_.RestartAll();
  if (!s.ok()) spdlog::error("{}", s.message());
}

void NodeAgent::RunOnce() {
  Result<std::vector<HealthEvent>> events = backend_.WaitForHealthEvents(options_.poll_interval);
  if (!events.ok()) {
    spdlog::error("health events: {}", events.status().message());
  } else if (!events->empty()) {
    HandleHealthEvents(*events);
  }
  const auto now = std::chrono::steady_clock::now();
  if (reload_requested_ || now - last_config_poll_ >= options_.poll_interval) {
    last_config_poll_ = now;
    CheckConfig();
    CheckKubelet();
    plugins_.RegisterPending(std::chrono::milliseconds(1000));
    (void)mps_.RestartDead();
  }
  if (isolation_ != nullptr) isolation_->RunOnce();
}

void NodeAgent::Stop() {
  plugins_.StopAll();
  mps_.StopAll();
}

}  // namespace gpuslice
