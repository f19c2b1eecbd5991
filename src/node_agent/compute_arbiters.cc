#include "node_agent/compute_arbiters.h"

#include <sys/stat.h>

#include <filesystem>

namespace gpuslice {

namespace fs = std::filesystem;

Result<std::string> ComputeArbiters::GpuDir(const std::string& uuid) {
  std::lock_guard<std::mutex> lock(mu_);
  const fs::path dir = fs::path(root_) / ("gpu-" + uuid);
  if (referees_.count(uuid) != 0) return dir.string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Internal("cannot create the compute arbiter directory " + dir.string() + ": " +
                    ec.message() + " (check --allocations-dir)");
  }
  ::chmod(dir.c_str(), 0755);
  GPUSLICE_ASSIGN_OR_RETURN(
      std::unique_ptr<shim::ArbiterReferee> referee,
      shim::ArbiterReferee::Start((dir / kArbiterGrantFileName).string(), {}, ChargesPath(uuid)));
  referees_[uuid] = std::move(referee);
  return dir.string();
}

Status ComputeArbiters::Add(const std::string& key, const std::string& uuid,
                            const std::string& requests_path, std::uint32_t weight,
                            std::uint32_t cap_percent) {
  GPUSLICE_RETURN_IF_ERROR(GpuDir(uuid).status());
  std::lock_guard<std::mutex> lock(mu_);
  // Replaces the container's registration on this GPU (AddTenant does), not on its others.
  GPUSLICE_RETURN_IF_ERROR(referees_[uuid]->AddTenant(key, requests_path, weight, cap_percent));
  gpus_of_[key].insert(uuid);
  return Status::Ok();
}

void ComputeArbiters::Remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gpus_of_.find(key);
  if (it == gpus_of_.end()) return;
  for (const std::string& uuid : it->second) {
    auto referee = referees_.find(uuid);
    if (referee != referees_.end()) referee->second->RemoveTenant(key);
  }
  gpus_of_.erase(it);
}

std::string ComputeArbiters::ChargesPath(const std::string& uuid) const {
  return (fs::path(root_) / ("gpu-" + uuid + kChargesSuffix)).string();
}

void ComputeArbiters::ForgetUnclaimedCharges() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [uuid, referee] : referees_) referee->ForgetUnclaimedCharges();
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    const std::size_t suffix = std::string(kChargesSuffix).size();
    if (name.rfind("gpu-", 0) != 0 || name.size() <= 4 + suffix ||
        name.compare(name.size() - suffix, suffix, kChargesSuffix) != 0) {
      continue;
    }
    if (referees_.count(name.substr(4, name.size() - 4 - suffix)) == 0) {
      fs::remove(entry.path(), ec);
    }
  }
}

shim::ArbiterReferee* ComputeArbiters::Referee(const std::string& uuid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = referees_.find(uuid);
  return it == referees_.end() ? nullptr : it->second.get();
}

}  // namespace gpuslice
