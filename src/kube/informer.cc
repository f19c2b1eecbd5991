#include "kube/informer.h"

#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

std::string VersionOf(const Json& object) {
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  const auto version = metadata->find("resourceVersion");
  return version != metadata->end() && version->is_string() ? version->get<std::string>() : "";
}

}  // namespace

void InterruptibleSleeper::SleepFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  woken_cv_.wait_for(lock, duration, [this] { return woken_; });
}

void InterruptibleSleeper::Wake() {
  std::lock_guard lock(mutex_);
  woken_ = true;
  woken_cv_.notify_all();
}

Informer::Informer(KubeApi& api, ResourceRef collection, InformerOptions options,
                   InformerHandlers handlers)
    : api_(api),
      collection_(std::move(collection)),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      sleeper_(options_.sleeper != nullptr ? *options_.sleeper : own_sleeper_),
      clock_(options_.clock != nullptr ? *options_.clock : steady_clock_) {}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  stop_ = true;
  sleeper_.Wake();
  if (thread_.joinable()) thread_.join();
}

bool Informer::HasSynced() const {
  std::lock_guard lock(mutex_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return synced_cv_.wait_for(lock, timeout, [this] { return synced_; });
}

std::optional<Json> Informer::Get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  const auto it = store_.find(key);
  if (it == store_.end()) return std::nullopt;
  return it->second;
}

std::vector<Json> Informer::List() const {
  std::lock_guard lock(mutex_);
  std::vector<Json> objects;
  objects.reserve(store_.size());
  for (const auto& [key, object] : store_) objects.push_back(object);
  return objects;
}

std::string Informer::ResourceVersion() const {
  std::lock_guard lock(mutex_);
  return resource_version_;
}

InformerStats Informer::Stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Informer::Run() {
  std::chrono::milliseconds backoff = options_.initial_backoff;
  bool need_list = true;
  while (!stop_) {
    const Clock::TimePoint started = clock_.Now();
    Status status = need_list ? Relist() : WatchOnce();
    if (stop_) break;
    if (status.ok() && !need_list && watch_events_ == 0 &&
        clock_.Now() - started < options_.min_quiet_watch) {
      {
        std::lock_guard lock(mutex_);
        ++stats_.quiet_watches;
      }
      sleeper_.SleepFor(backoff);  // resume the watch, but not in a tight loop
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    if (status.ok()) {
      // A list succeeded (now watch) or a watch ended normally (resume it).
      need_list = false;
      backoff = options_.initial_backoff;
      continue;
    }
    need_list = true;
    const bool expired = IsExpired(status);  // the history moved on: relist at once
    {
      std::lock_guard lock(mutex_);
      ++(expired ? stats_.expired : stats_.failures);
    }
    if (expired) continue;
    sleeper_.SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

Status Informer::Relist() {
  ListOptions list_options;
  list_options.label_selector = options_.label_selector;
  list_options.field_selector = options_.field_selector;
  GPUSLICE_ASSIGN_OR_RETURN(Json list, api_.List(collection_, list_options));
  std::map<std::string, Json> fresh;
  if (const auto items = list.find("items"); items != list.end() && items->is_array()) {
    for (Json& item : *items) {
      std::string key = ObjectKey(item);
      if (!key.empty()) fresh.emplace(std::move(key), std::move(item));
    }
  }
  std::vector<Json> gone;
  std::vector<Json> added;
  std::vector<std::pair<Json, Json>> changed;
  {
    std::lock_guard lock(mutex_);
    for (auto& [key, object] : store_) {
      const auto it = fresh.find(key);
      if (it == fresh.end())
        gone.push_back(std::move(object));
      else if (VersionOf(it->second) != VersionOf(object))
        changed.emplace_back(std::move(object), it->second);
    }
    for (const auto& [key, object] : fresh)
      if (!store_.contains(key)) added.push_back(object);
    store_ = std::move(fresh);
    resource_version_ = VersionOf(list);
    ++stats_.lists;
    stats_.synthesized_deletes += static_cast<int>(gone.size());
  }
  for (const Json& object : gone)
    if (handlers_.on_deleted) handlers_.on_deleted(object);
  for (const Json& object : added)
    if (handlers_.on_added) handlers_.on_added(object);
  for (const auto& [before, after] : changed)
    if (handlers_.on_modified) handlers_.on_modified(before, after);
  {
    std::lock_guard lock(mutex_);
    synced_ = true;
  }
  synced_cv_.notify_all();
  if (handlers_.on_relisted) handlers_.on_relisted();
  return Status::Ok();
}

Status Informer::WatchOnce() {
  ListOptions watch_options;
  watch_options.label_selector = options_.label_selector;
  watch_options.field_selector = options_.field_selector;
  watch_options.resource_version = ResourceVersion();
  watch_options.timeout_seconds = options_.watch_timeout_seconds;
  {
    std::lock_guard lock(mutex_);
    ++stats_.watches;
    watch_error_ = Status::Ok();
  }
  watch_events_ = 0;
  const Status status = api_.Watch(
      collection_, watch_options,
      [this](const WatchEvent& event) {
        if (event.type == WatchEventType::kError) {
          std::lock_guard lock(mutex_);
          watch_error_ = StatusFromApiStatusObject("WATCH " + collection_.Describe(), event.object);
          return false;
        }
        ++watch_events_;
        Apply(event);
        return !stop_.load();
      },
      stop_);
  GPUSLICE_RETURN_IF_ERROR(status);
  std::lock_guard lock(mutex_);
  return watch_error_;
}

void Informer::Apply(const WatchEvent& event) {
  switch (event.type) {
    case WatchEventType::kAdded:
    case WatchEventType::kModified:
      Upsert(event.object);
      break;
    case WatchEventType::kDeleted:
      Remove(event.object);
      break;
    case WatchEventType::kBookmark:
      NoteVersion(event.object);
      break;
    case WatchEventType::kError:
      break;
  }
}

void Informer::NoteVersion(const Json& object) {
  std::string version = VersionOf(object);
  std::lock_guard lock(mutex_);
  if (!version.empty()) resource_version_ = std::move(version);
}

void Informer::Upsert(Json object) {
  const std::string key = ObjectKey(object);
  if (key.empty()) return;
  NoteVersion(object);
  std::optional<Json> before;
  {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = store_.try_emplace(key, object);
    if (!inserted) {
      before = std::move(it->second);
      it->second = object;
    }
  }
  if (!before && handlers_.on_added) handlers_.on_added(object);
  if (before && handlers_.on_modified) handlers_.on_modified(*before, object);
}

void Informer::Remove(const Json& object) {
  NoteVersion(object);
  bool known = false;
  {
    std::lock_guard lock(mutex_);
    known = store_.erase(ObjectKey(object)) > 0;
  }
  if (known && handlers_.on_deleted) handlers_.on_deleted(object);
}

}  // namespace gpuslice::kube
