// Informer against the fake API server: sync, event delivery, and the no-ghost guarantee after
// broken watches, 410 Expired and failed requests.
#include "kube/informer.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "fake_cluster.h"
#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

using std::chrono::milliseconds;

// Records every handler call as "ADDED default/p" etc.
class EventLog {
 public:
  InformerHandlers Handlers() {
    return {[this](const Json& o) { Add("ADDED " + ObjectKey(o)); },
            [this](const Json&, const Json& o) { Add("MODIFIED " + ObjectKey(o)); },
            [this](const Json& o) { Add("DELETED " + ObjectKey(o)); }};
  }
  bool WaitFor(const std::string& entry) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      return std::find(entries_.begin(), entries_.end(), entry) != entries_.end();
    });
  }
  std::vector<std::string> entries() {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  int Count(const std::string& entry) {
    const auto all = entries();
    return static_cast<int>(std::count(all.begin(), all.end(), entry));
  }

 private:
  void Add(std::string entry) {
    std::lock_guard lock(mutex_);
    entries_.push_back(std::move(entry));
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> entries_;
};

// A sleeper the test controls: records each backoff, and (when gated) holds the informer in its
// backoff until the test opens the gate, so the test can change the cluster "while the watch is
// down" deterministically.
class GateSleeper final : public Sleeper {
 public:
  explicit GateSleeper(bool gated) : gated_(gated) {}
  void SleepFor(milliseconds duration) override {
    std::unique_lock lock(mutex_);
    sleeps_.push_back(duration);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !gated_ || opened_ > 0 || woken_; });
    if (opened_ > 0) --opened_;
  }
  void Wake() override {
    std::lock_guard lock(mutex_);
    woken_ = true;
    cv_.notify_all();
  }
  bool WaitForSleeps(size_t count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return sleeps_.size() >= count; });
  }
  void Open() {
    std::lock_guard lock(mutex_);
    ++opened_;
    cv_.notify_all();
  }
  std::vector<milliseconds> sleeps() {
    std::lock_guard lock(mutex_);
    return sleeps_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<milliseconds> sleeps_;
  bool gated_;
  int opened_ = 0;
  bool woken_ = false;
};

class InformerTest : public ::testing::Test {
 protected:
  void CreatePod(const std::string& name, const std::string& node = "") {
    Result<Json> created = cluster_.client().Create(Pods("default"), PodManifest(name, {}, node));
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }
  // Deletes behind the informer's back: straight in the store, no HTTP.
  void DeleteInStore(const std::string& name) {
    ASSERT_TRUE(
        cluster_.server().store().Delete(*fake::FindResource("pods"), "default", name).ok());
  }

  FakeCluster cluster_;
  EventLog log_;
};

TEST_F(InformerTest, FirstListSyncsTheStoreAndCallsAdded) {
  CreatePod("a");
  CreatePod("b");
  Informer informer(cluster_.client(), Pods(), {}, log_.Handlers());
  EXPECT_FALSE(informer.HasSynced());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  EXPECT_EQ(log_.Count("ADDED default/a"), 1);
  EXPECT_EQ(log_.Count("ADDED default/b"), 1);
  ASSERT_TRUE(informer.Get("default/a").has_value());
  EXPECT_EQ(informer.List().size(), 2u);
  EXPECT_FALSE(informer.ResourceVersion().empty());
}

