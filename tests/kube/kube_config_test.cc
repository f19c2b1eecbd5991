// Kubeconfig parsing, in-cluster config and base64, table-driven.
#include "kube/kube_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace gpuslice::kube {
namespace {

constexpr const char* kBase = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
- name: other-cluster
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
    certificate-authority: certs/ca.pem
contexts:
- name: dev
  context: {cluster: dev-cluster, user: token-user, namespace: gpu}
- name: other
  context: {cluster: other-cluster, user: cert-user}
users:
- name: token-user
  user: {token: s3cret}
- name: cert-user
  user:
    client-certificate: certs/client.pem
    client-key-data: a2V5
)";

TEST(KubeconfigTest, CurrentContextWithTokenAndInlineCa) {
  Result<KubeConfig> config = ParseKubeconfig(kBase, "kc.yaml", "", "/etc/kube");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  EXPECT_EQ(config->ca_data, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(config->token, "s3cret");
  EXPECT_EQ(config->namespace_name, "gpu");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, NamedContextWithClientCertificateAndRelativePaths) {
  Result<KubeConfig> config = ParseKubeconfig(kBase, "kc.yaml", "other", "/etc/kube");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "http://127.0.0.1:8080");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->ca_file, "/etc/kube/certs/ca.pem");
  EXPECT_EQ(config->client_cert_file, "/etc/kube/certs/client.pem");
  EXPECT_EQ(config->client_key_data, "key");
  EXPECT_EQ(config->namespace_name, "default");
  EXPECT_TRUE(config->token.empty());
}

struct BadKubeconfigRow {
  std::string name;
  std::string yaml;
  std::string context;
  std::string message_part;
};

TEST(KubeconfigTest, BadInputGetsAnActionableError) {
  const std::vector<BadKubeconfigRow> rows = {
      {"not yaml", "clusters: [", "", "not valid YAML"},
      {"not a map", "- a\n- b\n", "", "must be a map"},
      {"no current context", "clusters: []\n", "", "no 'current-context'"},
      {"unknown context", kBase, "prod", "no entry named 'prod' in 'contexts'"},
      {"context without cluster", "current-context: c\ncontexts:\n- name: c\n  context: {}\n", "",
       "names no cluster"},
      {"server not a URL",
       "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
       "clusters:\n- name: k\n  cluster: {server: 10.0.0.1}\n",
       "", "is not an http:// or https:// URL"},
      {"bad base64",
       "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
       "clusters:\n- name: k\n  cluster: {server: 'https://x', certificate-authority-data: '@@'}\n",
       "", "certificate-authority-data"},
      {"clusters not a list", "current-context: c\ncontexts: {}\n", "",
       "'contexts' must be a list"},
  };
  for (const BadKubeconfigRow& row : rows) {
    SCOPED_TRACE(row.name);
    Result<KubeConfig> config = ParseKubeconfig(row.yaml, "bad.yaml", row.context);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(config.status().message().find("bad.yaml"), std::string::npos)
        << config.status().message();
    EXPECT_NE(config.status().message().find(row.message_part), std::string::npos)
        << config.status().message();
  }
}

TEST(Base64Test, DecodesWithAndWithoutPaddingAndRejectsGarbage) {
  EXPECT_EQ(*DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeBase64("aGVsbG8"), "hello");
  EXPECT_EQ(*DecodeBase64("aGVs\nbG8="), "hello");
  EXPECT_FALSE(DecodeBase64("aGVs*").ok());
  EXPECT_FALSE(DecodeBase64("aG=Vs").ok());
}

class InClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("gpuslice-sa-" + std::to_string(getpid())))
               .string();
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/token") << "sa-token\n";
    std::ofstream(dir_ + "/ca.crt") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir_ + "/namespace") << "gpuslice-system";
  }
  void TearDown() override {
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
};

TEST_F(InClusterTest, ReadsServiceAccountFilesAndEnvironment) {
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  Result<KubeConfig> config = LoadInClusterConfig(dir_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token_file, dir_ + "/token");
  EXPECT_EQ(config->ca_file, dir_ + "/ca.crt");
  EXPECT_EQ(config->namespace_name, "gpuslice-system");
}

TEST_F(InClusterTest, Ipv6HostIsBracketed) {
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  Result<KubeConfig> config = LoadInClusterConfig(dir_);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
}

TEST_F(InClusterTest, OutsideAClusterSaysWhy) {
  Result<KubeConfig> config = LoadInClusterConfig(dir_);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(config.status().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

TEST_F(InClusterTest, MissingTokenIsUnavailable) {
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  std::filesystem::remove(dir_ + "/token");
  Result<KubeConfig> config = LoadInClusterConfig(dir_);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(config.status().message().find("service-account token"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice::kube
