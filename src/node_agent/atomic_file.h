// Writing files other programs read while we rewrite them (NFD feature file, CDI spec, the
// shims and the OCI hook installed on the host).
#pragma once

#include <string>

#include "core/status.h"

namespace gpuslice {

// Writes `content` to a temporary file beside `path` and renames it over `path`, so readers see
// the old or the new content, never a mix. Creates the parent directory.
Status WriteFileAtomically(const std::string& path, const std::string& content);

// Copies `from` to `to` (mode `mode`) unless `to` already holds the same bytes. The copy is
// written beside `to` with its final mode and renamed over it, so it appears complete and
// executable at once, and a process still running or mapping the old copy keeps it intact.
Status InstallFileAtomically(const std::string& from, const std::string& to, unsigned mode);

// The file's content, or "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace gpuslice
