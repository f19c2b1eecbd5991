#include "backends/simulated_backend.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "core/gpu_model.h"
#include "core/mig_layout.h"

namespace gpuslice {
namespace {

// Strict reading of one YAML file: every error names the source, line and field path.
class NodeReader {
 public:
  explicit NodeReader(std::string_view source) : source_(source) {}

  Status Error(const YAML::Node& at, const std::string& path, const std::string& what) const {
    std::string where(source_);
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    return InvalidArgument(where + ": " + path + ": " + what);
  }

  Status CheckKeys(const YAML::Node& map, const std::string& path,
                   std::initializer_list<std::string_view> allowed) const {
    if (!map.IsMap()) return Error(map, path, "must be a mapping");
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string accepted;
      for (std::string_view a : allowed) accepted.append(accepted.empty() ? "" : ", ").append(a);
      return Error(kv.first, path.empty() ? key : path + "." + key,
                   "unknown field; accepted: " + accepted);
    }
    return Status::Ok();
  }

  Result<std::string> String(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) return Error(node, path, "must be a string");
    return node.as<std::string>();
  }

  Result<long long> Integer(const YAML::Node& node, const std::string& path, long long min,
                            long long max) const {
    long long value = 0;
    if (!node.IsScalar() || !YAML::convert<long long>::decode(node, value)) {
      return Error(node, path, "must be an integer, got \"" + Scalar(node) + "\"");
    }
    if (value < min || value > max) {
      return Error(node, path,
                   "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                       ", got " + std::to_string(value));
    }
    return value;
  }

  Result<bool> Bool(const YAML::Node& node, const std::string& path) const {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return Error(node, path, "must be true or false, got \"" + Scalar(node) + "\"");
    }
    return value;
  }

 private:
  static std::string Scalar(const YAML::Node& node) {
    return node.IsScalar() ? node.Scalar() : std::string("<non-scalar>");
  }
  std::string_view source_;
};

std::uint64_t Fnv1a(std::string_view text, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ULL ^ seed;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

// splitmix64's finaliser: spreads FNV's similar outputs for similar keys over all bits.
std::uint64_t Mix(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A UUID-shaped identifier derived from `key`: same key, same UUID, on every machine.
std::string DerivedUuid(std::string_view prefix, std::string_view key) {
  const std::uint64_t hi = Mix(Fnv1a(key, 0x9e3779b97f4a7c15ULL));
  const std::uint64_t lo = Mix(Fnv1a(key, 0xc2b2ae3d27d4eb4fULL));
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64
                                  "-%012" PRIx64,
                hi >> 32, (hi >> 16) & 0xffffU, hi & 0xffffU, lo >> 48,
                lo & std::uint64_t{0xffffffffffff});
  return std::string(prefix) + buf;
}

// Bus numbers of an 8-GPU HGX board, then sequential for larger nodes.
std::string DerivedPciBusId(int index) {
  static constexpr int kBuses[] = {0x07, 0x0f, 0x47, 0x4e, 0x87, 0x90, 0xb7, 0xbd};
  const int bus = index < 8 ? kBuses[index] : 0xc0 + index;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "00000000:%02X:00.0", bus & 0xff);
  return buf;
}

struct MigRequest {
  std::string profile;
  int start = -1;  // -1: let the planner choose
  bool healthy = true;
  YAML::Node at;
};

