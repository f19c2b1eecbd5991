// Writing files other programs read while we rewrite them (NFD feature file, CDI spec).
#pragma once

#include <string>

#include "core/status.h"

namespace gpuslice {

// Writes `content` to a temporary file beside `path` and renames it over `path`, so readers see
// the old or the new content, never a mix. Creates the parent directory.
Status WriteFileAtomically(const std::string& path, const std::string& content);

// The file's content, or "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace gpuslice
