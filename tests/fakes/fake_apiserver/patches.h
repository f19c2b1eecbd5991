// The three PATCH flavours the API server accepts.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/status.h"

namespace gpuslice::fake {

// Applies `patch` to `target` according to the Content-Type:
//  application/merge-patch+json            RFC 7386
//  application/strategic-merge-patch+json  merge patch, plus lists merged by their Kubernetes
//      merge key (containers/volumes/env... by name, ports by containerPort, volumeMounts by
//      mountPath, conditions/addresses by type) and `$patch: delete` list items
//  application/json-patch+json             RFC 6902
// Errors: kInvalidArgument for a malformed patch or a failed JSON-patch operation,
// kFailedPrecondition (415) for another Content-Type.
Result<nlohmann::json> ApplyPatch(std::string_view content_type, const nlohmann::json& target,
                                  const nlohmann::json& patch);

}  // namespace gpuslice::fake
