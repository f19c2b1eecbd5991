#include "node_agent/compute_cap.h"

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <system_error>

#include "core/gpu_annotations.h"
#include "core/resource_names.h"

namespace gpuslice {

int ComputeLimitOf(const nlohmann::json& pod, const std::string& container) {
  const nlohmann::json* spec = FindKey(pod, "spec");
  const nlohmann::json* containers = spec != nullptr ? FindKey(*spec, "containers") : nullptr;
  if (containers == nullptr || !containers->is_array()) return 0;
  for (const nlohmann::json& c : *containers) {
    if (StringKey(c, "name") != container) continue;
    const nlohmann::json* resources = FindKey(c, "resources");
    const nlohmann::json* limits = resources != nullptr ? FindKey(*resources, "limits") : nullptr;
    const nlohmann::json* value =
        limits != nullptr ? FindKey(*limits, names::kGpusliceGpuCompute) : nullptr;
    if (value == nullptr) return 0;
    int percent = 0;
    // Range-checked as 64 bits first: 4294967326 must not wrap to 30.
    if (value->is_number_integer() && value->get<std::int64_t>() >= 1 &&
        value->get<std::int64_t>() <= 100) {
      percent = static_cast<int>(value->get<std::int64_t>());
    }
    if (value->is_string()) {  // a quantity such as "30"; anything else (or overflow) is 0
      const std::string text = value->get<std::string>();
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), percent);
      if (error != std::errc() || end != text.data() + text.size()) percent = 0;
    }
    return percent >= 1 && percent <= 100 ? percent : 0;
  }
  return 0;
}

Result<std::uint32_t> ParseComputeCap(const std::string& text, std::uint32_t weight_percent) {
  const std::string accepted = "accepted: a whole percent from the pod's " +
                               std::string(names::kGpusliceGpuCompute) + " request (" +
                               std::to_string(weight_percent) + ") to 100, digits only";
  const bool digits = !text.empty() && text.size() <= 3 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  const std::uint32_t cap = digits ? static_cast<std::uint32_t>(std::stoul(text)) : 0;
  if (!digits || cap < weight_percent || cap > 100) {
    return InvalidArgument("annotation " + std::string(names::kAnnotationPodGpuComputeCap) + "=\"" +
                           text + "\" is not valid; " + accepted);
  }
  return cap;
}

Result<std::uint32_t> ComputeCapOf(const nlohmann::json& pod, const std::string& container,
                                   std::uint32_t weight_percent) {
  const nlohmann::json* meta = FindKey(pod, "metadata");
  const nlohmann::json* annotations = meta != nullptr ? FindKey(*meta, "annotations") : nullptr;
  const nlohmann::json* cap =
      annotations != nullptr ? FindKey(*annotations, names::kAnnotationPodGpuComputeCap) : nullptr;
  if (cap != nullptr) {
    return ParseComputeCap(cap->is_string() ? cap->get<std::string>() : cap->dump(),
                           weight_percent);
  }
  const int limit = ComputeLimitOf(pod, container);
  return limit > static_cast<int>(weight_percent) ? static_cast<std::uint32_t>(limit) : 0u;
}

}  // namespace gpuslice