Status ParseMig(const NodeReader& r, const YAML::Node& mig, const std::string& path,
                const GpuModel& model, GpuInfo& gpu) {
  GPUSLICE_RETURN_IF_ERROR(r.CheckKeys(mig, path, {"enabled", "devices"}));
  if (mig["enabled"]) {
    GPUSLICE_ASSIGN_OR_RETURN(gpu.mig_enabled, r.Bool(mig["enabled"], path + ".enabled"));
  }
  if (gpu.mig_enabled && !model.mig_capable()) {
    return r.Error(mig, path + ".enabled", model.product_name + " is not MIG capable");
  }
  const YAML::Node devices = mig["devices"];
  if (!devices) return Status::Ok();
  if (!gpu.mig_enabled) return r.Error(devices, path + ".devices", "needs mig.enabled: true");
  if (!devices.IsSequence()) return r.Error(devices, path + ".devices", "must be a list");

  std::vector<MigRequest> requests;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const YAML::Node d = devices[i];
    const std::string dpath = path + ".devices[" + std::to_string(i) + "]";
    GPUSLICE_RETURN_IF_ERROR(r.CheckKeys(d, dpath, {"profile", "start", "healthy"}));
    if (!d["profile"]) return r.Error(d, dpath + ".profile", "missing");
    MigRequest req;
    req.at = d;
    GPUSLICE_ASSIGN_OR_RETURN(req.profile, r.String(d["profile"], dpath + ".profile"));
    if (model.FindProfile(req.profile) == nullptr) {
      std::string accepted;
      for (const MigProfile& p : model.mig_profiles) accepted.append(accepted.empty() ? "" : ", ").append(p.name);
      return r.Error(d["profile"], dpath + ".profile",
                     "unknown profile \"" + req.profile + "\" for " + model.product_name +
                         "; accepted: " + accepted);
    }
    if (d["start"]) {
      GPUSLICE_ASSIGN_OR_RETURN(long long start,
                                r.Integer(d["start"], dpath + ".start", 0, model.memory_slices - 1));
      req.start = static_cast<int>(start);
    }
    if (d["healthy"]) {
      GPUSLICE_ASSIGN_OR_RETURN(req.healthy, r.Bool(d["healthy"], dpath + ".healthy"));
    }
    requests.push_back(std::move(req));
  }

  // Pinned instances first (checked against each other), then the planner places the rest.
  std::vector<MigPlacement> pinned;
  MigLayout rest;
  for (const MigRequest& req : requests) {
    if (req.start < 0) {
      ++rest[req.profile];
      continue;
    }
    const MigProfile& p = *model.FindProfile(req.profile);
    if (std::find(p.start_slots.begin(), p.start_slots.end(), req.start) == p.start_slots.end()) {
      return r.Error(req.at["start"], path + ".devices.start",
                     req.profile + " cannot start at slot " + std::to_string(req.start));
    }
    for (const MigPlacement& other : pinned) {
      if (req.start < other.start_slot + other.size_slots &&
          other.start_slot < req.start + p.size_slots) {
        return r.Error(req.at["start"], path + ".devices.start",
                       req.profile + " at slot " + std::to_string(req.start) + " overlaps " +
                           other.profile_name + " at slot " + std::to_string(other.start_slot));
      }
    }
    pinned.push_back({p.name, p.id, req.start, p.size_slots});
  }
  std::vector<MigPlacement> all = pinned;
  if (!rest.empty()) {
    Result<std::vector<MigPlacement>> placed = FitMigLayout(model, rest, pinned);
    if (!placed.ok()) return r.Error(devices, path + ".devices", placed.status().message());
    all = *placed;
  } else {
    // Validate the pinned set as a whole (counts, compute slices).
    MigLayout layout;
    for (const MigPlacement& p : pinned) ++layout[p.profile_name];
    Result<std::vector<MigPlacement>> fits = FitMigLayout(model, layout);
    if (!fits.ok()) return r.Error(devices, path + ".devices", fits.status().message());
  }
  std::sort(all.begin(), all.end(),
            [](const MigPlacement& a, const MigPlacement& b) { return a.start_slot < b.start_slot; });

  // Health flags follow the request order for each profile.
  std::map<std::string, std::vector<bool>> health;
  for (const MigRequest& req : requests) health[req.profile].push_back(req.healthy);
  std::map<std::string, std::size_t> used;
  for (std::size_t gi = 0; gi < all.size(); ++gi) {
    const MigPlacement& pl = all[gi];
    const MigProfile& p = *model.FindProfile(pl.profile_name);
    MigDeviceInfo info;
    info.gpu_instance_id = static_cast<int>(gi) + 1;
    info.compute_instance_id = 0;
    info.uuid = DerivedUuid("MIG-", gpu.uuid + "/gi" + std::to_string(info.gpu_instance_id));
    info.profile_name = p.name;
    info.profile_id = p.id;
    info.start_slot = pl.start_slot;
    info.size_slots = pl.size_slots;
    info.memory_bytes = p.memory_bytes;
    info.multiprocessor_count = p.multiprocessor_count;
    const std::vector<bool>& flags = health[p.name];
    std::size_t& n = used[p.name];
    info.healthy = n < flags.size() ? flags[n] : true;
    ++n;
    gpu.mig_devices.push_back(std::move(info));
  }
  return Status::Ok();
}

