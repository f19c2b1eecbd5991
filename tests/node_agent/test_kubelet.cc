#include "test_kubelet.h"

#include <filesystem>

namespace gpuslice::testing {

PluginClient::PluginClient(std::string socket_path)
    : socket_path_(std::move(socket_path)),
      channel_(grpc::CreateChannel("unix:" + socket_path_, grpc::InsecureChannelCredentials())),
      stub_(v1beta1::DevicePlugin::NewStub(channel_)) {}

PluginClient::~PluginClient() { StopWatching(); }

void PluginClient::StartWatching() {
  StopWatching();
  watch_context_ = std::make_unique<grpc::ClientContext>();
  grpc::ClientContext* context = watch_context_.get();
  watcher_ = std::thread([this, context] {
    v1beta1::Empty empty;
    auto reader = stub_->ListAndWatch(context, empty);
    v1beta1::ListAndWatchResponse response;
    while (reader->Read(&response)) {
      std::lock_guard lock(mu_);
      latest_ = response;
      ++updates_;
      cv_.notify_all();
    }
    (void)reader->Finish();
  });
}

void PluginClient::StopWatching() {
  if (watch_context_ != nullptr) watch_context_->TryCancel();
  if (watcher_.joinable()) watcher_.join();
  watch_context_.reset();
}

bool PluginClient::WaitForDevices(
    const std::function<bool(const v1beta1::ListAndWatchResponse&)>& pred,
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return updates_ > 0 && pred(latest_); });
}

bool PluginClient::WaitForUpdate(int seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return updates_ > seen; });
}

v1beta1::ListAndWatchResponse PluginClient::latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

int PluginClient::updates() const {
  std::lock_guard lock(mu_);
  return updates_;
}

grpc::Status PluginClient::GetOptions(v1beta1::DevicePluginOptions* out) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return stub_->GetDevicePluginOptions(&context, v1beta1::Empty(), out);
}

grpc::Status PluginClient::Allocate(const std::vector<std::vector<std::string>>& containers,
                                    v1beta1::AllocateResponse* out) {
  v1beta1::AllocateRequest request;
  for (const auto& ids : containers) {
    auto* c = request.add_container_requests();
    for (const std::string& id : ids) c->add_devices_ids(id);
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return stub_->Allocate(&context, request, out);
}

grpc::Status PluginClient::GetPreferredAllocation(const std::vector<std::string>& available,
                                                  const std::vector<std::string>& must_include,
                                                  int size, std::vector<std::string>* out) {
  v1beta1::PreferredAllocationRequest request;
  auto* c = request.add_container_requests();
  for (const std::string& id : available) c->add_available_deviceids(id);
  for (const std::string& id : must_include) c->add_must_include_deviceids(id);
  c->set_allocation_size(size);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1beta1::PreferredAllocationResponse response;
  grpc::Status s = stub_->GetPreferredAllocation(&context, request, &response);
  out->clear();
  if (s.ok() && response.container_responses_size() == 1) {
    for (const std::string& id : response.container_responses(0).deviceids()) out->push_back(id);
  }
  return s;
}

TestKubelet::TestKubelet(std::string plugin_dir) : plugin_dir_(std::move(plugin_dir)) {}

TestKubelet::~TestKubelet() { Stop(); }

bool TestKubelet::Start() {
  std::error_code ec;
  std::filesystem::create_directories(plugin_dir_, ec);
  std::filesystem::remove(socket_path(), ec);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path(), grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  return server_ != nullptr;
}

void TestKubelet::Stop() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    server_->Wait();
    server_.reset();
  }
  std::error_code ec;
  std::filesystem::remove(socket_path(), ec);
}

grpc::Status TestKubelet::Register(grpc::ServerContext* /*context*/,
                                   const v1beta1::RegisterRequest* request,
                                   v1beta1::Empty* /*response*/) {
  if (request->version() != "v1beta1") {
    return {grpc::StatusCode::INVALID_ARGUMENT, "unsupported version " + request->version()};
  }
  std::lock_guard lock(mu_);
  registrations_.push_back(*request);
  cv_.notify_all();
  return grpc::Status::OK;
}

std::vector<v1beta1::RegisterRequest> TestKubelet::registrations() const {
  std::lock_guard lock(mu_);
  return registrations_;
}

bool TestKubelet::WaitForRegistration(const std::string& resource_name, int count,
                                      std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    int n = 0;
    for (const auto& r : registrations_) n += r.resource_name() == resource_name ? 1 : 0;
    return n >= count;
  });
}

std::unique_ptr<PluginClient> TestKubelet::Connect(const std::string& resource_name) const {
  std::lock_guard lock(mu_);
  for (auto it = registrations_.rbegin(); it != registrations_.rend(); ++it) {
    if (it->resource_name() == resource_name) {
      return std::make_unique<PluginClient>(plugin_dir_ + "/" + it->endpoint());
    }
  }
  return nullptr;
}

}  // namespace gpuslice::testing
