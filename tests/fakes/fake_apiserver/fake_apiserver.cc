#include "fake_apiserver/fake_apiserver.h"

#include <httplib.h>

#include "fake_apiserver/selectors.h"
#include "fake_apiserver/watch_stream.h"

namespace gpuslice::fake {
namespace {

constexpr const char* kJson = "application/json";

void Send(httplib::Response& response, const Outcome& outcome) {
  response.status = outcome.code;
  response.set_content(outcome.body.dump(), kJson);
}

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start < path.size()) {
    const size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts;
}

Json ApiResource(const std::string& name, const std::string& singular, const std::string& kind,
                 bool namespaced, const std::vector<std::string>& verbs,
                 const std::vector<std::string>& short_names) {
  Json resource = {{"name", name},
                   {"singularName", singular},
                   {"namespaced", namespaced},
                   {"kind", kind},
                   {"verbs", verbs}};
  if (!short_names.empty()) resource["shortNames"] = short_names;
  if (name == "pods" || name == "events" || name == "configmaps") resource["categories"] = {"all"};
  return resource;
}

Json CoreResourceList() {
  Json resources = Json::array();
  for (const ResourceType& type : CoreResources()) {
    resources.push_back(ApiResource(type.plural, type.singular, type.kind, type.namespaced,
                                    {"create", "delete", "get", "list", "patch", "update", "watch"},
                                    type.short_names));
    for (const std::string& sub : type.subresources) {
      if (sub == "binding")
        resources.push_back(ApiResource("pods/binding", "", "Binding", true, {"create"}, {}));
      else
        resources.push_back(ApiResource(type.plural + "/" + sub, "", type.kind, type.namespaced,
                                        {"get", "patch", "update"}, {}));
    }
  }
  resources.push_back(ApiResource("bindings", "binding", "Binding", true, {"create"}, {}));
  return {{"kind", "APIResourceList"}, {"groupVersion", "v1"}, {"resources", resources}};
}

// A minimal OpenAPI v3 document for core/v1: only the PATCH operations with their
// fieldValidation parameter. kubectl reads it to learn that the server validates fields itself
// (then it skips client-side validation, which would need the full schema).
Json CoreOpenApiV3() {
  Json paths = Json::object();
  for (const ResourceType& type : CoreResources()) {
    const std::string path = type.namespaced
                                 ? "/api/v1/namespaces/{namespace}/" + type.plural + "/{name}"
                                 : "/api/v1/" + type.plural + "/{name}";
    paths[path]["patch"] = {
        {"operationId", "patchCoreV1" + type.kind},
        {"x-kubernetes-action", "patch"},
        {"x-kubernetes-group-version-kind",
         {{"group", ""}, {"version", "v1"}, {"kind", type.kind}}},
        {"parameters",
         {{{"name", "fieldValidation"}, {"in", "query"}, {"schema", {{"type", "string"}}}}}},
        {"responses", {{"200", {{"description", "OK"}}}}}};
  }
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes (gpuslice fake)"}, {"version", "v1.29.0"}}},
          {"paths", paths}};
}

// Where a request under /api/v1 points.
struct Target {
  const ResourceType* type = nullptr;
  std::string ns;
  std::string name;
  std::string subresource;
};

// /api/v1/<res>[/<name>[/<sub>]] or /api/v1/namespaces/<ns>/<res>[/<name>[/<sub>]].
std::optional<Target> ParseTarget(const std::vector<std::string>& parts) {
  if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1") return std::nullopt;
  size_t at = 2;
  Target target;
  if (parts.size() >= 5 && parts[2] == "namespaces") {
    target.ns = parts[3];
    at = 4;
  }
  target.type = FindResource(parts[at]);
  if (target.type == nullptr || (at == 4 && !target.type->namespaced)) return std::nullopt;
  if (parts.size() > at + 1) target.name = parts[at + 1];
  if (parts.size() > at + 2) target.subresource = parts[at + 2];
  if (parts.size() > at + 3) return std::nullopt;
  const auto& subs = target.type->subresources;
  if (!target.subresource.empty() &&
      std::find(subs.begin(), subs.end(), target.subresource) == subs.end())
    return std::nullopt;
  return target;
}

// Query booleans as Go's strconv.ParseBool reads them (the Python client sends "True").
bool ParseBool(const std::string& text) {
  return text == "1" || text == "t" || text == "T" || text == "true" || text == "TRUE" ||
         text == "True";
}

}  // namespace

FakeApiServer::FakeApiServer(FakeApiServerOptions options)
    : options_(std::move(options)), store_(options_.max_history) {}

FakeApiServer::~FakeApiServer() { Stop(); }

bool FakeApiServer::tls() const {
  return !options_.tls_cert_file.empty() && !options_.tls_key_file.empty();
}

std::string FakeApiServer::url() const {
  return (tls() ? "https://" : "http://") + options_.host + ":" + std::to_string(port_);
}

