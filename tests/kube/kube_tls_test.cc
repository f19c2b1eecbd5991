// KubeClient over HTTPS against the fake API server: CA file and inline CA data, a wrong CA,
// insecure-skip-tls-verify, and client certificates (mutual TLS). Certificates are made per test
// run with the openssl command-line tool (Debian's openssl).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "command_runner.h"
#include "fake_cluster.h"
#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class KubeTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!CommandExists("command -v openssl")) return;
    dir_ = std::filesystem::temp_directory_path() / ("gpuslice-tls-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    std::ofstream(d + "/server.ext") << "subjectAltName=IP:127.0.0.1\n";
    std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string script =
        "cd " + d + " && for ca in ca other-ca; do openssl req -x509" + ec +
        "-keyout $ca.key -out $ca.crt -days 2 -subj /CN=$ca; done && "
        "for who in server client; do openssl req" +
        ec +
        "-keyout $who.key -out $who.csr -subj /CN=$who && openssl x509 -req -in $who.csr "
        "-CA ca.crt -CAkey ca.key -CAcreateserial -out $who.crt -days 2 -extfile $who.ext; done";
    const CommandResult made = RunCommand("sh -c '" + script + "'", 60);
    ready_ = made.exit_code == 0;
    if (!ready_) std::fprintf(stderr, "openssl failed:\n%s\n", made.output.c_str());
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (!CommandExists("command -v openssl"))
      GTEST_SKIP() << "openssl (Debian's openssl package) is needed to make test certificates";
    ASSERT_TRUE(ready_);
  }
  static std::string File(const std::string& name) { return (dir_ / name).string(); }

  fake::FakeApiServerOptions Options(bool require_client_cert) {
    fake::FakeApiServerOptions options;
    options.tls_cert_file = File("server.crt");
    options.tls_key_file = File("server.key");
    options.tls_ca_file = File("ca.crt");
    if (require_client_cert) options.tls_client_ca_file = File("ca.crt");
    return options;
  }
  static Status Probe(const KubeConfig& config) {
    Result<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
    if (!client.ok()) return client.status();
    return (*client)->Get(Pod("default", "absent")).status();  // 404 proves the TLS session
  }

  static inline std::filesystem::path dir_;
  static inline bool ready_ = false;
};

TEST_F(KubeTlsTest, ServerVerifiedWithCaFileFromTheKubeconfig) {
  FakeCluster cluster(Options(false));
  EXPECT_EQ(cluster.client().config().server.rfind("https://127.0.0.1:", 0), 0u);
  Result<Json> missing = cluster.client().Get(Pod("default", "absent"));
  EXPECT_EQ(ApiHttpCode(missing.status()), 404) << missing.status().ToString();
}

TEST_F(KubeTlsTest, InlineCaDataWrongCaAndInsecureSkipVerify) {
  FakeCluster cluster(Options(false));
  KubeConfig config = cluster.client().config();
  config.ca_file.clear();
  config.ca_data = ReadAll(File("ca.crt"));
  EXPECT_EQ(ApiHttpCode(Probe(config)), 404);
  config.ca_data = ReadAll(File("other-ca.crt"));
  const Status wrong = Probe(config);
  EXPECT_EQ(wrong.code(), ErrorCode::kUnavailable) << wrong.ToString();
  EXPECT_EQ(ApiHttpCode(wrong), 0);
  config.insecure_skip_tls_verify = true;
  EXPECT_EQ(ApiHttpCode(Probe(config)), 404);
}

TEST_F(KubeTlsTest, ClientCertificateFilesAndDataForMutualTls) {
  FakeCluster cluster(Options(true));
  KubeConfig config = cluster.client().config();
  const Status anonymous = Probe(config);
  EXPECT_EQ(anonymous.code(), ErrorCode::kUnavailable) << anonymous.ToString();
  config.client_cert_file = File("client.crt");
  config.client_key_file = File("client.key");
  EXPECT_EQ(ApiHttpCode(Probe(config)), 404);
  config.client_cert_file.clear();
  config.client_key_file.clear();
  config.client_cert_data = ReadAll(File("client.crt"));
  config.client_key_data = ReadAll(File("client.key"));
  EXPECT_EQ(ApiHttpCode(Probe(config)), 404);
}

}  // namespace
}  // namespace gpuslice::kube
