#include "isolation/oci_hook.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/resource_names.h"
#include "isolation/mps_v3.h"

namespace gpuslice {
namespace {

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Unavailable("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) return Unavailable("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Unavailable("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Result<OciState> ParseOciState(std::string_view json_text) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument("OCI state on stdin is not a JSON object");
  }
  OciState state;
  if (!j.contains("id") || !j["id"].is_string()) {
    return InvalidArgument("OCI state: \"id\" (string) is missing");
  }
  state.id = j["id"].get<std::string>();
  GPUSLICE_RETURN_IF_ERROR(ValidateContainerId(state.id));
  if (!j.contains("pid") || !j["pid"].is_number_integer() || j["pid"].get<long>() <= 0) {
    return InvalidArgument(
        "OCI state: \"pid\" (positive integer) is missing; the hook must run "
        "as createContainer or later, when the container process exists");
  }
  state.pid = j["pid"].get<long>();
  if (!j.contains("bundle") || !j["bundle"].is_string() || j["bundle"].get<std::string>().empty()) {
    return InvalidArgument("OCI state: \"bundle\" (path) is missing");
  }
  state.bundle = j["bundle"].get<std::string>();
  return state;
}

Result<std::string> ParseCgroupV2Path(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) {
      std::string path = line.substr(3);
      if (path.empty() || path[0] != '/' || path.find("/..") != std::string::npos) {
        return InvalidArgument("cgroup v2 entry '" + line + "' has no absolute path");
      }
      return path;
    }
  }
  return FailedPrecondition(
      "no cgroup v2 entry (\"0::<path>\") in the process's cgroup file: "
      "driver-enforced isolation needs a cgroup v2 node");
}

Result<std::string> ReadBundleEnv(const std::string& bundle_dir, std::string_view key) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(bundle_dir + "/config.json"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(bundle_dir + "/config.json is not a JSON object");
  }
  const std::string prefix = std::string(key) + "=";
  std::string value;
  if (j.contains("process") && j["process"].contains("env") && j["process"]["env"].is_array()) {
    for (const auto& entry : j["process"]["env"]) {
      if (!entry.is_string()) continue;
      const std::string s = entry.get<std::string>();
      // The last definition wins, as in execve's environment lookup by getenv.
      if (s.rfind(prefix, 0) == 0) value = s.substr(prefix.size());
    }
  }
  return value;
}

Result<std::string> ReadBundlePodAnnotation(const std::string& bundle_dir, std::string_view key) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(bundle_dir + "/config.json"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(bundle_dir + "/config.json is not a JSON object");
  }
  if (!j.contains("annotations") || !j["annotations"].is_object()) return std::string();
  const nlohmann::json& annotations = j["annotations"];
  if (auto it = annotations.find(std::string(key)); it != annotations.end() && it->is_string()) {
    return it->get<std::string>();
  }
  auto crio = annotations.find(std::string(names::kCrioPodAnnotations));
  if (crio != annotations.end() && crio->is_string()) {
    const nlohmann::json pod = nlohmann::json::parse(crio->get<std::string>(), nullptr, false);
    if (pod.is_object()) {
      auto it = pod.find(std::string(key));
      if (it != pod.end() && it->is_string()) return it->get<std::string>();
    }
  }
  return std::string();
}

Result<PodRef> ReadBundlePodRef(const std::string& bundle_dir) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(bundle_dir + "/config.json"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(bundle_dir + "/config.json is not a JSON object");
  }
  PodRef pod;
  if (!j.contains("annotations") || !j["annotations"].is_object()) return pod;
  const nlohmann::json& annotations = j["annotations"];
  auto get = [&](std::string_view key) {
    auto it = annotations.find(std::string(key));
    return it != annotations.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  pod = {get(names::kContainerdPodNamespace), get(names::kContainerdPodName),
         get(names::kContainerdPodUid)};
  if (pod.empty()) {
    pod = {get(names::kCrioPodNamespace), get(names::kCrioPodName), get(names::kCrioPodUid)};
  }
  if (pod.empty()) return PodRef{};
  return pod;
}

Status ValidateContainerId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') {
    return InvalidArgument("container id '" + std::string(id) +
                           "' is invalid: 1 to 128 characters of [A-Za-z0-9_.-], not starting "
                           "with '.'");
  }
  for (char c : id) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    if (!ok) {
      return InvalidArgument("container id '" + std::string(id) +
                             "' has a character outside [A-Za-z0-9_.-]");
    }
  }
  return Status::Ok();
}

std::string HookRequestToJson(const HookRequest& request) {
  nlohmann::json j;
  j["id"] = request.container_id;
  j["pid"] = request.pid;
  j["cgroup"] = request.cgroup_path;
  j["token"] = request.token;
  if (!request.mps_client_priority.empty()) j["mpsClientPriority"] = request.mps_client_priority;
  if (!request.pod.empty()) {
    j["podNamespace"] = request.pod.namespace_name;
    j["podName"] = request.pod.name;
    if (!request.pod.uid.empty()) j["podUid"] = request.pod.uid;
  }
  return j.dump();
}