Result<std::vector<GpuInfo>> ParseGpus(const NodeReader& r, const YAML::Node& list,
                                       const std::string& node_name, int numa_nodes) {
  // `gpus: []` describes a node without GPUs (a CPU node the DaemonSet also runs on).
  if (!list || !list.IsSequence()) {
    return r.Error(list, "gpus", "must be a list of GPUs ([] for a node without GPUs)");
  }
  std::vector<GpuInfo> gpus;
  std::set<std::string> uuids;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    const std::string path = "gpus[" + std::to_string(i) + "]";
    GPUSLICE_RETURN_IF_ERROR(r.CheckKeys(
        entry, path, {"model", "count", "uuid", "numaNode", "pciBusId", "healthy", "mode", "mig"}));
    if (!entry["model"]) return r.Error(entry, path + ".model", "missing");
    GPUSLICE_ASSIGN_OR_RETURN(std::string model_name, r.String(entry["model"], path + ".model"));
    const GpuModel* model = FindGpuModel(model_name);
    if (model == nullptr) {
      std::string accepted;
      for (const GpuModel& m : AllGpuModels()) accepted.append(accepted.empty() ? "" : ", ").append(m.name);
      return r.Error(entry["model"], path + ".model",
                     "unknown GPU model \"" + model_name + "\"; accepted: " + accepted);
    }
    long long count = 1;
    if (entry["count"]) {
      GPUSLICE_ASSIGN_OR_RETURN(count, r.Integer(entry["count"], path + ".count", 1, 64));
    }
    for (const char* single : {"uuid", "pciBusId"}) {
      if (entry[single] && count > 1) {
        return r.Error(entry[single], path + "." + single, "cannot be set when count > 1");
      }
    }
    for (long long c = 0; c < count; ++c) {
      GpuInfo gpu;
      gpu.index = static_cast<int>(gpus.size());
      gpu.minor_number = gpu.index;
      gpu.model = model->name;
      gpu.product_name = model->product_name;
      gpu.memory_bytes = model->memory_bytes;
      gpu.multiprocessor_count = model->multiprocessor_count;
      gpu.compute_major = model->compute_major;
      gpu.compute_minor = model->compute_minor;
      gpu.mig_capable = model->mig_capable();
      gpu.uuid = DerivedUuid("GPU-", node_name + "/gpu" + std::to_string(gpu.index));
      gpu.pci_bus_id = DerivedPciBusId(gpu.index);
      if (entry["uuid"]) {
        GPUSLICE_ASSIGN_OR_RETURN(gpu.uuid, r.String(entry["uuid"], path + ".uuid"));
      }
      if (entry["pciBusId"]) {
        GPUSLICE_ASSIGN_OR_RETURN(gpu.pci_bus_id, r.String(entry["pciBusId"], path + ".pciBusId"));
      }
      if (entry["numaNode"]) {
        GPUSLICE_ASSIGN_OR_RETURN(long long numa,
                                  r.Integer(entry["numaNode"], path + ".numaNode", -1, 63));
        gpu.numa_node = static_cast<int>(numa);
      }
      if (entry["healthy"]) {
        GPUSLICE_ASSIGN_OR_RETURN(gpu.healthy, r.Bool(entry["healthy"], path + ".healthy"));
      }
      gpu.pci_class = kPciClass3dController;
      if (entry["mode"]) {
        GPUSLICE_ASSIGN_OR_RETURN(std::string mode, r.String(entry["mode"], path + ".mode"));
        if (mode != "compute" && mode != "graphics") {
          return r.Error(entry["mode"], path + ".mode",
                         "unknown mode \"" + mode + "\"; accepted: compute, graphics");
        }
        if (mode == "graphics") gpu.pci_class = kPciClassVgaController;
      }
      if (entry["mig"]) {
        GPUSLICE_RETURN_IF_ERROR(ParseMig(r, entry["mig"], path + ".mig", *model, gpu));
      }
      if (!uuids.insert(gpu.uuid).second) {
        return r.Error(entry, path + ".uuid", "duplicate GPU UUID " + gpu.uuid);
      }
      gpus.push_back(std::move(gpu));
    }
  }
  // GPUs without an explicit NUMA node are spread evenly over the node's NUMA nodes.
  for (GpuInfo& gpu : gpus) {
    if (gpu.numa_node == -1 && numa_nodes > 0) {
      gpu.numa_node = static_cast<int>(static_cast<long long>(gpu.index) * numa_nodes /
                                       static_cast<long long>(gpus.size()));
    }
  }
  return gpus;
}