std::string FakeApiServer::Kubeconfig() const {
  std::string text = "apiVersion: v1\nkind: Config\ncurrent-context: fake\n";
  text += "clusters:\n- name: fake\n  cluster:\n    server: " + url() + "\n";
  if (!options_.tls_ca_file.empty())
    text += "    certificate-authority: " + options_.tls_ca_file + "\n";
  text += "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n";
  text += "    namespace: default\n";
  text += "users:\n- name: fake\n  user:\n    token: fake-token\n";
  return text;
}

Status FakeApiServer::Start() {
  if (tls()) {
    auto tls_server = std::make_unique<httplib::SSLServer>(
        options_.tls_cert_file.c_str(), options_.tls_key_file.c_str(),
        options_.tls_client_ca_file.empty() ? nullptr : options_.tls_client_ca_file.c_str());
    if (!tls_server->is_valid())
      return InvalidArgument("fake API server: cannot load TLS certificate '" +
                             options_.tls_cert_file + "' or key '" + options_.tls_key_file + "'");
    server_ = std::move(tls_server);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const int threads = options_.worker_threads;
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_->set_keep_alive_timeout(2);
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    auto handler = [this, m = std::string(method)](const httplib::Request& req,
                                                   httplib::Response& res) {
      Dispatch(m, req, res);
    };
    const std::string m(method);
    if (m == "GET") server_->Get(".*", handler);
    if (m == "POST") server_->Post(".*", handler);
    if (m == "PUT") server_->Put(".*", handler);
    if (m == "PATCH") server_->Patch(".*", handler);
    if (m == "DELETE") server_->Delete(".*", handler);
  }
  port_ = options_.port == 0
              ? server_->bind_to_any_port(options_.host)
              : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0)
    return Unavailable("fake API server cannot listen on " + options_.host + ":" +
                       std::to_string(options_.port));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing before the listen loop has started; a Stop() right after
  // Start() would then wait for ever. Return once it is running.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("fake API server: the listen loop did not start within 10 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

