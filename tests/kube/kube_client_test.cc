// KubeClient against the fake API server over loopback HTTP: every call, each error code, the
// 409 retry helper, watches with bookmarks, 410 and broken streams.
#include "kube/kube_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "fake_cluster.h"
#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

class KubeClientTest : public ::testing::Test {
 protected:
  Json MustCreate(const Json& pod) {
    Result<Json> created = api().Create(Pods("default"), pod);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : Json();
  }
  KubeApi& api() { return cluster_.client(); }

  FakeCluster cluster_;
};

TEST_F(KubeClientTest, CreateFillsMetadataAndGetReturnsTheObject) {
  const Json created = MustCreate(PodManifest("p1"));
  EXPECT_EQ(created["kind"], "Pod");
  EXPECT_EQ(created["apiVersion"], "v1");
  EXPECT_EQ(created["metadata"]["namespace"], "default");
  EXPECT_FALSE(created["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(created["metadata"]["creationTimestamp"].get<std::string>().empty());
  EXPECT_EQ(created["metadata"]["generation"], 1);
  EXPECT_EQ(created["status"]["phase"], "Pending");
  Result<Json> got = api().Get(Pod("default", "p1"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, created);
}

TEST_F(KubeClientTest, ListFiltersByLabelAndFieldSelectorAndCarriesAVersion) {
  MustCreate(PodManifest("a", {{"app", "x"}}, "node-1"));
  MustCreate(PodManifest("b", {{"app", "y"}}, "node-1"));
  MustCreate(PodManifest("c", {{"app", "x"}}, "node-2"));
  ListOptions options;
  options.label_selector = "app=x";
  options.field_selector = "spec.nodeName=node-1";
  Result<Json> list = api().List(Pods("default"), options);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->value("kind", ""), "PodList");
  ASSERT_EQ((*list)["items"].size(), 1u);
  EXPECT_EQ((*list)["items"][0]["metadata"]["name"], "a");
  EXPECT_FALSE((*list)["metadata"]["resourceVersion"].get<std::string>().empty());
  options.field_selector = "";
  options.label_selector = "app in (x,y),app!=y";
  list = api().List(Pods(), options);  // all namespaces
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)["items"].size(), 2u);
}

struct ErrorRow {
  std::string name;
  std::function<Result<Json>(KubeApi&)> call;
  int http_code;
  std::string reason;
  ErrorCode code;
  std::string message_part;
};

TEST_F(KubeClientTest, ErrorsCarryTheApiStatus) {
  MustCreate(PodManifest("exists"));
  Json stale = MustCreate(PodManifest("stale"));
  ASSERT_TRUE(api()
                  .Patch(Pod("default", "stale"), PatchType::kMerge,
                         {{"metadata", {{"labels", {{"v", "2"}}}}}})
                  .ok());
  const std::vector<ErrorRow> rows = {
      {"get missing pod is NotFound", [](KubeApi& a) { return a.Get(Pod("default", "nope")); }, 404,
       "NotFound", ErrorCode::kNotFound, "pods \"nope\" not found"},
      {"create duplicate is AlreadyExists",
       [](KubeApi& a) { return a.Create(Pods("default"), PodManifest("exists")); }, 409,
       "AlreadyExists", ErrorCode::kAlreadyExists, "already exists"},
      {"create bad name is Invalid",
       [](KubeApi& a) { return a.Create(Pods("default"), PodManifest("Bad_Name")); }, 422,
       "Invalid", ErrorCode::kInvalidArgument, "metadata.name"},
      {"create in missing namespace is NotFound",
       [](KubeApi& a) { return a.Create(Pods("nowhere"), PodManifest("x")); }, 404, "NotFound",
       ErrorCode::kNotFound, "namespaces \"nowhere\" not found"},
      {"update with stale version is Conflict",
       [stale](KubeApi& a) { return a.Update(Pod("default", "stale"), stale); }, 409, "Conflict",
       ErrorCode::kFailedPrecondition, "the object has been modified"},
      {"bad selector is BadRequest",
       [](KubeApi& a) {
         ListOptions o;
         o.label_selector = "app in (x";
         return a.List(Pods("default"), o);
       },
       400, "BadRequest", ErrorCode::kInvalidArgument, "unable to parse requirement"},
      {"failing JSON patch test is Invalid",
       [](KubeApi& a) {
         return a.Patch(Pod("default", "exists"), PatchType::kJson,
                        Json::parse(R"([{"op":"test","path":"/metadata/name","value":"other"}])"));
       },
       422, "Invalid", ErrorCode::kInvalidArgument, "cannot be applied"},
      {"delete missing is NotFound", [](KubeApi& a) { return a.Delete(Pod("default", "nope")); },
       404, "NotFound", ErrorCode::kNotFound, "not found"},
  };
  for (const ErrorRow& row : rows) {
    SCOPED_TRACE(row.name);
    Result<Json> result = row.call(api());
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(ApiHttpCode(result.status()), row.http_code) << result.status().ToString();
    EXPECT_EQ(ApiReason(result.status()), row.reason);
    EXPECT_EQ(result.status().code(), row.code);
    EXPECT_NE(result.status().message().find(row.message_part), std::string::npos)
        << result.status().message();
  }
}