// Resolves a device reference (index, "i:j", GPU or MIG UUID) to its UUID.
Result<std::string> ResolveDevice(std::string_view ref, const std::vector<GpuInfo>& gpus) {
  for (const GpuInfo& gpu : gpus) {
    const std::string index = std::to_string(gpu.index);
    if (ref == gpu.uuid || ref == index) return gpu.uuid;
    for (std::size_t m = 0; m < gpu.mig_devices.size(); ++m) {
      if (ref == gpu.mig_devices[m].uuid || ref == index + ":" + std::to_string(m)) {
        return gpu.mig_devices[m].uuid;
      }
    }
  }
  return NotFound("device \"" + std::string(ref) +
                  "\" is not on this node; use a GPU index, \"<gpu>:<mig>\", or a UUID");
}

Result<std::vector<SimulatedNode::ScheduledEvent>> ParseScheduledEvents(
    const NodeReader& r, const YAML::Node& list, const std::vector<GpuInfo>& gpus) {
  std::vector<SimulatedNode::ScheduledEvent> events;
  if (!list) return events;
  if (!list.IsSequence()) return r.Error(list, "healthEvents", "must be a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node e = list[i];
    const std::string path = "healthEvents[" + std::to_string(i) + "]";
    GPUSLICE_RETURN_IF_ERROR(r.CheckKeys(e, path, {"device", "xid", "afterMs", "clearAfterMs"}));
    if (!e["device"]) return r.Error(e, path + ".device", "missing");
    if (!e["xid"]) return r.Error(e, path + ".xid", "missing");
    GPUSLICE_ASSIGN_OR_RETURN(std::string ref, r.String(e["device"], path + ".device"));
    Result<std::string> uuid = ResolveDevice(ref, gpus);
    if (!uuid.ok()) return r.Error(e["device"], path + ".device", uuid.status().message());
    GPUSLICE_ASSIGN_OR_RETURN(long long xid, r.Integer(e["xid"], path + ".xid", 1, 1 << 20));
    long long after_ms = 0;
    if (e["afterMs"]) {
      GPUSLICE_ASSIGN_OR_RETURN(after_ms,
                                r.Integer(e["afterMs"], path + ".afterMs", 0, 1LL << 40));
    }
    SimulatedNode::ScheduledEvent ev;
    ev.event.kind = HealthEvent::Kind::kXid;
    ev.event.device_uuid = *uuid;
    ev.event.xid = static_cast<std::uint64_t>(xid);
    ev.event.detail = "simulated Xid " + std::to_string(xid);
    ev.after = std::chrono::milliseconds(after_ms);
    events.push_back(ev);
    if (e["clearAfterMs"]) {
      GPUSLICE_ASSIGN_OR_RETURN(long long clear_ms,
                                r.Integer(e["clearAfterMs"], path + ".clearAfterMs", 0, 1LL << 40));
      SimulatedNode::ScheduledEvent clear;
      clear.event.kind = HealthEvent::Kind::kRecovered;
      clear.event.device_uuid = *uuid;
      clear.event.detail = "simulated recovery after Xid " + std::to_string(xid);
      clear.after = std::chrono::milliseconds(after_ms + clear_ms);
      events.push_back(clear);
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const auto& a, const auto& b) { return a.after < b.after; });
  return events;
}

}  // namespace