void FakeApiServer::Stop() {
  if (!server_) return;
  stopping_ = true;
  store_.WakeWatchers();
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void FakeApiServer::BreakWatches() {
  ++break_generation_;
  store_.WakeWatchers();
}

void FakeApiServer::CompactHistory() { store_.Compact(); }

void FakeApiServer::FailNextRequests(int count, int http_code) {
  fail_code_ = http_code >= 400 && http_code <= 599 ? http_code : 500;
  fail_remaining_ = count;
}

bool FakeApiServer::WaitForWatches(int count, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (open_watches_.load() < count) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void FakeApiServer::Dispatch(const std::string& method, const httplib::Request& request,
                             httplib::Response& response) {
  if (ServeKnob(method, request, response)) return;
  if (fail_remaining_.load() > 0 && fail_remaining_.fetch_sub(1) > 0) {
    Send(response,
         ErrorOutcome(fail_code_.load(), fail_code_ >= 500 ? "InternalError" : "BadRequest",
                      "injected failure (fake API server knob)"));
    return;
  }
  if (method == "GET" && ServeDiscovery(request.path, response)) return;
  ServeResource(method, request, response);
}

bool FakeApiServer::ServeKnob(const std::string& method, const httplib::Request& request,
                              httplib::Response& response) {
  if (request.path.rfind("/fake/", 0) != 0) return false;
  if (method == "POST" && request.path == "/fake/break-watches")
    BreakWatches();
  else if (method == "POST" && request.path == "/fake/compact")
    CompactHistory();
  else if (method == "POST" && request.path == "/fake/fail")
    FailNextRequests(
        request.has_param("count") ? std::atoi(request.get_param_value("count").c_str()) : 1,
        request.has_param("code") ? std::atoi(request.get_param_value("code").c_str()) : 500);
  else if (method != "GET" || request.path != "/fake/watches") {
    Send(response, ErrorOutcome(404, "NotFound", "unknown knob " + method + " " + request.path));
    return true;
  }
  Send(response, {200, {{"open", OpenWatches()}}});
  return true;
}

bool FakeApiServer::ServeDiscovery(const std::string& path, httplib::Response& response) {
  if (path == "/api") {
    Send(response, {200,
                    {{"kind", "APIVersions"},
                     {"versions", {"v1"}},
                     {"serverAddressByClientCIDRs",
                      {{{"clientCIDR", "0.0.0.0/0"},
                        {"serverAddress", options_.host + ":" + std::to_string(port_)}}}}}});
  } else if (path == "/apis") {
    Send(response,
         {200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", Json::array()}}});
  } else if (path == "/api/v1") {
    Send(response, {200, CoreResourceList()});
  } else if (path == "/version") {
    Send(response, {200,
                    {{"major", "1"},
                     {"minor", "29"},
                     {"gitVersion", "v1.29.0-gpuslice-fake"},
                     {"gitCommit", "0000000000000000000000000000000000000000"},
                     {"gitTreeState", "clean"},
                     {"buildDate", "2026-01-01T00:00:00Z"},
                     {"goVersion", "go1.21.0"},
                     {"compiler", "gc"},
                     {"platform", "linux/amd64"}}});
  } else if (path == "/openapi/v3") {
    Send(response,
         {200, {{"paths", {{"api/v1", {{"serverRelativeURL", "/openapi/v3/api/v1?hash=0"}}}}}}});
  } else if (path == "/openapi/v3/api/v1") {
    Send(response, {200, CoreOpenApiV3()});
  } else if (path == "/healthz" || path == "/readyz" || path == "/livez") {
    response.set_content("ok", "text/plain");
  } else {
    return false;
  }
  return true;
}

void FakeApiServer::ServeResource(const std::string& method, const httplib::Request& request,
                                  httplib::Response& response) {
  const std::vector<std::string> parts = Segments(request.path);
  // POST /api/v1/namespaces/<ns>/bindings: the older form of pods/<name>/binding (the Python
  // client's create_namespaced_binding uses it); the pod is the Binding's metadata.name.
  if (method == "POST" && parts.size() == 5 && parts[2] == "namespaces" && parts[4] == "bindings") {
    const Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    const std::string pod =
        body.is_object() && body["metadata"].is_object() ? body["metadata"].value("name", "") : "";
    Send(response, store_.Bind(parts[3], pod, body));
    return;
  }
  const std::optional<Target> target = ParseTarget(parts);
  if (!target) {
    Send(response,
         ErrorOutcome(
             404, "NotFound", "the server could not find the requested resource",
             {{"causes",
               {{{"reason", "UnexpectedServerResponse"}, {"message", "404 page not found"}}}}}));
    return;
  }
  const ResourceType& type = *target->type;
  const bool collection = target->name.empty();
  Json body;
  if (method == "POST" || method == "PUT" || method == "PATCH") {
    body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      Send(response, ErrorOutcome(400, "BadRequest", "the request body is not valid JSON"));
      return;
    }
  }
  if (method == "GET" && collection && ParseBool(request.get_param_value("watch"))) {
    ServeWatch(type, target->ns, request, response);
  } else if (method == "GET" && collection) {
    Send(response, store_.List(type, target->ns, request.get_param_value("labelSelector"),
                               request.get_param_value("fieldSelector")));
  } else if (method == "GET" && target->subresource != "binding") {
    Send(response, store_.Get(type, target->ns, target->name));
  } else if (method == "POST" && collection) {
    Send(response, store_.Create(type, target->ns, std::move(body)));
  } else if (method == "POST" && target->subresource == "binding") {
    Send(response, store_.Bind(target->ns, target->name, body));
  } else if (method == "PUT" && !collection && target->subresource != "binding") {
    Send(response,
         store_.Update(type, target->ns, target->name, target->subresource, std::move(body)));
  } else if (method == "PATCH" && !collection && target->subresource != "binding") {
    Send(response, store_.Patch(type, target->ns, target->name, target->subresource,
                                request.get_header_value("Content-Type"), body));
  } else if (method == "DELETE" && !collection && target->subresource.empty()) {
    Send(response, store_.Delete(type, target->ns, target->name));
  } else {
    Send(response, ErrorOutcome(405, "MethodNotAllowed",
                                "the server does not allow this method on the requested resource"));
  }
}

void FakeApiServer::ServeWatch(const ResourceType& type, const std::string& ns,
                               const httplib::Request& request, httplib::Response& response) {
  WatchRequest watch;
  watch.type = &type;
  watch.ns = ns;
  Result<LabelSelector> labels = LabelSelector::Parse(request.get_param_value("labelSelector"));
  Result<FieldSelector> fields = FieldSelector::Parse(request.get_param_value("fieldSelector"));
  const std::string version = request.get_param_value("resourceVersion");
  if (!labels.ok() || !fields.ok()) {
    Send(response, ErrorOutcome(400, "BadRequest",
                                (labels.ok() ? fields.status() : labels.status()).message()));
    return;
  }
  if (version.size() > 19 || version.find_first_not_of("0123456789") != std::string::npos) {
    Send(response, ErrorOutcome(400, "BadRequest", "invalid resourceVersion '" + version + "'"));
    return;
  }
  watch.labels = std::move(*labels);
  watch.fields = std::move(*fields);
  watch.after_version = version.empty() ? 0 : std::stoull(version);
  watch.bookmarks = ParseBool(request.get_param_value("allowWatchBookmarks"));
  const std::string timeout = request.get_param_value("timeoutSeconds");
  if (!timeout.empty()) watch.timeout = std::chrono::seconds(std::atoi(timeout.c_str()));
  watch.bookmark_interval = options_.bookmark_interval;
  auto stream = std::make_shared<WatchStream>(store_, std::move(watch));
  ++open_watches_;
  // "stream=watch" as the real server may send; it also keeps cpp-httplib from gzip-compressing
  // the stream (it compresses exactly "application/json" and would hold events back).
  response.set_chunked_content_provider(
      "application/json;stream=watch",
      [this, stream, generation = break_generation_.load()](size_t, httplib::DataSink& sink) {
        if (stopping_ || generation != break_generation_.load()) return false;  // drop it
        std::string lines;
        const WatchStream::Step step = stream->Next(lines, std::chrono::milliseconds(100));
        if (!lines.empty() && !sink.write(lines.data(), lines.size())) return false;
        if (step == WatchStream::Step::kEnd) sink.done();
        return true;
      },
      [this](bool) { --open_watches_; });
}

}  // namespace gpuslice::fake
