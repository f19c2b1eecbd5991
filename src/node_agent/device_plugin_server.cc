#include "node_agent/device_plugin_server.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

namespace gpuslice {
namespace {

grpc::Status ToGrpc(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kOk:
      return grpc::Status::OK;
    case ErrorCode::kInvalidArgument:
      return {grpc::StatusCode::INVALID_ARGUMENT, s.message()};
    case ErrorCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, s.message()};
    case ErrorCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, s.message()};
    case ErrorCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, s.message()};
    case ErrorCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, s.message()};
    default:
      return {grpc::StatusCode::INTERNAL, s.message()};
  }
}

}  // namespace

DevicePluginServer::DevicePluginServer(std::string resource_name, std::string plugin_dir)
    : resource_name_(std::move(resource_name)), plugin_dir_(std::move(plugin_dir)) {}

DevicePluginServer::~DevicePluginServer() { Stop(); }

std::string DevicePluginServer::SocketNameFor(std::string_view resource_name) {
  std::string name(resource_name);
  std::replace(name.begin(), name.end(), '/', '_');
  return "gpuslice-" + name + ".sock";
}

std::string DevicePluginServer::socket_path() const {
  return (std::filesystem::path(plugin_dir_) / SocketNameFor(resource_name_)).string();
}

void DevicePluginServer::SetState(std::shared_ptr<const ResourceState> state) {
  std::lock_guard lock(mu_);
  const bool changed = state_ == nullptr || !google::protobuf::util::MessageDifferencer::Equals(
                                                state_->devices, state->devices);
  state_ = std::move(state);
  if (changed) {
    ++version_;
    changed_.notify_all();
  }
}

std::shared_ptr<const ResourceState> DevicePluginServer::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::uint64_t DevicePluginServer::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

Status DevicePluginServer::Start() {
  if (server_ != nullptr) return Status::Ok();
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  std::error_code ec;
  std::filesystem::create_directories(plugin_dir_, ec);
  std::filesystem::remove(socket_path(), ec);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path(), grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return Unavailable("cannot serve " + resource_name_ + " on " + socket_path());
  }
  spdlog::info("serving {} on {}", resource_name_, socket_path());
  return Status::Ok();
}

Status DevicePluginServer::Register(const std::string& kubelet_socket,
                                    std::chrono::milliseconds timeout) {
  auto channel = grpc::CreateChannel("unix:" + kubelet_socket, grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);
  v1beta1::RegisterRequest request;
  request.set_version(std::string(kDevicePluginApiVersion));
  request.set_endpoint(SocketNameFor(resource_name_));
  request.set_resource_name(resource_name_);
  request.mutable_options()->set_get_preferred_allocation_available(true);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1beta1::Empty response;
  const grpc::Status s = stub->Register(&context, request, &response);
  if (!s.ok()) {
    registered_ = false;
    return Unavailable("cannot register " + resource_name_ + " with the kubelet at " +
                       kubelet_socket + ": " + s.error_message());
  }
  registered_ = true;
  spdlog::info("registered {} with the kubelet (endpoint {})", resource_name_,
               SocketNameFor(resource_name_));
  return Status::Ok();
}

void DevicePluginServer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    changed_.notify_all();
  }
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    server_.reset();
    spdlog::info("stopped serving {}", resource_name_);
  }
  registered_ = false;
  std::error_code ec;
  std::filesystem::remove(socket_path(), ec);
}

grpc::Status DevicePluginServer::GetDevicePluginOptions(grpc::ServerContext* /*context*/,
                                                        const v1beta1::Empty* /*request*/,
                                                        v1beta1::DevicePluginOptions* response) {
  response->set_pre_start_required(false);
  response->set_get_preferred_allocation_available(true);
  return grpc::Status::OK;
}

grpc::Status DevicePluginServer::ListAndWatch(
    grpc::ServerContext* context, const v1beta1::Empty* /*request*/,
    grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) {
  std::uint64_t sent = 0;
  std::unique_lock lock(mu_);
  while (!stopping_ && !context->IsCancelled()) {
    if (state_ != nullptr && version_ != sent) {
      sent = version_;
      const std::shared_ptr<const ResourceState> state = state_;
      lock.unlock();
      if (!writer->Write(state->devices)) return grpc::Status::OK;  // the kubelet went away
      lock.lock();
      continue;
    }
    // Woken by SetState/Stop; the timeout only bounds how late a cancelled stream ends.
    changed_.wait_for(lock, std::chrono::milliseconds(200));
  }
  return grpc::Status::OK;
}

grpc::Status DevicePluginServer::GetPreferredAllocation(
    grpc::ServerContext* /*context*/, const v1beta1::PreferredAllocationRequest* request,
    v1beta1::PreferredAllocationResponse* response) {
  const std::shared_ptr<const ResourceState> state = this->state();
  if (state == nullptr || state->preferred == nullptr) {
    return {grpc::StatusCode::UNAVAILABLE, resource_name_ + " has no devices yet"};
  }
  for (const auto& container : request->container_requests()) {
    std::vector<std::string> available(container.available_deviceids().begin(),
                                       container.available_deviceids().end());
    std::vector<std::string> must(container.must_include_deviceids().begin(),
                                  container.must_include_deviceids().end());
    Result<std::vector<std::string>> chosen =
        state->preferred->Choose(available, must, container.allocation_size());
    if (!chosen.ok()) return ToGrpc(chosen.status());
    auto* out = response->add_container_responses();
    for (const std::string& id : *chosen) out->add_deviceids(id);
  }
  return grpc::Status::OK;
}

grpc::Status DevicePluginServer::Allocate(grpc::ServerContext* /*context*/,
                                          const v1beta1::AllocateRequest* request,
                                          v1beta1::AllocateResponse* response) {
  const std::shared_ptr<const ResourceState> state = this->state();
  if (state == nullptr || state->allocator == nullptr) {
    return {grpc::StatusCode::UNAVAILABLE, resource_name_ + " has no devices yet"};
  }
  for (const auto& container : request->container_requests()) {
    std::vector<std::string> ids(container.devices_ids().begin(), container.devices_ids().end());
    Result<v1beta1::ContainerAllocateResponse> allocated = state->allocator->Allocate(ids);
    if (!allocated.ok()) {
      spdlog::warn("Allocate for {} refused: {}", resource_name_, allocated.status().message());
      return ToGrpc(allocated.status());
    }
    if (state->decorate) {
      if (Status s = state->decorate(ids, *allocated); !s.ok()) return ToGrpc(s);
    }
    if (state->after_allocate) {
      if (Status s = state->after_allocate(ids, *allocated); !s.ok()) {
        spdlog::error("Allocate for {} refused: {}", resource_name_, s.message());
        return ToGrpc(s);
      }
    }
    *response->add_container_responses() = std::move(allocated).value();
  }
  return grpc::Status::OK;
}

grpc::Status DevicePluginServer::PreStartContainer(
    grpc::ServerContext* /*context*/, const v1beta1::PreStartContainerRequest* /*request*/,
    v1beta1::PreStartContainerResponse* /*response*/) {
  return grpc::Status::OK;
}

}  // namespace gpuslice
