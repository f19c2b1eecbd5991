// Strict reading of YAML values for the sharing configuration: every helper checks the type,
// rejects what is not accepted, and words its error as "<source>:<line>: <field path>: <what is
// wrong>; <what is accepted>". Internal to gpuslice_core; see sharing_config.h for the API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/sharing_config.h"
#include "core/status.h"

namespace gpuslice::sharing_config_internal {

// The 1-based line of `node`, or 0 when yaml-cpp has no position for it.
int LineOf(const YAML::Node& node);

// "a map", "a list", "nothing", or the scalar quoted: "\"two\"".
std::string Describe(const YAML::Node& node);

// Joins a path and a field name: ("flags", "migStrategy") -> "flags.migStrategy"; ("", "x") -> "x".
std::string JoinPath(std::string_view path, std::string_view field);
// "sharing.timeSlicing.resources" + 2 -> "sharing.timeSlicing.resources[2]".
std::string IndexPath(std::string_view path, std::size_t index);

// Comma-separated list for "accepted: ..." tails.
std::string JoinAccepted(const std::vector<std::string_view>& values);

// Builds error Statuses that carry the source name.
class ErrorSink {
 public:
  explicit ErrorSink(std::string_view source) : source_(source) {}

  // "<source>:<line>: <path>: <message>"; the line is left out when 0, the path when empty.
  Status At(int line, std::string_view path, std::string_view message) const;
  Status At(const YAML::Node& node, std::string_view path, std::string_view message) const {
    return At(LineOf(node), path, message);
  }

 private:
  std::string_view source_;
};

// Checks that `text` is UTF-8 without control characters other than tab, CR and LF, as YAML
// requires of a stream (yaml-cpp does not check, and would carry such bytes into values).
Status CheckText(const ErrorSink& errors, std::string_view text);

// Checks that `text` holds exactly one YAML document with content (empty documents after it, as
// from a trailing "---", are allowed), and returns it. Unlike YAML::LoadAll, this does not loop
// forever on yaml-cpp 0.7's stuck parser states (a stray "," after a document). Throws
// YAML::Exception on syntax errors, like YAML::Load.
Result<YAML::Node> LoadSingleDocument(const ErrorSink& errors, const std::string& text);

// A YAML map read strictly: keys must be unique strings, each one of `accepted`.
class StrictMap {
 public:
  // Fails when `node` is not a map, has a non-string or repeated key, or a key not in `accepted`.
  static Result<StrictMap> Read(const ErrorSink& errors, const YAML::Node& node, std::string path,
                                const std::vector<std::string_view>& accepted);

  // True when `key` is present with a non-null value (`key:` alone counts as absent, as in
  // NVIDIA's plugin, which leaves such fields at their defaults).
  bool Has(std::string_view key) const;
  // True when `key` is written, with or without a value.
  bool Present(std::string_view key) const { return Find(key) != nullptr; }
  // The value of `key`; an invalid node when absent.
  YAML::Node Get(std::string_view key) const;
  // The key node of `key` (for its line); an invalid node when absent.
  YAML::Node Key(std::string_view key) const;

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view key) const { return JoinPath(path_, key); }
  int line() const { return LineOf(node_); }

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };
  const Entry* Find(std::string_view key) const;

  YAML::Node node_;
  std::string path_;
  std::vector<Entry> entries_;
};

// Scalars. `path` names the field in messages.
Result<bool> ReadBool(const ErrorSink& errors, const YAML::Node& node, std::string_view path);
// A plain (unquoted) decimal integer within [min, max]; `expectation` completes "must be ...",
// e.g. "an integer >= 2".
Result<std::int64_t> ReadInt(const ErrorSink& errors, const YAML::Node& node, std::string_view path,
                             std::int64_t min, std::int64_t max, std::string_view expectation);
Result<std::string> ReadString(const ErrorSink& errors, const YAML::Node& node,
                               std::string_view path);
// A string that must be one of `accepted`.
Result<std::string> ReadEnum(const ErrorSink& errors, const YAML::Node& node, std::string_view path,
                             const std::vector<std::string_view>& accepted);
// A string or a list of strings (NVIDIA's deviceListStrategy, cdiFeatureFlags).
Result<std::vector<std::string>> ReadStringOrList(const ErrorSink& errors, const YAML::Node& node,
                                                  std::string_view path);
// A duration as NVIDIA's config reads it: a Go duration string ("60s", "1m30s", "500ms"), a bare
// integer of nanoseconds (returned in Go's form: 5 -> "5ns", 0 -> "0s"), or "infinite".
Result<std::string> ReadDuration(const ErrorSink& errors, const YAML::Node& node,
                                 std::string_view path);

// Device references, as NVIDIA's ReplicatedDeviceRef.
bool IsGpuIndex(std::string_view ref);  // "0"
bool IsMigIndex(std::string_view ref);  // "0:1"
bool IsGpuUuid(std::string_view ref);   // "GPU-<uuid>"
bool IsMigUuid(std::string_view ref);   // "MIG-<uuid>" or "MIG-GPU-<uuid>/<gi>/<ci>"
bool IsMigRef(std::string_view ref);    // a MIG index or MIG UUID

// `devices`: "all", a count > 0, or a non-empty list of device references without repeats.
// Indices are stored in canonical decimal ("01" -> "1").
Result<DeviceSelector> ReadDeviceSelector(const ErrorSink& errors, const YAML::Node& node,
                                          std::string_view path);

// Kubernetes extended-resource names in NVIDIA's form. A name without a prefix gets "nvidia.com/"
// (as NVIDIA's plugin does); any other prefix is rejected. Returns the full name.
Result<std::string> ReadResourceName(const ErrorSink& errors, const YAML::Node& node,
                                     std::string_view path);

// Go's time.Duration.String() of `ns` nanoseconds: "0s", "5ns", "1.5s", "1m0s", "2h0m0s".
std::string GoDurationString(std::int64_t ns);

// True for a MIG profile as it appears in resource names: "1g.5gb", "1c.3g.20gb", "1g.10gb.me",
// "1g.24gb.me.all", "1g.24gb.gfx".
bool IsMigProfile(std::string_view profile);

}  // namespace gpuslice::sharing_config_internal
