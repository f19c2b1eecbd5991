// Label and field selectors as the API server parses them (?labelSelector=, ?fieldSelector=).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gpuslice::fake {

// Label selector: comma-separated requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
// `k notin (a,b)`. An empty selector matches everything.
class LabelSelector {
 public:
  static Result<LabelSelector> Parse(std::string_view text);
  bool Matches(const nlohmann::json& object) const;  // reads metadata.labels

 private:
  enum class Op { kExists, kNotExists, kEquals, kNotEquals, kIn, kNotIn };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

// Field selector: comma-separated `path=value`, `path==value`, `path!=value`, where path is a
// dotted JSON path such as metadata.name, metadata.namespace, spec.nodeName or status.phase. A
// missing field compares as "" (so `spec.nodeName=` selects unscheduled pods, as on the real
// server).
class FieldSelector {
 public:
  static Result<FieldSelector> Parse(std::string_view text);
  bool Matches(const nlohmann::json& object) const;

 private:
  struct Requirement {
    std::vector<std::string> path;
    bool equals;
    std::string value;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace gpuslice::fake
