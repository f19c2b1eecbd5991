// Reading the Alibaba GPU-sharing trace (clusterdata "openb" files) and files in the same format.
//
// Node files: sn,cpu_milli,memory_mib,gpu,model. Pod files: name,cpu_milli,memory_mib,num_gpu,
// gpu_milli and optionally gpu_spec ("A|B"), qos, pod_phase, creation_time, deletion_time,
// scheduled_time. Columns are found by header name, so their order does not matter. Errors name
// the file, line and column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "placement/cluster_state.h"

namespace gpuslice::simulator {

struct TracePod {
  placement::PodSpec spec;
  std::int64_t creation_time = -1;  // seconds; -1 when the file has no times
  std::int64_t deletion_time = -1;
  std::string phase;
};

// `source` names the text in error messages (usually the path).
Result<std::vector<placement::NodeSpec>> ParseNodeCsv(const std::string& text,
                                                      const std::string& source);
Result<std::vector<TracePod>> ParsePodCsv(const std::string& text, const std::string& source);

Result<std::vector<placement::NodeSpec>> ReadNodeCsv(const std::string& path);
Result<std::vector<TracePod>> ReadPodCsv(const std::string& path);

// Where the trace lives relative to the repository (../shared/data/alibaba-gpu-v2023); empty
// when it is not there.
std::string DefaultTraceDir(const std::string& repo_root);

}  // namespace gpuslice::simulator
