// Every Kubernetes resource name, label key and annotation gpuslice uses, in one place.
#pragma once

#include <string_view>

namespace gpuslice::names {

// Resources, as NVIDIA's device plugin advertises them.
inline constexpr std::string_view kNvidiaPrefix = "nvidia.com/";
inline constexpr std::string_view kNvidiaGpu = "nvidia.com/gpu";
inline constexpr std::string_view kNvidiaMigPrefix = "nvidia.com/mig-";  // + profile
inline constexpr std::string_view kSharedSuffix = ".shared";             // renameByDefault

// gpuslice's fractional resources.
inline constexpr std::string_view kGpusliceGpu = "gpuslice.io/gpu";
inline constexpr std::string_view kGpusliceGpuMemory = "gpuslice.io/gpu-memory";
inline constexpr std::string_view kGpusliceGpuCompute = "gpuslice.io/gpu-compute";

// Separator between a device ID and its replica number: "<uuid>::<n>".
inline constexpr std::string_view kReplicaSeparator = "::";

// Label keys (GPU Feature Discovery compatible). Resource-scoped labels are
// "<resource name>.<suffix>", e.g. "nvidia.com/gpu.product", "nvidia.com/mig-1g.5gb.count".
inline constexpr std::string_view kLabelSuffixProduct = "product";
inline constexpr std::string_view kLabelSuffixCount = "count";
inline constexpr std::string_view kLabelSuffixMemory = "memory";
inline constexpr std::string_view kLabelSuffixReplicas = "replicas";
inline constexpr std::string_view kLabelSuffixSharingStrategy = "sharing-strategy";
inline constexpr std::string_view kLabelSuffixFamily = "family";
inline constexpr std::string_view kLabelSuffixComputeMajor = "compute.major";
inline constexpr std::string_view kLabelSuffixComputeMinor = "compute.minor";
inline constexpr std::string_view kLabelMigCapable = "nvidia.com/mig.capable";
inline constexpr std::string_view kLabelMigStrategy = "nvidia.com/mig.strategy";
inline constexpr std::string_view kLabelMpsCapable = "nvidia.com/mps.capable";
inline constexpr std::string_view kLabelCudaDriverMajor = "nvidia.com/cuda.driver.major";
inline constexpr std::string_view kLabelCudaDriverMinor = "nvidia.com/cuda.driver.minor";
inline constexpr std::string_view kLabelCudaDriverRev = "nvidia.com/cuda.driver.rev";
inline constexpr std::string_view kLabelCudaDriverVersionPrefix = "nvidia.com/cuda.driver-version.";
inline constexpr std::string_view kLabelCudaRuntimeMajor = "nvidia.com/cuda.runtime.major";
inline constexpr std::string_view kLabelCudaRuntimeMinor = "nvidia.com/cuda.runtime.minor";
inline constexpr std::string_view kLabelCudaRuntimeVersionPrefix =
    "nvidia.com/cuda.runtime-version.";
inline constexpr std::string_view kLabelGpuMode =
    "nvidia.com/gpu.mode";  // compute|graphics|unknown
inline constexpr std::string_view kLabelGpuMachine = "nvidia.com/gpu.machine";
inline constexpr std::string_view kLabelGfdTimestamp = "nvidia.com/gfd.timestamp";
inline constexpr std::string_view kLabelVgpuPresent = "nvidia.com/vgpu.present";
// The GPU Operator's per-node choice among named device-plugin configurations.
inline constexpr std::string_view kLabelDevicePluginConfig = "nvidia.com/device-plugin.config";
inline constexpr std::string_view kLabelGpusliceFractionalCount = "gpuslice.io/gpu.count";
inline constexpr std::string_view kLabelGpusliceFractionalSlots = "gpuslice.io/gpu.slots";
inline constexpr std::string_view kLabelGpusliceFractionalMemory = "gpuslice.io/gpu.memory";
// Which isolation the node gives (docs/isolation.md): "driver" (per-cgroup limits enforced by the
// NVIDIA driver, r615+) or "shim"; and the MPS generation: "v3", "v2" or "none".
inline constexpr std::string_view kLabelMemoryIsolation = "gpuslice.io/memory-isolation";
inline constexpr std::string_view kLabelMps = "gpuslice.io/mps";

// Container-side names the node agent hands to containers in Allocate.
inline constexpr std::string_view kVisibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES";
inline constexpr std::string_view kVolumeMountDeviceRoot = "/var/run/nvidia-container-devices";
inline constexpr std::string_view kCdiKind = "nvidia.com/gpu";
inline constexpr std::string_view kMpsPipeDirectoryEnv = "CUDA_MPS_PIPE_DIRECTORY";
inline constexpr std::string_view kMpsActiveThreadPercentageEnv =
    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE";
inline constexpr std::string_view kMpsPinnedDeviceMemLimitEnv = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT";
inline constexpr std::string_view kMpsContainerPipeDirectory = "/tmp/nvidia-mps";
// The one-time token the agent puts in a shared container's environment at Allocate; the OCI
// createContainer hook hands it back with the container's cgroup (docs/isolation.md).
inline constexpr std::string_view kIsolationTokenEnv = "GPUSLICE_ISOLATION_TOKEN";
inline constexpr std::string_view kCdiAnnotationPlugin = "gpuslice-node-agent";

// Scheduler extender <-> node agent hand-off (docs/scheduler.md). Node annotation: the GPUs a node
// offers to fractional pods, published by the node agent (versioned JSON). Pod annotation: the
// extender's choice (node, GPUs, memory, compute), written in the Binding with the node.
inline constexpr std::string_view kAnnotationNodeGpus = "gpuslice.io/gpus";
inline constexpr std::string_view kAnnotationPodAssignment = "gpuslice.io/assignment";
// Pod annotation a user may set: the GPU models the pod accepts, comma-separated.
inline constexpr std::string_view kAnnotationPodGpuModels = "gpuslice.io/gpu-models";
// Pod annotation a user may set: a hard cap on the pod's GPU time, a whole percent from its
// gpuslice.io/gpu-compute request to 100 (docs/shim.md "Compute shares"). Kubernetes requires
// requests = limits for extended resources, so a gpu-compute limit cannot carry it.
inline constexpr std::string_view kAnnotationPodGpuComputeCap = "gpuslice.io/gpu-compute-cap";
// Pod annotation a user may set: the client priority of the pod's MPS v3 namespaces, with the
// values NVIDIA documents for CUDA_MPS_CLIENT_PRIORITY: "0" (normal, the default) or "1" (below
// normal). Read by the createContainer hook from the OCI bundle, else by the agent from the pod in
// the API server (docs/isolation.md).
inline constexpr std::string_view kAnnotationPodMpsClientPriority =
    "gpuslice.io/mps-client-priority";
// The OCI annotation in which CRI-O passes every pod annotation, as one JSON object (containerd
// passes those its runtime's `pod_annotations` list allows as annotations of their own).
inline constexpr std::string_view kCrioPodAnnotations = "io.kubernetes.cri-o.Annotations";
// The OCI annotations naming a container's pod. containerd's CRI plugin
// (pkg/cri/annotations: SandboxNamespace, SandboxName, SandboxUID; the UID since 1.6.11/1.7.0)
// writes them on every container; CRI-O copies the kubelet's container labels
// (pkg/kubelet/types/labels.go) into the spec's annotations.
inline constexpr std::string_view kContainerdPodNamespace = "io.kubernetes.cri.sandbox-namespace";
inline constexpr std::string_view kContainerdPodName = "io.kubernetes.cri.sandbox-name";
inline constexpr std::string_view kContainerdPodUid = "io.kubernetes.cri.sandbox-uid";
inline constexpr std::string_view kCrioPodNamespace = "io.kubernetes.pod.namespace";
inline constexpr std::string_view kCrioPodName = "io.kubernetes.pod.name";
inline constexpr std::string_view kCrioPodUid = "io.kubernetes.pod.uid";

}  // namespace gpuslice::names