Result<SimulatedNode> ParseSimulatedNode(std::string_view yaml_text, std::string_view source_name) {
  const NodeReader r(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(source_name) + ":" + std::to_string(e.mark.line + 1) +
                           ": invalid YAML: " + e.msg);
  }
  try {
    if (!root.IsMap()) return InvalidArgument(std::string(source_name) + ": must be a YAML mapping "
                                              "with `node` and `gpus`");
    GPUSLICE_RETURN_IF_ERROR(r.CheckKeys(root, "", {"node", "gpus", "healthEvents", "eventsFile"}));
    SimulatedNode node;
    node.name = "sim-node";
    node.driver.driver_version = "550.54.15";
    node.driver.cuda_driver_version = 12040;
    int numa_nodes = 1;
    if (const YAML::Node n = root["node"]) {
      GPUSLICE_RETURN_IF_ERROR(
          r.CheckKeys(n, "node", {"name", "driverVersion", "cudaDriverVersion", "numaNodes"}));
      if (n["name"]) {
        GPUSLICE_ASSIGN_OR_RETURN(node.name, r.String(n["name"], "node.name"));
      }
      if (n["driverVersion"]) {
        GPUSLICE_ASSIGN_OR_RETURN(node.driver.driver_version,
                                  r.String(n["driverVersion"], "node.driverVersion"));
      }
      if (n["cudaDriverVersion"]) {
        GPUSLICE_ASSIGN_OR_RETURN(
            long long v, r.Integer(n["cudaDriverVersion"], "node.cudaDriverVersion", 1000, 99999));
        node.driver.cuda_driver_version = static_cast<int>(v);
      }
      if (n["numaNodes"]) {
        GPUSLICE_ASSIGN_OR_RETURN(long long v, r.Integer(n["numaNodes"], "node.numaNodes", 1, 64));
        numa_nodes = static_cast<int>(v);
      }
    }
    GPUSLICE_ASSIGN_OR_RETURN(node.gpus, ParseGpus(r, root["gpus"], node.name, numa_nodes));
    GPUSLICE_ASSIGN_OR_RETURN(node.scheduled_events,
                              ParseScheduledEvents(r, root["healthEvents"], node.gpus));
    if (root["eventsFile"]) {
      GPUSLICE_ASSIGN_OR_RETURN(node.events_file, r.String(root["eventsFile"], "eventsFile"));
    }
    return node;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(source_name) + ":" + std::to_string(e.mark.line + 1) + ": " +
                           e.msg);
  }
}

Result<SimulatedNode> LoadSimulatedNodeFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("simulated node file " + path + ": cannot be opened");
  std::stringstream text;
  text << in.rdbuf();
  return ParseSimulatedNode(text.str(), path);
}

Result<HealthEvent> ParseHealthEventLine(std::string_view line, const std::vector<GpuInfo>& gpus) {
  std::istringstream in{std::string(line)};
  std::string verb, device;
  in >> verb >> device;
  HealthEvent event;
  if (verb == "xid") {
    std::uint64_t xid = 0;
    if (!(in >> xid) || xid == 0) {
      return InvalidArgument("events line \"" + std::string(line) +
                             "\": expected \"xid <device> <xid number>\"");
    }
    event.kind = HealthEvent::Kind::kXid;
    event.xid = xid;
    event.detail = "injected Xid " + std::to_string(xid);
  } else if (verb == "recover") {
    event.kind = HealthEvent::Kind::kRecovered;
    event.detail = "injected recovery";
  } else {
    return InvalidArgument("events line \"" + std::string(line) +
                           "\": expected \"xid <device> <xid>\" or \"recover <device>\"");
  }
  if (device.empty()) return InvalidArgument("events line \"" + std::string(line) + "\": no device");
  GPUSLICE_ASSIGN_OR_RETURN(event.device_uuid, ResolveDevice(device, gpus));
  return event;
}

