#include "kube/kube_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gpuslice::kube {
namespace {

Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unavailable("cannot read " + std::string(what) + " '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// Finds the entry named `name` in a kubeconfig list such as `clusters` and returns its `field`.
Result<YAML::Node> NamedEntry(const YAML::Node& root, const std::string& list,
                              const std::string& field, const std::string& name,
                              std::string_view source) {
  const YAML::Node entries = root[list];
  if (entries && !entries.IsSequence())
    return InvalidArgument(std::string(source) + ": '" + list + "' must be a list");
  for (const YAML::Node& entry : entries) {
    if (!entry.IsMap() || !entry["name"] || !entry["name"].IsScalar()) continue;
    if (entry["name"].Scalar() != name) continue;
    const YAML::Node value = entry[field];
    if (value && !value.IsMap())
      return InvalidArgument(std::string(source) + ": " + list + "[" + name + "]." + field +
                             " must be a map");
    return value ? value : YAML::Node(YAML::NodeType::Map);
  }
  return InvalidArgument(std::string(source) + ": no entry named '" + name + "' in '" + list + "'");
}

std::string Scalar(const YAML::Node& map, const char* key) {
  const YAML::Node v = map[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

std::string ResolvePath(std::string path, std::string_view base_dir) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// Decodes a `<name>-data` field into `data`, or resolves the file `<name>` into `file`.
Status FileOrData(const YAML::Node& map, const std::string& name, std::string_view base_dir,
                  std::string_view where, std::string& file, std::string& data) {
  const std::string encoded = Scalar(map, (name + "-data").c_str());
  if (!encoded.empty()) {
    Result<std::string> decoded = DecodeBase64(encoded);
    if (!decoded.ok())
      return decoded.status().WithContext(std::string(where) + "." + name + "-data");
    data = std::move(*decoded);
  }
  file = ResolvePath(Scalar(map, name.c_str()), base_dir);
  return Status::Ok();
}

Result<KubeConfig> FromContext(const YAML::Node& root, std::string_view source,
                               std::string context_name, std::string_view base_dir) {
  const std::string src(source);
  if (context_name.empty()) context_name = Scalar(root, "current-context");
  if (context_name.empty())
    return InvalidArgument(src + ": no context given and no 'current-context' set");
  GPUSLICE_ASSIGN_OR_RETURN(YAML::Node context,
                            NamedEntry(root, "contexts", "context", context_name, source));
  const std::string cluster_name = Scalar(context, "cluster");
  if (cluster_name.empty())
    return InvalidArgument(src + ": context '" + context_name + "' names no cluster");
  GPUSLICE_ASSIGN_OR_RETURN(YAML::Node cluster,
                            NamedEntry(root, "clusters", "cluster", cluster_name, source));
  KubeConfig config;
  config.server = Scalar(cluster, "server");
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0)
    return InvalidArgument(src + ": cluster '" + cluster_name + "' server '" + config.server +
                           "' is not an http:// or https:// URL");
  config.insecure_skip_tls_verify = Scalar(cluster, "insecure-skip-tls-verify") == "true";
  const std::string where = src + ": clusters[" + cluster_name + "]";
  GPUSLICE_RETURN_IF_ERROR(FileOrData(cluster, "certificate-authority", base_dir, where,
                                      config.ca_file, config.ca_data));
  if (const std::string ns = Scalar(context, "namespace"); !ns.empty()) config.namespace_name = ns;
  const std::string user_name = Scalar(context, "user");
  if (user_name.empty()) return config;
  GPUSLICE_ASSIGN_OR_RETURN(YAML::Node user, NamedEntry(root, "users", "user", user_name, source));
  const std::string user_where = src + ": users[" + user_name + "]";
  GPUSLICE_RETURN_IF_ERROR(FileOrData(user, "client-certificate", base_dir, user_where,
                                      config.client_cert_file, config.client_cert_data));
  GPUSLICE_RETURN_IF_ERROR(FileOrData(user, "client-key", base_dir, user_where,
                                      config.client_key_file, config.client_key_data));
  config.token = Scalar(user, "token");
  config.token_file = ResolvePath(Scalar(user, "tokenFile"), base_dir);
  return config;
}

}  // namespace

Result<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  bool padding = false;
  for (const char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z')
      value = c - 'A';
    else if (c >= 'a' && c <= 'z')
      value = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      value = c - '0' + 52;
    else if (c == '+')
      value = 62;
    else if (c == '/')
      value = 63;
    else if (c == '=') {
      padding = true;
      continue;
    } else if (std::isspace(static_cast<unsigned char>(c)))
      continue;
    if (value < 0 || padding) return InvalidArgument("not valid base64");
    buffer = (buffer << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

Result<KubeConfig> ParseKubeconfig(std::string_view yaml_text, std::string_view source,
                                   std::string_view context, std::string_view base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(source) + ": not valid YAML: " + e.what());
  }
  if (!root.IsMap()) return InvalidArgument(std::string(source) + ": a kubeconfig must be a map");
  try {
    return FromContext(root, source, std::string(context), base_dir);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(source) + ": unexpected structure: " + e.what());
  }
}

Result<KubeConfig> LoadKubeconfigFile(const std::string& path, std::string_view context) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "kubeconfig"));
  return ParseKubeconfig(text, path, context, std::filesystem::path(path).parent_path().string());
}

Result<KubeConfig> LoadInClusterConfig(std::string_view service_account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0')
    return FailedPrecondition(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset");
  const std::string dir(service_account_dir);
  KubeConfig config;
  const std::string h(host);
  config.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  config.token_file = dir + "/token";
  GPUSLICE_ASSIGN_OR_RETURN(std::string token,
                            ReadFile(config.token_file, "service-account token"));
  config.ca_file = dir + "/ca.crt";
  if (!std::filesystem::exists(config.ca_file))
    return Unavailable("service-account CA '" + config.ca_file + "' does not exist");
  if (Result<std::string> ns = ReadFile(dir + "/namespace", "namespace");
      ns.ok() && !Trim(*ns).empty())
    config.namespace_name = Trim(*ns);
  return config;
}

Result<KubeConfig> LoadDefaultConfig(const std::string& explicit_path) {
  if (!explicit_path.empty()) return LoadKubeconfigFile(explicit_path);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    const std::string list(env);
    return LoadKubeconfigFile(list.substr(0, list.find(':')));
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0')
    return LoadInClusterConfig();
  const char* home = std::getenv("HOME");
  if (home == nullptr)
    return FailedPrecondition("no kubeconfig: pass one, set KUBECONFIG, or run in a cluster");
  return LoadKubeconfigFile(std::string(home) + "/.kube/config");
}

}  // namespace gpuslice::kube
