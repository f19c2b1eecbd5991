// Where the API server is and how to authenticate to it: in-cluster service-account config or a
// kubeconfig file.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gpuslice::kube {

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string server;   // "https://10.96.0.1:443", or "http://127.0.0.1:PORT" for loopback tests
  std::string ca_file;  // PEM bundle to verify the server with
  std::string ca_data;  // PEM text (decoded certificate-authority-data)
  std::string client_cert_file;  // PEM client certificate (mutual TLS)
  std::string client_cert_data;
  std::string client_key_file;
  std::string client_key_data;
  std::string token;       // bearer token
  std::string token_file;  // re-read on every request (service-account tokens rotate)
  bool insecure_skip_tls_verify = false;
  std::string namespace_name = "default";  // the context's (or service account's) namespace
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};  // non-watch calls; watches are unbounded
};

// Parses kubeconfig YAML; `context` empty means current-context. Relative file paths are
// resolved against `base_dir`. Errors name `source` and the field that was wrong.
Result<KubeConfig> ParseKubeconfig(std::string_view yaml_text, std::string_view source,
                                   std::string_view context = "", std::string_view base_dir = "");

// Reads and parses a kubeconfig file.
Result<KubeConfig> LoadKubeconfigFile(const std::string& path, std::string_view context = "");

// The pod's own config: KUBERNETES_SERVICE_HOST/PORT from the environment, the token, CA and
// namespace files from `service_account_dir`.
Result<KubeConfig> LoadInClusterConfig(std::string_view service_account_dir = kServiceAccountDir);

// The usual discovery order: `explicit_path` if given, else $KUBECONFIG (first entry), else
// in-cluster when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
Result<KubeConfig> LoadDefaultConfig(const std::string& explicit_path = "");

// Standard base64 (padding optional, whitespace ignored), as kubeconfig *-data fields use.
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace gpuslice::kube
