#include "isolation/isolation_state.h"

#include <climits>
#include <nlohmann/json.hpp>

#include "isolation/oci_hook.h"

namespace gpuslice {
namespace {

using Json = nlohmann::json;

nlohmann::json PartitionJson(const Partition& p) {
  Json more = Json::array();
  for (const GpuShare& g : p.more_gpus) {
    more.push_back(
        {{"gpu", g.gpu_uuid}, {"hard", g.hard_limit_bytes}, {"soft", g.soft_limit_bytes}});
  }
  return {{"gpu", p.gpu_uuid},
          {"moreGpus", more},
          {"hard", p.hard_limit_bytes},
          {"soft", p.soft_limit_bytes},
          {"mps", p.mps},
          {"threads", p.active_thread_percentage},
          {"priority", p.client_priority},
          {"namespace", p.mps_namespace},
          {"limitsFrom", p.awaiting_limits_from},
          {"podCgroup", p.pod_cgroup},
          {"resource", p.resource_name},
          {"devices", p.device_ids}};
}

// Reads the fields of one JSON object, each checked for type and range; the first problem is
// kept with the field's path ("containers[2].partition.hard").
class Fields {
 public:
  Fields(const Json& object, std::string path) : object_(object), path_(std::move(path)) {}

  void String(const char* key, std::string* out) {
    const Json* v = Find(key);
    if (v == nullptr) return;
    if (!v->is_string()) return Fail(key, "a string", *v);
    *out = v->get<std::string>();
  }
  void Bool(const char* key, bool* out) {
    const Json* v = Find(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return Fail(key, "true or false", *v);
    *out = v->get<bool>();
  }
  // An integer in [min, max]; checked before conversion (nlohmann converts a float such as
  // 1e20 to an integer type without a check).
  template <typename T>
  void Integer(const char* key, T* out, std::int64_t min, std::uint64_t max, const char* what) {
    const Json* v = Find(key);
    if (v == nullptr) return;
    if (v->is_number_unsigned()) {
      const auto n = v->get<std::uint64_t>();
      if (n <= max && (min <= 0 || n >= static_cast<std::uint64_t>(min))) {
        *out = static_cast<T>(n);
        return;
      }
    } else if (v->is_number_integer()) {
      const auto n = v->get<std::int64_t>();
      if (n >= min && (n < 0 || static_cast<std::uint64_t>(n) <= max)) {
        *out = static_cast<T>(n);
        return;
      }
    }
    Fail(key, what, *v);
  }
  const Json* Array(const char* key) {
    const Json* v = Find(key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      Fail(key, "an array", *v);
      return nullptr;
    }
    return v;
  }
  const Json* Object(const char* key) {
    const Json* v = Find(key);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) {
      Fail(key, "an object", *v);
      return nullptr;
    }
    return v;
  }
  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }

 private:
  const Json* Find(const char* key) {
    if (!error_.empty()) return nullptr;
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  void Fail(const char* key, const char* expected, const Json& got) {
    if (!error_.empty()) return;
    std::string shown = got.dump(-1, ' ', true, Json::error_handler_t::replace);
    if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
    error_ = path_ + (path_.empty() ? "" : ".") + key + ": expected " + expected + ", got " + shown;
  }
  const Json& object_;
  std::string path_;
  std::string error_;
};

Status PartitionFrom(const Json& j, const std::string& path, Partition* p) {
  if (!j.is_object()) return InvalidArgument(path + ": expected an object (a partition)");
  Fields f(j, path);
  f.String("gpu", &p->gpu_uuid);
  f.Integer("hard", &p->hard_limit_bytes, 0, UINT64_MAX, "a byte count (an integer >= 0)");
  f.Integer("soft", &p->soft_limit_bytes, 0, UINT64_MAX, "a byte count (an integer >= 0)");
  f.Bool("mps", &p->mps);
  f.Integer("threads", &p->active_thread_percentage, 1, 100, "an integer 1-100");
  f.Integer("priority", &p->client_priority, 0, 1, "0 or 1");
  f.String("namespace", &p->mps_namespace);
  f.String("limitsFrom", &p->awaiting_limits_from);
  f.String("podCgroup", &p->pod_cgroup);
  f.String("resource", &p->resource_name);
  const Json* devices = f.Array("devices");
  const Json* more = f.Array("moreGpus");
  if (!f.error().empty()) return InvalidArgument(f.error());
  for (std::size_t i = 0; devices != nullptr && i < devices->size(); ++i) {
    if (!(*devices)[i].is_string()) {
      return InvalidArgument(path + ".devices[" + std::to_string(i) +
                             "]: expected a string (a device ID)");
    }
    p->device_ids.push_back((*devices)[i].get<std::string>());
  }
  for (std::size_t i = 0; more != nullptr && i < more->size(); ++i) {
    const std::string at = path + ".moreGpus[" + std::to_string(i) + "]";
    if (!(*more)[i].is_object()) return InvalidArgument(at + ": expected an object (a GPU share)");
    GpuShare g;
    Fields share((*more)[i], at);
    share.String("gpu", &g.gpu_uuid);
    share.Integer("hard", &g.hard_limit_bytes, 0, UINT64_MAX, "a byte count (an integer >= 0)");
    share.Integer("soft", &g.soft_limit_bytes, 0, UINT64_MAX, "a byte count (an integer >= 0)");
    if (!share.error().empty()) return InvalidArgument(share.error());
    p->more_gpus.push_back(std::move(g));
  }
  return Status::Ok();
}

Status BindingFrom(const Json& j, const std::string& path, ContainerBinding* b) {
  if (!j.is_object()) return InvalidArgument(path + ": expected an object (a container)");
  Fields f(j, path);
  f.String("id", &b->container_id);
  f.Integer("pid", &b->pid, 0, INT32_MAX, "a pid (an integer 0-2147483647)");
  f.String("cgroup", &b->cgroup_path);
  f.String("mpsServer", &b->mps_server);
  f.String("mpsNamespace", &b->mps_namespace);
  f.String("token", &b->token);
  const Json* partition = f.Object("partition");
  if (!f.error().empty()) return InvalidArgument(f.error());
  if (partition != nullptr) {
    GPUSLICE_RETURN_IF_ERROR(PartitionFrom(*partition, path + ".partition", &b->partition));
  }
  if (Status id = ValidateContainerId(b->container_id); !id.ok()) {
    return InvalidArgument(path + ".id: " + id.message());
  }
  return Status::Ok();
}

Status StateFrom(const Json& state, IsolationState* out) {
  if (!state.is_object()) return InvalidArgument("expected a JSON object");
  auto version = state.find("version");
  if (version == state.end() || !version->is_number_integer() ||
      version->get<std::int64_t>() != 1) {
    return InvalidArgument("\"version\" must be 1 (a version 1 gpuslice state file)");
  }
  if (auto pending = state.find("pending"); pending != state.end() && !pending->is_null()) {
    if (!pending->is_object()) return InvalidArgument("pending: expected an object");
    for (const auto& [token, p] : pending->items()) {
      GPUSLICE_RETURN_IF_ERROR(
          PartitionFrom(p, "pending[\"" + token + "\"]", &out->pending[token]));
    }
  }
  if (auto containers = state.find("containers");
      containers != state.end() && !containers->is_null()) {
    if (!containers->is_array()) return InvalidArgument("containers: expected an array");
    for (std::size_t i = 0; i < containers->size(); ++i) {
      ContainerBinding b;
      GPUSLICE_RETURN_IF_ERROR(
          BindingFrom((*containers)[i], "containers[" + std::to_string(i) + "]", &b));
      out->containers.push_back(std::move(b));
    }
  }
  return Status::Ok();
}

}  // namespace

std::string FormatIsolationState(const IsolationState& s) {
  Json state;
  state["version"] = 1;
  state["pending"] = Json::object();
  for (const auto& [token, p] : s.pending) state["pending"][token] = PartitionJson(p);
  state["containers"] = Json::array();
  for (const ContainerBinding& b : s.containers) {
    state["containers"].push_back({{"id", b.container_id},
                                   {"pid", b.pid},
                                   {"cgroup", b.cgroup_path},
                                   {"partition", PartitionJson(b.partition)},
                                   {"mpsServer", b.mps_server},
                                   {"mpsNamespace", b.mps_namespace},
                                   {"token", b.token}});
  }
  // Replace invalid UTF-8 rather than throw (a cgroup path is whatever the kernel showed).
  return state.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<IsolationState> ParseIsolationState(std::string_view text, const std::string& where) {
  const Json state = Json::parse(text.begin(), text.end(), nullptr, false);
  IsolationState out;
  Status status = state.is_discarded() ? InvalidArgument("not valid JSON") : StateFrom(state, &out);
  if (!status.ok()) {
    return InvalidArgument("isolation state " + where + ": " + status.message() +
                           "; move the file away to start fresh (live containers then keep "
                           "their limits until they end)");
  }
  return out;
}

}  // namespace gpuslice
