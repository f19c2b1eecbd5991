#include "node_agent/feature_file_writer.h"

#include <filesystem>

#include "node_agent/atomic_file.h"

namespace gpuslice {

FeatureFileWriter::FeatureFileWriter(std::string path) : path_(std::move(path)) {}

std::string FeatureFileWriter::Render(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [key, value] : labels) out += key + "=" + value + "\n";
  return out;
}

Result<bool> FeatureFileWriter::Write(const std::map<std::string, std::string>& labels) {
  const std::string content = Render(labels);
  if (std::filesystem::exists(path_) && ReadFileOrEmpty(path_) == content) return false;
  GPUSLICE_RETURN_IF_ERROR(WriteFileAtomically(path_, content));
  return true;
}

void FeatureFileWriter::Remove() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace gpuslice
