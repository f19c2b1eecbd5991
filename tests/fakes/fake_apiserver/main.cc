// gpuslice-fake-apiserver: the test API server as a standalone process, for kubectl, the Python
// client and end-to-end tests. Serves until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>

#include "fake_apiserver/fake_apiserver.h"

namespace {

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp");
  out << text;
  out.close();
  return out && std::rename((path + ".tmp").c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Deterministic fake Kubernetes API server (core/v1) for gpuslice tests"};
  gpuslice::fake::FakeApiServerOptions options;
  std::string port_file;
  std::string kubeconfig_file;
  long bookmark_ms = options.bookmark_interval.count();
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port; 0 picks a free one")->capture_default_str();
  app.add_option("--port-file", port_file, "write the chosen port here once listening");
  app.add_option("--kubeconfig-out", kubeconfig_file, "write a kubeconfig for this server here");
  app.add_option("--max-history", options.max_history, "watch events kept for resuming")
      ->capture_default_str();
  app.add_option("--bookmark-interval-ms", bookmark_ms, "BOOKMARK cadence")->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert_file, "serve HTTPS with this PEM certificate");
  app.add_option("--tls-key", options.tls_key_file, "the certificate's PEM key");
  app.add_option("--tls-ca", options.tls_ca_file, "CA named in the written kubeconfig");
  app.add_option("--tls-client-ca", options.tls_client_ca_file, "require client certificates");
  CLI11_PARSE(app, argc, argv);
  options.bookmark_interval = std::chrono::milliseconds(bookmark_ms);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  gpuslice::fake::FakeApiServer server(options);
  if (gpuslice::Status status = server.Start(); !status.ok()) {
    std::fprintf(stderr, "gpuslice-fake-apiserver: %s\n", status.ToString().c_str());
    return 1;
  }
  if (!kubeconfig_file.empty() && !WriteFile(kubeconfig_file, server.Kubeconfig())) {
    std::fprintf(stderr, "gpuslice-fake-apiserver: cannot write %s\n", kubeconfig_file.c_str());
    return 1;
  }
  if (!port_file.empty() && !WriteFile(port_file, std::to_string(server.port()) + "\n")) {
    std::fprintf(stderr, "gpuslice-fake-apiserver: cannot write %s\n", port_file.c_str());
    return 1;
  }
  std::printf("gpuslice-fake-apiserver: serving %s\n", server.url().c_str());
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  server.Stop();
  return 0;
}
