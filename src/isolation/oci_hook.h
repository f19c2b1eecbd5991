// The OCI createContainer hook: how the node agent learns a shared container's cgroup before the
// container's process runs.
//
// The CDI spec the agent writes carries the hook (`gpuslice-node-agent hook create-container`)
// for every device. The runtime (runc/crun under containerd or CRI-O) runs it in the runtime
// namespace after the container is created and before its process starts, with the OCI state
// ({"ociVersion","id","status","pid","bundle","annotations"}) on stdin. The hook resolves the
// container's cgroup from /proc/<pid>/cgroup, reads the allocation token the agent put in the
// container's environment at Allocate (bundle/config.json, written by the runtime, not by the
// tenant's processes), and hands {id, pid, cgroup, token} to the agent through a spool
// directory. It waits for the agent's reply, so limits are in place before the process runs; a
// refusal or timeout fails the container's creation (the kubelet retries it).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gpuslice {

struct OciState {
  std::string id;
  long pid = 0;
  std::string bundle;
};

// Parses the OCI runtime state JSON. Errors say which field is missing or wrong.
Result<OciState> ParseOciState(std::string_view json_text);

// The cgroup v2 path ("/kubepods/...") from /proc/<pid>/cgroup text: the "0::<path>" line.
Result<std::string> ParseCgroupV2Path(std::string_view proc_cgroup_text);

// The value of `key` in the bundle's config.json process.env; "" when absent.
Result<std::string> ReadBundleEnv(const std::string& bundle_dir, std::string_view key);

// The value of pod annotation `key` as the runtime passed it in the bundle's config.json: an
// annotation of its own (containerd, for keys its runtime's `pod_annotations` allows) or a key of
// CRI-O's io.kubernetes.cri-o.Annotations object; "" when absent.
Result<std::string> ReadBundlePodAnnotation(const std::string& bundle_dir, std::string_view key);

// The pod a container belongs to, as the runtime names it in the bundle's annotations; empty
// fields when it does not (a container not created through the CRI).
struct PodRef {
  std::string namespace_name;
  std::string name;
  std::string uid;  // "" when the runtime does not pass it (containerd before 1.6.11)
  bool empty() const { return namespace_name.empty() || name.empty(); }
  std::string Describe() const { return namespace_name + "/" + name; }
};

// The pod named by the bundle's config.json annotations: containerd's
// io.kubernetes.cri.sandbox-{namespace,name,uid}, else CRI-O's io.kubernetes.pod.{namespace,name,
// uid}. All empty when neither set is there.
Result<PodRef> ReadBundlePodRef(const std::string& bundle_dir);

// Container ids become file names: [A-Za-z0-9_.-], 1..128 characters, not starting with '.'.
Status ValidateContainerId(std::string_view id);

// What the hook hands to the agent.
struct HookRequest {
  std::string container_id;
  long pid = 0;
  std::string cgroup_path;  // full sysfs path: <cgroup mount><path from /proc/<pid>/cgroup>
  std::string token;        // the allocation token; "" when the container has none
  // The pod's gpuslice.io/mps-client-priority as given ("" = not set); checked by the hook and
  // again by the agent, which refuses a value NVIDIA does not document.
  std::string mps_client_priority = {};
  // The container's pod (ReadBundlePodRef), so the agent can read the pod's annotations from the
  // API server when the bundle lacks them. Optional fields in the JSON ("podNamespace",
  // "podName", "podUid"): an older agent ignores them, a request of an older hook has none.
  PodRef pod = {};
};

std::string HookRequestToJson(const HookRequest& request);
Result<HookRequest> HookRequestFromJson(std::string_view json_text);

struct HookOptions {
  std::string spool_dir = "/run/gpuslice/isolation";
  std::string proc_root = "/proc";
  std::string cgroup_mount = "/sys/fs/cgroup";
  std::chrono::milliseconds timeout{10000};
};

// Spool layout: <spool>/requests/<id>.json (hook -> agent), <spool>/replies/<id>.json
// ({"ok":bool,"message":string}, agent -> hook).
std::string SpoolRequestPath(const std::string& spool_dir, const std::string& container_id);
std::string SpoolReplyPath(const std::string& spool_dir, const std::string& container_id);

// Builds the request from the OCI state on stdin (no token: OK without contacting the agent).
Result<HookRequest> BuildHookRequest(const HookOptions& options, std::string_view state_json);

// The whole hook: build, spool, wait for the agent's reply. OK = the container may start.
Status RunCreateContainerHook(const HookOptions& options, std::string_view state_json);

}  // namespace gpuslice
