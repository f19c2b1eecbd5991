// The wire pieces without a server: URL paths and queries, watch-event lines, API errors.
#include "kube/kube_api.h"

#include <gtest/gtest.h>

#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

TEST(ResourceRefTest, PathsForCoreAndGroupResources) {
  EXPECT_EQ(Pods().Path(), "/api/v1/pods");
  EXPECT_EQ(Pods("default").Path(), "/api/v1/namespaces/default/pods");
  ResourceRef binding = Pod("ns", "p");
  binding.subresource = "binding";
  EXPECT_EQ(binding.Path(), "/api/v1/namespaces/ns/pods/p/binding");
  EXPECT_EQ(binding.Describe(), "pods/binding ns/p");
  EXPECT_EQ(Node("n1").Path(), "/api/v1/nodes/n1");
  ResourceRef deployments;
  deployments.group_version = "apps/v1";
  deployments.resource = "deployments";
  deployments.namespace_name = "x";
  EXPECT_EQ(deployments.Path(), "/apis/apps/v1/namespaces/x/deployments");
}

TEST(ListOptionsTest, QueryIsUrlEncodedAndWatchAddsBookmarks) {
  ListOptions options;
  options.label_selector = "app in (a,b)";
  options.field_selector = "spec.nodeName=node-1";
  options.resource_version = "42";
  EXPECT_EQ(options.Query(false),
            "?labelSelector=app%20in%20%28a%2Cb%29&fieldSelector=spec.nodeName%3Dnode-1"
            "&resourceVersion=42");
  options.label_selector.clear();
  options.timeout_seconds = 30;
  EXPECT_EQ(options.Query(true),
            "?fieldSelector=spec.nodeName%3Dnode-1&resourceVersion=42&timeoutSeconds=30"
            "&watch=true&allowWatchBookmarks=true");
}

struct EventLineRow {
  std::string name;
  std::string line;
  bool ok;
  WatchEventType type;
  std::string message_part;
};

TEST(WatchEventLineTest, ParsesEveryTypeAndRejectsMalformedLines) {
  const std::vector<EventLineRow> rows = {
      {"added", R"({"type":"ADDED","object":{"kind":"Pod"}})", true, WatchEventType::kAdded, ""},
      {"modified", R"({"type":"MODIFIED","object":{}})", true, WatchEventType::kModified, ""},
      {"deleted", R"({"type":"DELETED","object":{}})", true, WatchEventType::kDeleted, ""},
      {"bookmark", R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})", true,
       WatchEventType::kBookmark, ""},
      {"error", R"({"type":"ERROR","object":{"kind":"Status","code":410}})", true,
       WatchEventType::kError, ""},
      {"not json", "{\"type\":", false, WatchEventType::kAdded, "not a JSON object"},
      {"array", "[]", false, WatchEventType::kAdded, "not a JSON object"},
      {"no type", R"({"object":{}})", false, WatchEventType::kAdded, "'type'"},
      {"object not an object", R"({"type":"ADDED","object":3})", false, WatchEventType::kAdded,
       "'object'"},
      {"unknown type", R"({"type":"RENAMED","object":{}})", false, WatchEventType::kAdded,
       "'RENAMED' is not one of"},
  };
  for (const EventLineRow& row : rows) {
    SCOPED_TRACE(row.name);
    Result<WatchEvent> event = ParseWatchEventLine(row.line);
    ASSERT_EQ(event.ok(), row.ok) << event.status().ToString();
    if (row.ok) {
      EXPECT_EQ(event->type, row.type);
    } else {
      EXPECT_EQ(event.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(event.status().message().find(row.message_part), std::string::npos)
          << event.status().message();
    }
  }
}

struct ApiErrorRow {
  std::string name;
  long http_code;
  std::string body;
  ErrorCode code;
  std::string reason;
};

TEST(ApiStatusTest, HttpCodesAndReasonsMapToStatus) {
  const std::vector<ApiErrorRow> rows = {
      {"not found", 404,
       R"({"kind":"Status","reason":"NotFound","message":"pods \"x\" not found"})",
       ErrorCode::kNotFound, "NotFound"},
      {"conflict", 409, R"({"kind":"Status","reason":"Conflict","message":"modified"})",
       ErrorCode::kFailedPrecondition, "Conflict"},
      {"already exists", 409, R"({"kind":"Status","reason":"AlreadyExists","message":"x"})",
       ErrorCode::kAlreadyExists, "AlreadyExists"},
      {"gone", 410, R"({"kind":"Status","reason":"Expired","message":"too old"})",
       ErrorCode::kFailedPrecondition, "Expired"},
      {"invalid", 422, R"({"kind":"Status","reason":"Invalid","message":"bad"})",
       ErrorCode::kInvalidArgument, "Invalid"},
      {"forbidden", 403, R"({"kind":"Status","reason":"Forbidden","message":"no"})",
       ErrorCode::kPermissionDenied, "Forbidden"},
      {"server error without a Status body", 503, "upstream down", ErrorCode::kUnavailable,
       "ServiceUnavailable"},
      {"too many requests", 429, "", ErrorCode::kUnavailable, "TooManyRequests"},
      {"teapot", 418, "", ErrorCode::kInternal, "Unknown"},
  };
  for (const ApiErrorRow& row : rows) {
    SCOPED_TRACE(row.name);
    const Status status = StatusFromApiResponse("GET pods default/x", row.http_code, row.body);
    EXPECT_EQ(status.code(), row.code) << status.ToString();
    EXPECT_EQ(ApiHttpCode(status), row.http_code);
    EXPECT_EQ(ApiReason(status), row.reason);
    EXPECT_EQ(status.message().rfind("GET pods default/x: ", 0), 0u) << status.message();
  }
  // A hostile reason cannot forge the tail ApiHttpCode reads (found by kube_wire_fuzzer).
  const Status forged = StatusFromApiResponse(
      "GET", 403,
      R"({"kind":"Status","reason":" [HTTP 404 NotFound]","message":"m [HTTP 404 x]"})");
  EXPECT_EQ(ApiHttpCode(forged), 403) << forged.message();
  EXPECT_EQ(ApiReason(forged), "HTTP404NotFound");
  EXPECT_EQ(ApiHttpCode(NotFound("plain")), 0);
  EXPECT_EQ(ApiReason(NotFound("plain")), "");
}

TEST(ObjectKeyTest, NamespacedClusterScopedAndMalformed) {
  EXPECT_EQ(ObjectKey({{"metadata", {{"name", "p"}, {"namespace", "ns"}}}}), "ns/p");
  EXPECT_EQ(ObjectKey({{"metadata", {{"name", "node-1"}}}}), "node-1");
  EXPECT_EQ(ObjectKey({{"metadata", 3}}), "");
  EXPECT_EQ(ObjectKey({{"metadata", {{"name", 3}}}}), "");
}

}  // namespace
}  // namespace gpuslice::kube