TEST_F(InformerTest, WatchEventsReachHandlersAndStore) {
  Informer informer(cluster_.client(), Pods(), {}, log_.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  CreatePod("p");
  ASSERT_TRUE(log_.WaitFor("ADDED default/p"));
  ASSERT_TRUE(
      cluster_.client()
          .Patch(Pod("default", "p"), PatchType::kMerge, {{"metadata", {{"labels", {{"x", "1"}}}}}})
          .ok());
  ASSERT_TRUE(log_.WaitFor("MODIFIED default/p"));
  EXPECT_EQ((*informer.Get("default/p"))["metadata"]["labels"]["x"], "1");
  ASSERT_TRUE(cluster_.client().Delete(Pod("default", "p")).ok());
  ASSERT_TRUE(log_.WaitFor("DELETED default/p"));
  EXPECT_FALSE(informer.Get("default/p").has_value());
  EXPECT_EQ(informer.Stats().synthesized_deletes, 0);
}

// The HAMi #1458 scenario: the watch breaks, a pod is deleted while it is down (and the history
// is compacted, so no replay could deliver the DELETED), and the informer must still report it.
TEST_F(InformerTest, PodDeletedWhileTheWatchWasBrokenGetsASynthesizedDelete) {
  CreatePod("doomed", "node-1");
  CreatePod("survivor", "node-1");
  GateSleeper sleeper(/*gated=*/true);
  InformerOptions options;
  options.sleeper = &sleeper;
  Informer informer(cluster_.client(), Pods(), options, log_.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, milliseconds(5000)));
  cluster_.server().BreakWatches();
  ASSERT_TRUE(sleeper.WaitForSleeps(1));  // the informer is backing off: its watch is down
  DeleteInStore("doomed");
  cluster_.server().CompactHistory();
  sleeper.Open();
  ASSERT_TRUE(log_.WaitFor("DELETED default/doomed"));
  EXPECT_FALSE(informer.Get("default/doomed").has_value());
  EXPECT_TRUE(informer.Get("default/survivor").has_value());
  EXPECT_EQ(log_.Count("DELETED default/survivor"), 0);
  const InformerStats stats = informer.Stats();
  EXPECT_EQ(stats.synthesized_deletes, 1);
  EXPECT_EQ(stats.lists, 2);
  EXPECT_GE(stats.failures, 1);
}

TEST_F(InformerTest, ExpiredWatchRelistsWithoutBackoffAndDiffs) {
  CreatePod("a");
  CreatePod("b");
  Informer informer(cluster_.client(), Pods(), {}, log_.Handlers());
  ASSERT_TRUE(informer.Relist().ok());  // driven step by step, no thread
  DeleteInStore("a");
  CreatePod("c");
  cluster_.server().CompactHistory();
  const Status watched = informer.WatchOnce();
  EXPECT_TRUE(IsExpired(watched)) << watched.ToString();
  ASSERT_TRUE(informer.Relist().ok());
  EXPECT_EQ(log_.Count("DELETED default/a"), 1);
  EXPECT_EQ(log_.Count("ADDED default/c"), 1);
  EXPECT_EQ(log_.Count("ADDED default/b"), 1);  // once, at the first list
  EXPECT_EQ(informer.Stats().synthesized_deletes, 1);
}

