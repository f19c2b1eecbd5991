// DeviceSelector builders shared by the core tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/sharing_config.h"

namespace gpuslice::test_support {

// `devices: [ids...]`
inline DeviceSelector List(std::vector<std::string> ids) {
  DeviceSelector s;
  s.kind = DeviceSelector::Kind::kList;
  s.ids = std::move(ids);
  return s;
}

// `devices: n`
inline DeviceSelector Count(int n) {
  DeviceSelector s;
  s.kind = DeviceSelector::Kind::kCount;
  s.count = n;
  return s;
}

}  // namespace gpuslice::test_support
