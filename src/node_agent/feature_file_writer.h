// FeatureFileWriter: the node's labels as a Node Feature Discovery local feature file
// ("key=value" lines, which NFD's local source turns into node labels). The file is replaced
// atomically, and only when the labels changed.
#pragma once

#include <map>
#include <string>

#include "core/status.h"

namespace gpuslice {

class FeatureFileWriter {
 public:
  explicit FeatureFileWriter(std::string path);

  // "key=value\n" per label, sorted by key.
  static std::string Render(const std::map<std::string, std::string>& labels);

  // Writes the labels unless the file already holds exactly them; true when written.
  Result<bool> Write(const std::map<std::string, std::string>& labels);
  // Removes the file (on shutdown the labels would go stale).
  void Remove();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace gpuslice