TEST_F(KubeClientTest, UpdateReplacesTheObjectAndKeepsStatus) {
  Json pod = MustCreate(PodManifest("p"));
  pod["metadata"]["labels"]["new"] = "yes";
  pod["status"]["phase"] = "Running";  // ignored: status changes need pods/status
  Result<Json> updated = api().Update(Pod("default", "p"), pod);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ((*updated)["metadata"]["labels"]["new"], "yes");
  EXPECT_EQ((*updated)["status"]["phase"], "Pending");
  EXPECT_NE(VersionOf(*updated), VersionOf(pod));
  ResourceRef status = Pod("default", "p");
  status.subresource = "status";
  Json running = *updated;
  running["status"]["phase"] = "Running";
  running["metadata"]["labels"]["ignored"] = "yes";
  updated = api().Update(status, running);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ((*updated)["status"]["phase"], "Running");
  EXPECT_FALSE((*updated)["metadata"]["labels"].contains("ignored"));
}

TEST_F(KubeClientTest, PatchMergeStrategicAndJson) {
  Json pod = PodManifest("p");
  pod["spec"]["containers"].push_back({{"name", "side"}, {"image", "sidecar:1"}});
  MustCreate(pod);
  const ResourceRef ref = Pod("default", "p");
  Result<Json> patched =
      api().Patch(ref, PatchType::kMerge, {{"metadata", {{"annotations", {{"a", "1"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["metadata"]["annotations"]["a"], "1");
  // Strategic: containers merge by name; a merge patch would have replaced the whole list.
  patched = api().Patch(ref, PatchType::kStrategicMerge,
                        {{"spec", {{"containers", {{{"name", "side"}, {"image", "sidecar:2"}}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  ASSERT_EQ((*patched)["spec"]["containers"].size(), 2u);
  EXPECT_EQ((*patched)["spec"]["containers"][0]["image"], "busybox");
  EXPECT_EQ((*patched)["spec"]["containers"][1]["image"], "sidecar:2");
  patched = api().Patch(ref, PatchType::kJson,
                        Json::parse(R"([{"op":"add","path":"/metadata/labels/j","value":"v"},
                                       {"op":"remove","path":"/metadata/annotations/a"}])"));
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["metadata"]["labels"]["j"], "v");
  EXPECT_FALSE((*patched)["metadata"]["annotations"].contains("a"));
  // A patch carrying a stale resourceVersion is a precondition: 409.
  Result<Json> stale =
      api().Patch(ref, PatchType::kMerge, {{"metadata", {{"resourceVersion", "1"}}}});
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status().ToString();
}

TEST_F(KubeClientTest, NodeStatusSubresourcePatchChangesOnlyStatus) {
  ASSERT_TRUE(api().Create(Nodes(), {{"metadata", {{"name", "node-1"}}}}).ok());
  ResourceRef status = Node("node-1");
  status.subresource = "status";
  Result<Json> patched =
      api().Patch(status, PatchType::kMerge,
                  {{"metadata", {{"labels", {{"x", "y"}}}}},
                   {"status", {{"capacity", {{"gpuslice.io/gpu-memory", "80Gi"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["status"]["capacity"]["gpuslice.io/gpu-memory"], "80Gi");
  EXPECT_FALSE((*patched)["metadata"].contains("labels"));
}

TEST_F(KubeClientTest, BindingSetsNodeAndAnnotationsInOneVersionAndRefusesASecondBind) {
  const Json pod = MustCreate(PodManifest("p"));
  ResourceRef binding = Pod("default", "p");
  binding.subresource = "binding";
  const Json body = {{"apiVersion", "v1"},
                     {"kind", "Binding"},
                     {"metadata", {{"name", "p"}, {"annotations", {{"gpuslice.io/gpu", "GPU-0"}}}}},
                     {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", "node-1"}}}};
  Result<Json> bound = api().Create(binding, body);
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  EXPECT_EQ((*bound)["kind"], "Status");
  EXPECT_EQ((*bound)["status"], "Success");
  Result<Json> after = api().Get(Pod("default", "p"));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)["spec"]["nodeName"], "node-1");
  EXPECT_EQ((*after)["metadata"]["annotations"]["gpuslice.io/gpu"], "GPU-0");
  EXPECT_EQ(std::stoull(VersionOf(*after)), std::stoull(VersionOf(pod)) + 1);
  Result<Json> again = api().Create(binding, body);
  EXPECT_TRUE(IsConflict(again.status())) << again.status().ToString();
  EXPECT_NE(again.status().message().find("already assigned to node \"node-1\""),
            std::string::npos);
}

TEST_F(KubeClientTest, BindPodHelperChecksTheUid) {
  const Json pod = MustCreate(PodManifest("p"));
  const Status wrong_uid = BindPod(api(), "default", "p", "not-the-uid", "node-1", {});
  EXPECT_TRUE(IsConflict(wrong_uid)) << wrong_uid.ToString();
  const std::string uid = pod["metadata"]["uid"];
  ASSERT_TRUE(BindPod(api(), "default", "p", uid, "node-2", {{"gpuslice.io/gpu", "GPU-7"}}).ok());
  Result<Json> after = api().Get(Pod("default", "p"));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)["spec"]["nodeName"], "node-2");
  EXPECT_EQ((*after)["metadata"]["annotations"]["gpuslice.io/gpu"], "GPU-7");
  EXPECT_TRUE(IsNotFound(BindPod(api(), "default", "gone", "", "node-1", {})));
}

TEST_F(KubeClientTest, UpdateWithRetryRereadsAfterAConflict) {
  MustCreate(PodManifest("p"));
  int attempts = 0;
  Result<Json> stored = UpdateWithRetry(api(), Pod("default", "p"), [&](Json& pod) {
    if (++attempts == 1) {  // a competing writer lands between our read and our write
      EXPECT_TRUE(api()
                      .Patch(Pod("default", "p"), PatchType::kMerge,
                             {{"metadata", {{"labels", {{"other", "1"}}}}}})
                      .ok());
    }
    pod["metadata"]["labels"]["mine"] = "1";
    return Status::Ok();
  });
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ((*stored)["metadata"]["labels"]["other"], "1");
  EXPECT_EQ((*stored)["metadata"]["labels"]["mine"], "1");
}

TEST_F(KubeClientTest, UpdateWithRetryGivesUpAfterMaxAttempts) {
  MustCreate(PodManifest("p"));
  int attempts = 0;
  Result<Json> stored = UpdateWithRetry(
      api(), Pod("default", "p"),
      [&](Json& pod) {
        ++attempts;
        EXPECT_TRUE(api()
                        .Patch(Pod("default", "p"), PatchType::kMerge,
                               {{"metadata", {{"labels", {{"n", std::to_string(attempts)}}}}}})
                        .ok());
        pod["metadata"]["labels"]["mine"] = "1";
        return Status::Ok();
      },
      3);
  EXPECT_TRUE(IsConflict(stored.status())) << stored.status().ToString();
  EXPECT_EQ(attempts, 3);
}

TEST_F(KubeClientTest, DeleteReturnsTheObjectAndItIsGone) {
  MustCreate(PodManifest("p"));
  Result<Json> deleted = api().Delete(Pod("default", "p"));
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ((*deleted)["metadata"]["name"], "p");
  EXPECT_TRUE(IsNotFound(api().Get(Pod("default", "p")).status()));
}

// Collects watch events on a thread until `stop`.
class WatchRecorder {
 public:
  WatchRecorder(KubeApi& api, ResourceRef ref, ListOptions options) {
    thread_ = std::thread([this, &api, ref = std::move(ref), options = std::move(options)] {
      Status status = api.Watch(
          ref, options,
          [this](const WatchEvent& event) {
            std::lock_guard lock(mutex_);
            events_.push_back(event);
            cv_.notify_all();
            return true;
          },
          stop_);
      std::lock_guard lock(mutex_);
      result_ = status;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~WatchRecorder() { (void)Finish(); }

  // Waits for an event matching `match`; returns it, or nullopt after 5 s.
  std::optional<WatchEvent> WaitFor(const std::function<bool(const WatchEvent&)>& match) {
    std::unique_lock lock(mutex_);
    std::optional<WatchEvent> found;
    cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      for (const WatchEvent& e : events_)
        if (match(e)) found = e;
      return found.has_value() || done_;
    });
    return found;
  }
  // Waits until the watch ends by itself; returns its status (or kInternal after 5 s).
  Status WaitDone() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return done_; }))
      return Internal("watch did not end");
    return result_;
  }
  Status Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  Status result_;
  bool done_ = false;
  std::thread thread_;
};

bool IsEvent(const WatchEvent& e, WatchEventType type, const std::string& name) {
  return e.type == type && e.object["metadata"].value("name", "") == name;
}

TEST_F(KubeClientTest, WatchFromAListVersionSeesAddedModifiedDeleted) {
  MustCreate(PodManifest("before"));
  Result<Json> list = api().List(Pods("default"), {});
  ASSERT_TRUE(list.ok());
  ListOptions options;
  options.resource_version = (*list)["metadata"]["resourceVersion"];
  WatchRecorder watch(api(), Pods("default"), options);
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, std::chrono::seconds(5)));
  MustCreate(PodManifest("p"));
  ASSERT_TRUE(
      api()
          .Patch(Pod("default", "p"), PatchType::kMerge, {{"metadata", {{"labels", {{"a", "b"}}}}}})
          .ok());
  ASSERT_TRUE(api().Delete(Pod("default", "p")).ok());
  auto deleted =
      watch.WaitFor([](const WatchEvent& e) { return IsEvent(e, WatchEventType::kDeleted, "p"); });
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(
      watch.WaitFor([](const WatchEvent& e) { return IsEvent(e, WatchEventType::kAdded, "p"); }));
  EXPECT_TRUE(watch.WaitFor([](const WatchEvent& e) {
    return IsEvent(e, WatchEventType::kModified, "p") && e.object["metadata"]["labels"]["a"] == "b";
  }));
  EXPECT_TRUE(watch.Finish().ok());
}

TEST_F(KubeClientTest, WatchWithFieldSelectorSeesAPodBoundToItsNodeAsAdded) {
  MustCreate(PodManifest("p"));
  ListOptions options;
  options.field_selector = "spec.nodeName=node-1";
  WatchRecorder watch(api(), Pods(), options);
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, std::chrono::seconds(5)));
  ResourceRef binding = Pod("default", "p");
  binding.subresource = "binding";
  ASSERT_TRUE(api()
                  .Create(binding, {{"metadata", {{"name", "p"}}},
                                    {"target", {{"kind", "Node"}, {"name", "node-1"}}}})
                  .ok());
  EXPECT_TRUE(
      watch.WaitFor([](const WatchEvent& e) { return IsEvent(e, WatchEventType::kAdded, "p"); }));
}

TEST_F(KubeClientTest, WatchSendsBookmarksWhenAsked) {
  FakeCluster cluster(FakeOptions(1000, std::chrono::milliseconds(20)));
  ListOptions options;
  options.resource_version = std::to_string(cluster.server().store().CurrentVersion());
  WatchRecorder watch(cluster.client(), Pods(), options);
  auto bookmark =
      watch.WaitFor([](const WatchEvent& e) { return e.type == WatchEventType::kBookmark; });
  ASSERT_TRUE(bookmark);
  EXPECT_EQ(bookmark->object["metadata"]["resourceVersion"], options.resource_version);
}

TEST_F(KubeClientTest, WatchFromACompactedVersionGetsError410) {
  MustCreate(PodManifest("p"));
  cluster_.server().CompactHistory();
  ListOptions options;
  options.resource_version = "1";
  WatchRecorder watch(api(), Pods(), options);
  auto error = watch.WaitFor([](const WatchEvent& e) { return e.type == WatchEventType::kError; });
  ASSERT_TRUE(error);
  const Status status = StatusFromApiStatusObject("watch", error->object);
  EXPECT_TRUE(IsExpired(status)) << status.ToString();
  EXPECT_EQ(ApiReason(status), "Expired");
  EXPECT_TRUE(watch.WaitDone().ok());  // the server ends the stream after the ERROR
}

TEST_F(KubeClientTest, BrokenWatchIsAnUnavailableError) {
  WatchRecorder watch(api(), Pods(), {});
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, std::chrono::seconds(5)));
  cluster_.server().BreakWatches();
  const Status status = watch.WaitDone();
  EXPECT_EQ(status.code(), ErrorCode::kUnavailable) << status.ToString();
}

TEST_F(KubeClientTest, StopEndsAWatchPromptly) {
  WatchRecorder watch(api(), Pods(), {});
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, std::chrono::seconds(5)));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(watch.Finish().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(KubeClientTest, InjectedServerFailureAndUnreachableServerAreUnavailable) {
  cluster_.server().FailNextRequests(1, 503);
  Result<Json> failed = api().Get(Pod("default", "x"));
  EXPECT_EQ(failed.status().code(), ErrorCode::kUnavailable) << failed.status().ToString();
  EXPECT_EQ(ApiHttpCode(failed.status()), 503);
  EXPECT_TRUE(IsNotFound(api().Get(Pod("default", "x")).status()));  // only one failure
  cluster_.server().Stop();
  Result<Json> unreachable = api().Get(Pod("default", "x"));
  EXPECT_EQ(unreachable.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(ApiHttpCode(unreachable.status()), 0) << unreachable.status().ToString();
}

}  // namespace
}  // namespace gpuslice::kube
