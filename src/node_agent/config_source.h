// Where the node agent's sharing configuration comes from.
//
// Two sources: one file (`--config`), or the GPU Operator's per-node flow (`--config-dir`): a
// directory holding several named configurations (a ConfigMap mounted as a volume, one file per
// key), of which the node label `nvidia.com/device-plugin.config=<name>` picks one, with a
// default name and fallbacks as NVIDIA's config-manager has them. The label is read through
// NodeLabelSource, so that a Kubernetes API watch can replace the file it is read from today.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice {

// One look at the configuration source.
struct ConfigSnapshot {
  std::string name;         // the named configuration chosen; "" for a single file
  std::string path;         // the file read; "" = the built-in default configuration
  std::string text;         // its content
  std::string selected_by;  // why this one: "label nvidia.com/device-plugin.config=a100", ...

  bool operator==(const ConfigSnapshot&) const = default;
};

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  // What the configuration is now. An error means none can be chosen (the label names a
  // configuration that does not exist, the directory cannot be read); the caller keeps the one
  // it has.
  virtual Result<ConfigSnapshot> Read() = 0;
  // For messages: "config file /etc/x.yaml", "named configs in /etc/cfg".
  virtual std::string Describe() const = 0;
};

// The value of one node label. "" when the node does not have it.
class NodeLabelSource {
 public:
  virtual ~NodeLabelSource() = default;
  virtual Result<std::string> Get(const std::string& key) = 0;
};

// Node labels from a file of `key=value` lines (blank lines and `#` comments skipped), e.g.
// written by `kubectl get node $NODE -o go-template=...` or by a test. A missing file means no
// labels.
class FileNodeLabelSource final : public NodeLabelSource {
 public:
  explicit FileNodeLabelSource(std::string path) : path_(std::move(path)) {}
  Result<std::string> Get(const std::string& key) override;

 private:
  std::string path_;
};

// `--config FILE` (or nothing: the built-in default).
class SingleFileConfigSource final : public ConfigSource {
 public:
  explicit SingleFileConfigSource(std::string path) : path_(std::move(path)) {}
  Result<ConfigSnapshot> Read() override;
  std::string Describe() const override;

 private:
  std::string path_;
};

// NVIDIA config-manager's fallbacks, tried in order when the label is unset and there is no
// default name: "named" (a configuration called "default"), "single" (the only one there is),
// "empty" (the built-in default configuration).
enum class ConfigFallback { kNamed, kSingle, kEmpty };
Result<std::vector<ConfigFallback>> ParseConfigFallbacks(const std::string& comma_separated);

struct NamedConfigOptions {
  std::string directory;     // CONFIG_FILE_SRCDIR: one file per named config
  std::string default_name;  // DEFAULT_CONFIG: used when the label is unset
  std::string label_key = "nvidia.com/device-plugin.config";  // NODE_LABEL
  std::vector<ConfigFallback> fallbacks = {ConfigFallback::kNamed, ConfigFallback::kSingle};
};

class NamedConfigSource final : public ConfigSource {
 public:
  NamedConfigSource(NamedConfigOptions options, std::unique_ptr<NodeLabelSource> labels)
      : options_(std::move(options)), labels_(std::move(labels)) {}
  Result<ConfigSnapshot> Read() override;
  std::string Describe() const override;

  // The configuration names in the directory (files not starting with '.'), sorted.
  Result<std::vector<std::string>> Names() const;

 private:
  Result<ConfigSnapshot> Choose(const std::string& label_value,
                                const std::vector<std::string>& names) const;

  NamedConfigOptions options_;
  std::unique_ptr<NodeLabelSource> labels_;
};

}  // namespace gpuslice
