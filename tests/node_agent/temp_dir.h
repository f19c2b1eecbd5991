// A temporary directory removed at the end of the test. Short paths: Unix socket paths are
// limited to 107 bytes.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace gpuslice::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/gsa-XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace gpuslice::testing
