#include "node_agent/config_source.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "node_agent/atomic_file.h"

namespace gpuslice {

Result<std::string> FileNodeLabelSource::Get(const std::string& key) {
  std::istringstream lines(ReadFileOrEmpty(path_));
  std::string value;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos || line.substr(0, eq) != key) continue;
    value = line.substr(eq + 1);  // the last line for a key wins
  }
  return value;
}

Result<ConfigSnapshot> SingleFileConfigSource::Read() {
  ConfigSnapshot snapshot;
  if (path_.empty()) {
    snapshot.selected_by = "no --config";
    return snapshot;
  }
  if (!std::filesystem::exists(path_)) {
    return NotFound("config file " + path_ + " does not exist");
  }
  snapshot.path = path_;
  snapshot.text = ReadFileOrEmpty(path_);
  snapshot.selected_by = "--config";
  return snapshot;
}

std::string SingleFileConfigSource::Describe() const {
  return path_.empty() ? "the built-in default configuration" : "config file " + path_;
}

Result<std::vector<ConfigFallback>> ParseConfigFallbacks(const std::string& comma_separated) {
  std::vector<ConfigFallback> out;
  std::istringstream in(comma_separated);
  for (std::string word; std::getline(in, word, ',');) {
    word.erase(0, word.find_first_not_of(' '));
    word.erase(word.find_last_not_of(' ') + 1);
    if (word.empty()) continue;
    if (word == "named") {
      out.push_back(ConfigFallback::kNamed);
    } else if (word == "single") {
      out.push_back(ConfigFallback::kSingle);
    } else if (word == "empty") {
      out.push_back(ConfigFallback::kEmpty);
    } else {
      return InvalidArgument("unknown fallback strategy \"" + word +
                             "\"; accepted: named, single, empty");
    }
  }
  return out;
}

Result<std::vector<std::string>> NamedConfigSource::Names() const {
  std::error_code ec;
  std::filesystem::directory_iterator it(options_.directory, ec);
  if (ec) {
    return Unavailable("cannot read the configuration directory " + options_.directory + ": " +
                       ec.message());
  }
  std::vector<std::string> names;
  for (const std::filesystem::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    // A ConfigMap volume holds "..data" and "..<timestamp>" beside its keys.
    if (name.starts_with("..") || entry.is_directory(ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<ConfigSnapshot> NamedConfigSource::Choose(const std::string& label_value,
                                                 const std::vector<std::string>& names) const {
  auto exists = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  if (list.empty()) list = "none";
  ConfigSnapshot snapshot;
  if (!label_value.empty()) {
    if (!exists(label_value)) {
      return NotFound("node label " + options_.label_key + "=" + label_value +
                      " names no configuration in " + options_.directory + "; available: " + list);
    }
    snapshot.name = label_value;
    snapshot.selected_by = "label " + options_.label_key + "=" + label_value;
  } else if (!options_.default_name.empty()) {
    if (!exists(options_.default_name)) {
      return NotFound("default configuration \"" + options_.default_name + "\" is not in " +
                      options_.directory + "; available: " + list);
    }
    snapshot.name = options_.default_name;
    snapshot.selected_by = "default name (label " + options_.label_key + " not set)";
  } else {
    for (ConfigFallback fallback : options_.fallbacks) {
      if (fallback == ConfigFallback::kNamed && exists("default")) {
        snapshot.name = "default";
        snapshot.selected_by = "fallback: the configuration named \"default\"";
      } else if (fallback == ConfigFallback::kSingle && names.size() == 1) {
        snapshot.name = names.front();
        snapshot.selected_by = "fallback: the only configuration";
      } else if (fallback == ConfigFallback::kEmpty) {
        snapshot.selected_by = "fallback: the built-in default configuration";
        return snapshot;
      }
      if (!snapshot.name.empty()) break;
    }
    if (snapshot.name.empty()) {
      return NotFound("label " + options_.label_key +
                      " is not set, no default configuration is given, and no fallback "
                      "applies; available: " +
                      list);
    }
  }
  snapshot.path = (std::filesystem::path(options_.directory) / snapshot.name).string();
  snapshot.text = ReadFileOrEmpty(snapshot.path);
  return snapshot;
}

Result<ConfigSnapshot> NamedConfigSource::Read() {
  GPUSLICE_ASSIGN_OR_RETURN(std::string label, labels_->Get(options_.label_key));
  GPUSLICE_ASSIGN_OR_RETURN(std::vector<std::string> names, Names());
  return Choose(label, names);
}

std::string NamedConfigSource::Describe() const {
  return "named configurations in " + options_.directory;
}

}  // namespace gpuslice