// A watch (the first one, or one resumed after the server ended it) starts from the informer's
// last version; when the history has moved past it (here: other resources' changes beyond
// max_history), the server answers ERROR 410 and the informer relists at once, without backoff.
TEST(InformerExpiryTest, ResumedWatchThatGetsExpiredRelistsWithoutBackoff) {
  FakeCluster cluster(FakeOptions(2, std::chrono::hours(1)));
  EventLog log;
  GateSleeper sleeper(/*gated=*/false);
  InformerOptions options;
  options.sleeper = &sleeper;
  options.watch_timeout_seconds = 1;
  Informer informer(cluster.client(), Pods(), options, log.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  for (const char* name : {"c1", "c2", "c3"}) {
    ResourceRef configmaps;
    configmaps.resource = "configmaps";
    configmaps.namespace_name = "default";
    ASSERT_TRUE(cluster.client().Create(configmaps, {{"metadata", {{"name", name}}}}).ok());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((informer.Stats().expired == 0 || informer.Stats().lists < 2) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(informer.Stats().expired, 1);
  EXPECT_EQ(informer.Stats().lists, 2);
  EXPECT_TRUE(sleeper.sleeps().empty()) << "410 must relist at once, not back off";
  ASSERT_TRUE(cluster.client().Create(Pods("default"), PodManifest("after")).ok());
  EXPECT_TRUE(log.WaitFor("ADDED default/after"));
}

TEST_F(InformerTest, FailedListsBackOffExponentiallyThenSync) {
  CreatePod("a");
  cluster_.server().FailNextRequests(3, 500);
  GateSleeper sleeper(/*gated=*/false);
  InformerOptions options;
  options.sleeper = &sleeper;
  options.initial_backoff = milliseconds(100);
  options.max_backoff = milliseconds(300);
  Informer informer(cluster_.client(), Pods(), options, log_.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  EXPECT_EQ(sleeper.sleeps(),
            (std::vector<milliseconds>{milliseconds(100), milliseconds(200), milliseconds(300)}));
  EXPECT_EQ(informer.Stats().failures, 3);
  EXPECT_TRUE(log_.WaitFor("ADDED default/a"));
}

TEST_F(InformerTest, FieldSelectorInformerSeesOnlyItsNodesPods) {
  CreatePod("elsewhere", "node-2");
  CreatePod("pending");
  InformerOptions options;
  options.field_selector = "spec.nodeName=node-1";
  Informer informer(cluster_.client(), Pods(), options, log_.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  EXPECT_TRUE(informer.List().empty());
  ResourceRef binding = Pod("default", "pending");
  binding.subresource = "binding";
  ASSERT_TRUE(
      cluster_.client()
          .Create(binding, {{"metadata", {{"name", "pending"}}}, {"target", {{"name", "node-1"}}}})
          .ok());
  ASSERT_TRUE(log_.WaitFor("ADDED default/pending"));
  ASSERT_TRUE(cluster_.client().Delete(Pod("default", "pending")).ok());
  ASSERT_TRUE(log_.WaitFor("DELETED default/pending"));
  EXPECT_EQ(log_.Count("ADDED default/elsewhere"), 0);
}

TEST_F(InformerTest, BookmarksAdvanceTheResourceVersion) {
  FakeCluster cluster(FakeOptions(1000, milliseconds(20)));
  InformerOptions options;
  options.watch_timeout_seconds = 1;
  Informer informer(cluster.client(), Pods(), options, {});
  ASSERT_TRUE(informer.Relist().ok());
  const std::string listed = informer.ResourceVersion();
  ResourceRef configmaps;
  configmaps.resource = "configmaps";
  configmaps.namespace_name = "default";
  Result<Json> cm = cluster.client().Create(configmaps, {{"metadata", {{"name", "bump"}}}});
  ASSERT_TRUE(cm.ok());
  ASSERT_TRUE(informer.WatchOnce().ok());  // ends after 1 s with no pod events, only bookmarks
  EXPECT_EQ(informer.ResourceVersion(), VersionOf(*cm));
  EXPECT_NE(informer.ResourceVersion(), listed);
}

// A KubeApi whose watches end at once, as a misbehaving proxy's would; no HTTP involved.
class InstantlyClosingApi final : public KubeApi {
 public:
  Result<Json> Get(const ResourceRef&) override { return Internal("unused"); }
  Result<Json> List(const ResourceRef&, const ListOptions&) override {
    return Json{
        {"kind", "PodList"}, {"metadata", {{"resourceVersion", "5"}}}, {"items", Json::array()}};
  }
  Status Watch(const ResourceRef&, const ListOptions&, const WatchHandler&,
               const std::atomic<bool>&) override {
    return Status::Ok();
  }
  Result<Json> Create(const ResourceRef&, const Json&) override { return Internal("unused"); }
  Result<Json> Update(const ResourceRef&, const Json&) override { return Internal("unused"); }
  Result<Json> Patch(const ResourceRef&, PatchType, const Json&) override {
    return Internal("unused");
  }
  Result<Json> Delete(const ResourceRef&) override { return Internal("unused"); }
};

TEST(InformerQuietWatchTest, WatchesThatEndAtOnceAreBackedOffNotSpun) {
  InstantlyClosingApi api;
  GateSleeper sleeper(/*gated=*/false);
  ManualClock clock;  // never advances: every watch "ends at once"
  InformerOptions options;
  options.sleeper = &sleeper;
  options.clock = &clock;
  options.initial_backoff = milliseconds(100);
  options.max_backoff = milliseconds(400);
  Informer informer(api, Pods(), options, {});
  informer.Start();
  ASSERT_TRUE(sleeper.WaitForSleeps(4));
  informer.Stop();
  const std::vector<milliseconds> sleeps = sleeper.sleeps();
  EXPECT_EQ(std::vector<milliseconds>(sleeps.begin(), sleeps.begin() + 4),
            (std::vector<milliseconds>{milliseconds(100), milliseconds(200), milliseconds(400),
                                       milliseconds(400)}));
  EXPECT_EQ(informer.Stats().lists, 1);  // resumed, not relisted
  EXPECT_GE(informer.Stats().quiet_watches, 4);
}

TEST_F(InformerTest, StopIsPromptWhileWatching) {
  Informer informer(cluster_.client(), Pods(), {}, log_.Handlers());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(milliseconds(5000)));
  ASSERT_TRUE(cluster_.server().WaitForWatches(1, milliseconds(5000)));
  const auto start = std::chrono::steady_clock::now();
  informer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace gpuslice::kube