SimulatedBackend::SimulatedBackend(SimulatedNode node, std::string source_name, const Clock& clock)
    : node_(std::move(node)),
      source_name_(std::move(source_name)),
      clock_(clock),
      created_(clock.Now()) {
  // Lines already in the events file describe the past; only what is appended counts.
  if (!node_.events_file.empty()) {
    std::ifstream in(node_.events_file, std::ios::binary | std::ios::ate);
    if (in) events_file_offset_ = static_cast<std::size_t>(in.tellg());
  }
}

Result<std::unique_ptr<SimulatedBackend>> SimulatedBackend::FromFile(const std::string& path,
                                                                     const Clock& clock) {
  GPUSLICE_ASSIGN_OR_RETURN(SimulatedNode node, LoadSimulatedNodeFile(path));
  return std::make_unique<SimulatedBackend>(std::move(node), path, clock);
}

std::string SimulatedBackend::Name() const { return "sim:" + source_name_; }

Result<DriverInfo> SimulatedBackend::GetDriverInfo() { return node_.driver; }

Result<std::vector<GpuInfo>> SimulatedBackend::ListGpus() { return node_.gpus; }

void SimulatedBackend::InjectHealthEvent(HealthEvent event) {
  {
    std::lock_guard lock(mu_);
    injected_.push_back(std::move(event));
  }
  injected_cv_.notify_all();
}

void SimulatedBackend::ReadEventsFileLocked(std::vector<HealthEvent>& out) {
  if (node_.events_file.empty()) return;
  std::ifstream in(node_.events_file, std::ios::binary);
  if (!in) return;  // not created yet
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  if (size < events_file_offset_) events_file_offset_ = 0;  // truncated: start over
  if (size == events_file_offset_) return;
  in.seekg(static_cast<std::streamoff>(events_file_offset_));
  std::string chunk(size - events_file_offset_, '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  // Only complete lines are consumed; a partial last line waits for its newline.
  const std::size_t last_newline = chunk.rfind('\n');
  if (last_newline == std::string::npos) return;
  events_file_offset_ += last_newline + 1;
  std::istringstream lines(chunk.substr(0, last_newline));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    Result<HealthEvent> event = ParseHealthEventLine(line, node_.gpus);
    if (event.ok()) out.push_back(std::move(*event));
  }
}

void SimulatedBackend::CollectDueEventsLocked(std::vector<HealthEvent>& out) {
  const Clock::Duration elapsed = clock_.Now() - created_;
  while (next_scheduled_ < node_.scheduled_events.size() &&
         node_.scheduled_events[next_scheduled_].after <= elapsed) {
    out.push_back(node_.scheduled_events[next_scheduled_++].event);
  }
  while (!injected_.empty()) {
    out.push_back(std::move(injected_.front()));
    injected_.pop_front();
  }
  ReadEventsFileLocked(out);
}

Result<std::vector<HealthEvent>> SimulatedBackend::WaitForHealthEvents(
    std::chrono::milliseconds timeout) {
  // Real time bounds the wait; the backend's clock decides which scheduled events are due. The
  // events file is polled, so waits are sliced.
  constexpr std::chrono::milliseconds kPoll(20);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<HealthEvent> out;
  std::unique_lock lock(mu_);
  while (true) {
    CollectDueEventsLocked(out);
    if (!out.empty()) return out;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return out;
    injected_cv_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(kPoll, deadline - now));
  }
}

}  // namespace gpuslice
