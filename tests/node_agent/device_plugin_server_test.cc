#include "node_agent/device_plugin_server.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_nodes.h"

namespace gpuslice {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::TestKubelet;

std::shared_ptr<const ResourceState> StateFor(const AdvertisedResource& r,
                                              const std::vector<GpuInfo>& gpus,
                                              const std::string& unhealthy_uuid = "") {
  auto state = std::make_shared<ResourceState>();
  for (const AdvertisedDevice& d : r.devices) {
    auto* out = state->devices.add_devices();
    out->set_id(d.id);
    out->set_health(d.gpu_uuid == unhealthy_uuid ? "Unhealthy" : "Healthy");
  }
  state->allocator = std::make_shared<ContainerAllocator>(r, gpus, AllocationSettings{});
  state->preferred = std::make_shared<PreferredAllocator>(r, ReplicaPolicy::kDistributed);
  return state;
}

int CountHealth(const v1beta1::ListAndWatchResponse& r, const std::string& health) {
  int n = 0;
  for (const auto& d : r.devices()) n += d.health() == health ? 1 : 0;
  return n;
}

TEST(DevicePluginServerTest, SocketNames) {
  EXPECT_EQ(DevicePluginServer::SocketNameFor("nvidia.com/gpu"), "gpuslice-nvidia.com_gpu.sock");
  EXPECT_EQ(DevicePluginServer::SocketNameFor("nvidia.com/mig-1g.5gb.shared"),
            "gpuslice-nvidia.com_mig-1g.5gb.shared.sock");
}

TEST(DevicePluginServerTest, RegistersStreamsUpdatesAllocatesAndStops) {
  TempDir dir;
  TestKubelet kubelet(dir.path());
  ASSERT_TRUE(kubelet.Start());
  const std::vector<GpuInfo> gpus = testing::GpusOf(testing::kFourA100);
  const AdvertisedResource r = testing::ResourceOf(gpus, "version: v1\n", "nvidia.com/gpu");

  DevicePluginServer server("nvidia.com/gpu", dir.path());
  server.SetState(StateFor(r, gpus));
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(server.Register(kubelet.socket_path(), 2s).ok());
  ASSERT_TRUE(kubelet.WaitForRegistration("nvidia.com/gpu", 1, 5s));
  const v1beta1::RegisterRequest reg = kubelet.registrations().front();
  EXPECT_EQ(reg.version(), "v1beta1");
  EXPECT_EQ(reg.endpoint(), "gpuslice-nvidia.com_gpu.sock");
  EXPECT_TRUE(reg.options().get_preferred_allocation_available());

  auto client = kubelet.Connect("nvidia.com/gpu");
  ASSERT_NE(client, nullptr);
  v1beta1::DevicePluginOptions options;
  ASSERT_TRUE(client->GetOptions(&options).ok());
  EXPECT_TRUE(options.get_preferred_allocation_available());

  client->StartWatching();
  ASSERT_TRUE(client->WaitForDevices(
      [](const auto& l) { return l.devices_size() == 4 && CountHealth(l, "Healthy") == 4; }, 5s));

  // Same list again: no update is sent.
  const int seen = client->updates();
  server.SetState(StateFor(r, gpus));
  server.SetState(StateFor(r, gpus, gpus[1].uuid));
  ASSERT_TRUE(
      client->WaitForDevices([](const auto& l) { return CountHealth(l, "Unhealthy") == 1; }, 5s));
  EXPECT_EQ(client->updates(), seen + 1);

  v1beta1::AllocateResponse response;
  ASSERT_TRUE(client->Allocate({{gpus[0].uuid}, {gpus[2].uuid, gpus[3].uuid}}, &response).ok());
  ASSERT_EQ(response.container_responses_size(), 2);
  EXPECT_EQ(response.container_responses(1).envs().at("NVIDIA_VISIBLE_DEVICES"),
            gpus[2].uuid + "," + gpus[3].uuid);
  grpc::Status bad = client->Allocate({{"GPU-unknown"}}, &response);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  std::vector<std::string> preferred;
  ASSERT_TRUE(
      client->GetPreferredAllocation({gpus[0].uuid, gpus[2].uuid, gpus[3].uuid}, {}, 2, &preferred)
          .ok());
  EXPECT_EQ(preferred, (std::vector<std::string>{gpus[2].uuid, gpus[3].uuid}));

  server.Stop();
  EXPECT_FALSE(std::filesystem::exists(server.socket_path()));
  client->StopWatching();  // returns: the stream ended with the server
}

TEST(DevicePluginServerTest, RegisterFailsClearlyWithoutKubelet) {
  TempDir dir;
  DevicePluginServer server("nvidia.com/gpu", dir.path());
  ASSERT_TRUE(server.Start().ok());
  Status s = server.Register(dir / "kubelet.sock", 300ms);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot register nvidia.com/gpu"), std::string::npos);
  EXPECT_FALSE(server.registered());
}

}  // namespace
}  // namespace gpuslice
