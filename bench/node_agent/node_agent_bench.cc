// Node agent benchmarks over real gRPC on Unix sockets, with the in-project test kubelet:
//   BM_Allocate: one Allocate RPC (one container) as the kubelet makes it.
//   BM_ListAndWatchUpdateAfterHealthEvent: from a health event reaching the backend to the
//     kubelet's ListAndWatch stream holding the updated list (the agent's loop runs in a thread).
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "backends/simulated_backend.h"
#include "node_agent/atomic_file.h"
#include "node_agent/node_agent.h"
#include "test_kubelet.h"

namespace gpuslice {
namespace {

using namespace std::chrono_literals;

std::string NodeYaml(int gpus) {
  return "node:\n  name: bench\n  numaNodes: 2\ngpus:\n  - model: H100-80GB\n    count: " +
         std::to_string(gpus) + "\n";
}

// An agent on a simulated node, serving a time-sliced nvidia.com/gpu, with a test kubelet.
class Harness {
 public:
  Harness(int gpus, int replicas) {
    std::string pattern = "/tmp/gsb-XXXXXX";
    dir_ = mkdtemp(pattern.data());
    node_ = *ParseSimulatedNode(NodeYaml(gpus), "bench");
    backend_ = std::make_unique<SimulatedBackend>(node_, "bench", clock_);
    (void)WriteFileAtomically(dir_ + "/config.yaml",
                              "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                              "      - name: nvidia.com/gpu\n        replicas: " +
                                  std::to_string(replicas) + "\n");
    kubelet_ = std::make_unique<testing::TestKubelet>(dir_ + "/dp");
    kubelet_->Start();
    NodeAgentOptions options;
    options.config_path = dir_ + "/config.yaml";
    options.device_plugin_dir = dir_ + "/dp";
    options.features_file = dir_ + "/features";
    options.cdi_dir = dir_ + "/cdi";
    options.mps_root = dir_ + "/mps";
    options.poll_interval = 50ms;
    mps_ = std::make_unique<ProcessMpsControl>(std::vector<std::string>{"true"});
    agent_ = std::make_unique<NodeAgent>(options, *backend_, *mps_);
    if (!agent_->Start().ok()) std::abort();
    loop_ = std::thread([this] {
      while (!stop_) agent_->RunOnce();
    });
    kubelet_->WaitForRegistration("nvidia.com/gpu", 1, 10s);
    client_ = kubelet_->Connect("nvidia.com/gpu");
    client_->StartWatching();
    client_->WaitForDevices([](const auto& l) { return l.devices_size() > 0; }, 10s);
  }
  ~Harness() {
    client_->StopWatching();
    stop_ = true;
    loop_.join();
    agent_->Stop();
    kubelet_->Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  testing::PluginClient& client() { return *client_; }
  SimulatedBackend& backend() { return *backend_; }
  const SimulatedNode& node() const { return node_; }

 private:
  std::string dir_;
  SteadyClock clock_;
  SimulatedNode node_;
  std::unique_ptr<SimulatedBackend> backend_;
  std::unique_ptr<ProcessMpsControl> mps_;
  std::unique_ptr<testing::TestKubelet> kubelet_;
  std::unique_ptr<NodeAgent> agent_;
  std::unique_ptr<testing::PluginClient> client_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

void BM_Allocate(benchmark::State& state) {
  const int devices_per_container = static_cast<int>(state.range(0));
  Harness h(8, 4);
  const v1beta1::ListAndWatchResponse list = h.client().latest();
  std::vector<std::string> ids;
  for (int i = 0; i < devices_per_container; ++i) ids.push_back(list.devices(i * 4).id());
  for (auto _ : state) {
    v1beta1::AllocateResponse response;
    grpc::Status s = h.client().Allocate({ids}, &response);
    if (!s.ok()) state.SkipWithError(s.error_message().c_str());
    benchmark::DoNotOptimize(response);
  }
}
BENCHMARK(BM_Allocate)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);

void BM_ListAndWatchUpdateAfterHealthEvent(benchmark::State& state) {
  Harness h(static_cast<int>(state.range(0)), 4);
  const std::string uuid = h.node().gpus.front().uuid;
  bool unhealthy = false;
  for (auto _ : state) {
    const int seen = h.client().updates();
    const auto start = std::chrono::steady_clock::now();
    h.backend().InjectHealthEvent(unhealthy
                                      ? HealthEvent{HealthEvent::Kind::kRecovered, uuid, 0, ""}
                                      : HealthEvent{HealthEvent::Kind::kXid, uuid, 79, ""});
    if (!h.client().WaitForUpdate(seen, 10s)) state.SkipWithError("no ListAndWatch update");
    const auto elapsed = std::chrono::steady_clock::now() - start;
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    unhealthy = !unhealthy;
  }
}
BENCHMARK(BM_ListAndWatchUpdateAfterHealthEvent)
    ->Arg(8)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gpuslice

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::off);  // the agent logs every health event
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
