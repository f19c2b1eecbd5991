// gpuslice-scheduler: the kube-scheduler extender. A thin composition root: flags, the node and
// pod source, the Extender and its HTTP(S) server. Nodes and pods come from the Kubernetes API
// (informers; in-cluster config, or --kubeconfig) and binds are Bindings posted to it; with
// --state-file (demos) they come from a static JSON file and binds are applied in memory.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "core/clock.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "placement/placement_policy.h"
#include "scheduler/extender.h"
#include "scheduler/extender_server.h"
#include "scheduler/kube_source.h"
#include "scheduler/static_source.h"

namespace {

using namespace gpuslice;             // NOLINT(google-build-using-namespace)
using namespace gpuslice::scheduler;  // NOLINT(google-build-using-namespace)

struct Flags {
  std::string listen = "0.0.0.0:8888";
  std::string url_prefix = "/gpuslice";
  std::string tls_cert;
  std::string tls_key;
  std::string policy = "gpuslice";
  double reservation_ttl_s = 120;
  std::string state_file;
  std::string kubeconfig;
  std::size_t max_body_bytes = 64 << 20;
  double half_life_pods = gpuslice::placement::OnlineTaskTypesOptions{}.half_life_pods;
};

int Fail(const std::string& message) {
  std::cerr << "gpuslice-scheduler: " << message << "\n";
  return 1;
}

std::string Summary(const SyncReport& report) {
  return std::to_string(report.nodes) + " nodes (" + std::to_string(report.gpu_nodes) +
         " with GPUs), " + std::to_string(report.pods) + " pods (" +
         std::to_string(report.holding_pods) + " holding GPUs)";
}

int Run(const Flags& flags) {
  const std::size_t colon = flags.listen.rfind(':');
  if (colon == std::string::npos) return Fail("--listen must be host:port, got " + flags.listen);
  const std::string host = flags.listen.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(flags.listen.substr(colon + 1));
  } catch (const std::exception&) {
    return Fail("--listen port is not a number: " + flags.listen);
  }
  SteadyClock clock;
  ExtenderOptions options;
  options.policy = flags.policy;
  options.task_types.half_life_pods = flags.half_life_pods;
  options.reservation_ttl = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(flags.reservation_ttl_s));

  // The source: a static file (demo) or the API server. Exactly one of these is set up.
  std::unique_ptr<LoopbackBindingWriter> loopback;
  std::unique_ptr<kube::KubeClient> client;
  std::unique_ptr<KubeBindingWriter> api_writer;
  StaticObjects objects;
  if (!flags.state_file.empty()) {
    Result<StaticObjects> read = ReadStaticObjects(flags.state_file);
    if (!read.ok()) return Fail(read.status().message());
    objects = *std::move(read);
    loopback = std::make_unique<LoopbackBindingWriter>(objects.pods);
  } else {
    Result<kube::KubeConfig> config = kube::LoadDefaultConfig(flags.kubeconfig);
    if (!config.ok()) return Fail("Kubernetes config: " + config.status().message());
    Result<std::unique_ptr<kube::KubeClient>> created = kube::KubeClient::Create(*config);
    if (!created.ok()) return Fail("Kubernetes client: " + created.status().message());
    client = *std::move(created);
    api_writer = std::make_unique<KubeBindingWriter>(*client);
  }
  BindingWriter& writer =
      loopback ? static_cast<BindingWriter&>(*loopback) : static_cast<BindingWriter&>(*api_writer);
  Result<std::unique_ptr<Extender>> extender = Extender::Create(options, clock, writer);
  if (!extender.ok()) return Fail(extender.status().message());

  std::unique_ptr<KubeSource> source;
  if (loopback) {
    loopback->Attach(extender->get());
    const SyncReport report = (*extender)->Rebuild(objects.nodes, objects.pods);
    std::cerr << "gpuslice-scheduler: synced " << Summary(report) << " from " << flags.state_file
              << "\n";
    for (const std::string& problem : report.problems)
      std::cerr << "  problem: " << problem << "\n";
  } else {
    KubeSourceOptions source_options;
    source_options.on_problem = [](const std::string& problem) {
      std::cerr << "gpuslice-scheduler: problem: " << problem << std::endl;
    };
    source_options.on_rebuilt = [server = client->config().server](const SyncReport& report) {
      std::cerr << "gpuslice-scheduler: synced " << Summary(report) << " from " << server
                << std::endl;
    };
    source = std::make_unique<KubeSource>(*client, **extender, source_options);
  }

  ServerOptions server_options;
  server_options.url_prefix = flags.url_prefix;
  server_options.tls_cert_file = flags.tls_cert;
  server_options.tls_key_file = flags.tls_key;
  server_options.max_body_bytes = flags.max_body_bytes;
  Result<std::unique_ptr<ExtenderServer>> server =
      ExtenderServer::Create(**extender, server_options);
  if (!server.ok()) return Fail(server.status().message());

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before the server thread starts
  if (source) source->Start();  // after blocking signals: its threads inherit the mask
  Result<int> bound = (*server)->Start(host, port);
  if (!bound.ok()) return Fail(bound.status().message());
  std::cerr << "gpuslice-scheduler: serving " << ((*server)->tls() ? "https" : "http") << " on "
            << host << ":" << *bound << flags.url_prefix << " (policy " << flags.policy << ")"
            << std::endl;
  std::printf("port %d\n", *bound);
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  (*server)->Stop();
  if (source) source->Stop();
  std::cerr << "gpuslice-scheduler: stopped by signal " << signal << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"gpuslice-scheduler: kube-scheduler extender for fractional GPUs"};
  app.add_option("--listen", flags.listen, "host:port to serve on (port 0: any)")
      ->capture_default_str();
  app.add_option("--url-prefix", flags.url_prefix, "path before /filter, /prioritize, /bind")
      ->capture_default_str();
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate; with --tls-key serves HTTPS");
  app.add_option("--tls-key", flags.tls_key, "PEM private key");
  std::string policies;
  for (const std::string_view name : gpuslice::placement::PolicyNames()) {
    policies += (policies.empty() ? "" : ", ") + std::string(name);
  }
  app.add_option("--policy", flags.policy, "placement policy: " + policies)->capture_default_str();
  app.add_option("--reservation-ttl", flags.reservation_ttl_s,
                 "seconds a bind's reservation holds its GPUs until the pod is seen bound")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option(
         "--half-life-pods", flags.half_life_pods,
         "task-type learning (fgd, gpuslice): pods after which an observed pod counts half, "
         "as gpuslice simulate --half-life-pods")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-body-bytes", flags.max_body_bytes, "largest request body accepted")
      ->capture_default_str();
  CLI::Option* state_file =
      app.add_option("--state-file", flags.state_file,
                     "demo mode: serve from this JSON file of v1 Nodes and Pods (no API server)");
  app.add_option("--kubeconfig", flags.kubeconfig,
                 "kubeconfig file; default: $KUBECONFIG, else in-cluster, else ~/.kube/config")
      ->excludes(state_file);
  CLI11_PARSE(app, argc, argv);
  return Run(flags);
}