Result<HookRequest> HookRequestFromJson(std::string_view json_text) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string() ||
      !j.contains("pid") || !j["pid"].is_number_integer() || !j.contains("cgroup") ||
      !j["cgroup"].is_string() || !j.contains("token") || !j["token"].is_string()) {
    return InvalidArgument("hook request is not {\"id\",\"pid\",\"cgroup\",\"token\"} JSON");
  }
  HookRequest request;
  request.container_id = j["id"].get<std::string>();
  request.pid = j["pid"].get<long>();
  request.cgroup_path = j["cgroup"].get<std::string>();
  request.token = j["token"].get<std::string>();
  if (j.contains("mpsClientPriority")) {
    if (!j["mpsClientPriority"].is_string()) {
      return InvalidArgument("hook request: \"mpsClientPriority\" is not a string");
    }
    request.mps_client_priority = j["mpsClientPriority"].get<std::string>();
  }
  for (auto [key, field] :
       {std::pair{"podNamespace", &request.pod.namespace_name},
        std::pair{"podName", &request.pod.name}, std::pair{"podUid", &request.pod.uid}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) {
      return InvalidArgument(std::string("hook request: \"") + key + "\" is not a string");
    }
    *field = j[key].get<std::string>();
  }
  GPUSLICE_RETURN_IF_ERROR(ValidateContainerId(request.container_id));
  return request;
}

std::string SpoolRequestPath(const std::string& spool_dir, const std::string& container_id) {
  return spool_dir + "/requests/" + container_id + ".json";
}
std::string SpoolReplyPath(const std::string& spool_dir, const std::string& container_id) {
  return spool_dir + "/replies/" + container_id + ".json";
}

Result<HookRequest> BuildHookRequest(const HookOptions& options, std::string_view state_json) {
  GPUSLICE_ASSIGN_OR_RETURN(OciState state, ParseOciState(state_json));
  HookRequest request;
  request.container_id = state.id;
  request.pid = state.pid;
  GPUSLICE_ASSIGN_OR_RETURN(request.token, ReadBundleEnv(state.bundle, names::kIsolationTokenEnv));
  if (request.token.empty()) return request;
  // A bad value fails the container's creation here, with the reason, before the agent is asked.
  GPUSLICE_ASSIGN_OR_RETURN(
      request.mps_client_priority,
      ReadBundlePodAnnotation(state.bundle, names::kAnnotationPodMpsClientPriority));
  if (!request.mps_client_priority.empty()) {
    GPUSLICE_RETURN_IF_ERROR(
        ParseMpsClientPriority(request.mps_client_priority,
                               "container " + state.id + ": pod annotation " +
                                   std::string(names::kAnnotationPodMpsClientPriority))
            .status());
  }
  GPUSLICE_ASSIGN_OR_RETURN(request.pod, ReadBundlePodRef(state.bundle));
  const std::string cgroup_file = options.proc_root + "/" + std::to_string(state.pid) + "/cgroup";
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(cgroup_file));
  GPUSLICE_ASSIGN_OR_RETURN(std::string path, ParseCgroupV2Path(text));
  request.cgroup_path = options.cgroup_mount + path;
  return request;
}

Status RunCreateContainerHook(const HookOptions& options, std::string_view state_json) {
  GPUSLICE_ASSIGN_OR_RETURN(HookRequest request, BuildHookRequest(options, state_json));
  if (request.token.empty()) return Status::Ok();  // not a container gpuslice isolates
  std::error_code ec;
  std::filesystem::create_directories(options.spool_dir + "/requests", ec);
  std::filesystem::create_directories(options.spool_dir + "/replies", ec);
  const std::string reply_path = SpoolReplyPath(options.spool_dir, request.container_id);
  std::filesystem::remove(reply_path, ec);
  GPUSLICE_RETURN_IF_ERROR(WriteFileAtomically(
      SpoolRequestPath(options.spool_dir, request.container_id), HookRequestToJson(request)));
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  auto pause = std::chrono::milliseconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(reply_path, ec)) {
      GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(reply_path));
      std::filesystem::remove(reply_path, ec);
      const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.contains("ok") || !j["ok"].is_boolean()) {
        return Internal("malformed reply from the node agent in " + reply_path);
      }
      if (j["ok"].get<bool>()) return Status::Ok();
      return FailedPrecondition("node agent refused container " + request.container_id + ": " +
                                j.value("message", std::string("no reason given")));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  std::filesystem::remove(SpoolRequestPath(options.spool_dir, request.container_id), ec);
  return Unavailable("the node agent did not answer for container " + request.container_id +
                     " within " + std::to_string(options.timeout.count()) + " ms (spool " +
                     options.spool_dir + "); is gpuslice-node-agent running?");
}

}  // namespace gpuslice
