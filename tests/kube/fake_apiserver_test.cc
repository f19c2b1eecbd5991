// The fake API server's own semantics that the client tests do not reach: selector grammar,
// strategic-merge details, the watch stream's selector transitions and its HTTP knobs.
#include <gtest/gtest.h>

#include "fake_apiserver/object_store.h"
#include "fake_apiserver/patches.h"
#include "fake_apiserver/selectors.h"
#include "fake_cluster.h"
#include "kube/api_status.h"

namespace gpuslice::fake {
namespace {

struct SelectorRow {
  std::string selector;
  bool parses;
  bool matches;  // against labels {app: web, tier: gpu}
};

TEST(LabelSelectorTest, GrammarAndMatching) {
  const Json pod = {{"metadata", {{"labels", {{"app", "web"}, {"tier", "gpu"}}}}}};
  const std::vector<SelectorRow> rows = {
      {"", true, true},
      {"app=web", true, true},
      {"app==web", true, true},
      {"app=db", true, false},
      {"app!=db", true, true},
      {"missing!=x", true, true},
      {"app", true, true},
      {"!app", true, false},
      {"!missing", true, true},
      {"app in (db, web)", true, true},
      {"app notin (web)", true, false},
      {"missing notin (web)", true, true},
      {"app=web,tier=cpu", true, false},
      {"app=web, tier in (gpu)", true, true},
      {"app in (web", false, false},
      {"app inn (web)", false, false},
      {"a,,b", false, false},
  };
  for (const SelectorRow& row : rows) {
    SCOPED_TRACE(row.selector);
    Result<LabelSelector> selector = LabelSelector::Parse(row.selector);
    ASSERT_EQ(selector.ok(), row.parses) << selector.status().ToString();
    if (row.parses) {
      EXPECT_EQ(selector->Matches(pod), row.matches);
    }
  }
}

TEST(FieldSelectorTest, DottedPathsAndMissingFieldsAsEmpty) {
  const Json bound = {{"metadata", {{"name", "p"}, {"namespace", "ns"}}},
                      {"spec", {{"nodeName", "node-1"}}},
                      {"status", {{"phase", "Running"}}}};
  const Json pending = {{"metadata", {{"name", "q"}}}, {"spec", Json::object()}};
  const auto matches = [](const std::string& text, const Json& object) {
    Result<FieldSelector> selector = FieldSelector::Parse(text);
    EXPECT_TRUE(selector.ok()) << selector.status().ToString();
    return selector.ok() && selector->Matches(object);
  };
  EXPECT_TRUE(matches("spec.nodeName=node-1", bound));
  EXPECT_TRUE(matches("spec.nodeName=node-1,status.phase!=Pending", bound));
  EXPECT_FALSE(matches("metadata.namespace=other", bound));
  EXPECT_TRUE(matches("spec.nodeName=", pending));
  EXPECT_FALSE(matches("spec.nodeName=", bound));
  EXPECT_FALSE(FieldSelector::Parse("spec.nodeName").ok());
}

TEST(PatchTest, StrategicMergeByKeyDeleteDirectiveAndNullRemoval) {
  const Json pod = Json::parse(R"({"metadata":{"labels":{"a":"1","b":"2"}},
    "spec":{"containers":[{"name":"main","image":"x:1","env":[{"name":"A","value":"1"}]},
                          {"name":"side","image":"s:1"}],
            "tolerations":[{"key":"k1"}]}})");
  const Json patch = Json::parse(R"({"metadata":{"labels":{"b":null,"c":"3"}},
    "spec":{"containers":[{"name":"main","env":[{"name":"B","value":"2"}]},
                          {"name":"side","$patch":"delete"},
                          {"name":"new","image":"n:1"}],
            "tolerations":[{"key":"k2"}]}})");
  Result<Json> merged = ApplyPatch("application/strategic-merge-patch+json", pod, patch);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ((*merged)["metadata"]["labels"], Json::parse(R"({"a":"1","c":"3"})"));
  const Json& containers = (*merged)["spec"]["containers"];
  ASSERT_EQ(containers.size(), 2u);
  EXPECT_EQ(containers[0]["image"], "x:1");
  EXPECT_EQ(containers[0]["env"].size(), 2u);
  EXPECT_EQ(containers[1]["name"], "new");
  EXPECT_EQ((*merged)["spec"]["tolerations"], Json::parse(R"([{"key":"k2"}])"));  // no merge key
  EXPECT_EQ(ApplyPatch("text/plain", pod, patch).status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ApplyPatch("application/json-patch+json", pod, patch).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(ObjectStoreTest, VersionsAreGlobalAndMonotonicAndNoOpUpdatesKeepThem) {
  ObjectStore store;
  const ResourceType& pods = *FindResource("pods");
  const ResourceType& nodes = *FindResource("nodes");
  Outcome a = store.Create(pods, "default", {{"metadata", {{"name", "a"}}}});
  Outcome n = store.Create(nodes, "", {{"metadata", {{"name", "n"}}}});
  ASSERT_TRUE(a.ok() && n.ok());
  const auto version = [](const Outcome& o) {
    return std::stoull(o.body["metadata"]["resourceVersion"].get<std::string>());
  };
  EXPECT_EQ(version(n), version(a) + 1);
  Outcome same = store.Update(pods, "default", "a", "", a.body);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(version(same), version(a));
  EXPECT_EQ(store.CurrentVersion(), version(n));
  EXPECT_EQ(store.Get(pods, "default", "a").body["metadata"]["uid"], a.body["metadata"]["uid"]);
}

TEST(FakeApiServerHttpTest, KnobsAndUnknownPathsOverHttp) {
  kube::FakeCluster cluster;
  kube::KubeClient& client = cluster.client();
  kube::ResourceRef bogus;
  bogus.resource = "widgets";
  Result<Json> unknown = client.Get(bogus);
  EXPECT_TRUE(kube::IsNotFound(unknown.status())) << unknown.status().ToString();
  cluster.server().FailNextRequests(2, 500);
  EXPECT_EQ(kube::ApiHttpCode(client.Get(kube::Pod("default", "x")).status()), 500);
  EXPECT_EQ(kube::ApiHttpCode(client.Get(kube::Pod("default", "x")).status()), 500);
  EXPECT_EQ(kube::ApiHttpCode(client.Get(kube::Pod("default", "x")).status()), 404);
}

}  // namespace
}  // namespace gpuslice::fake
