#include "scheduler/extender_server.h"

#include <httplib.h>

#include <exception>
#include <utility>

#include "scheduler/extender_wire.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// Messages may quote request text cut at a byte limit: replace invalid UTF-8 rather than throw.
std::string Dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

VerbResponse Reply(int status, const json& body) { return {status, Dump(body)}; }

VerbResponse Filter(Extender& extender, std::string_view body) {
  Result<ExtenderArgs> args = ParseExtenderArgs(body);
  if (!args.ok()) return Reply(400, FilterErrorJson(args.status().message()));
  Result<FilterResult> result = extender.Filter(args->pod, args->node_names);
  if (!result.ok()) {
    // A pod whose request is invalid is answered 200 with Error, so kube-scheduler shows the
    // message on the pod; an extender that is not ready answers 503 (kube-scheduler retries).
    const Status& status = result.status();
    const int code = status.code() == ErrorCode::kUnavailable ? 503 : 200;
    return Reply(code, FilterErrorJson(status.message()));
  }
  return Reply(200, FilterResultJson(*result, *args));
}

VerbResponse Prioritize(Extender& extender, std::string_view body) {
  Result<ExtenderArgs> args = ParseExtenderArgs(body);
  if (!args.ok()) return Reply(400, json{{"Error", args.status().message()}});
  Result<std::vector<HostScore>> scores = extender.Prioritize(args->pod, args->node_names);
  // HostPriorityList has no error field: errors are a non-200 status.
  if (!scores.ok()) {
    return Reply(HttpStatusFor(scores.status()), json{{"Error", scores.status().message()}});
  }
  return Reply(200, PriorityListJson(*scores));
}

VerbResponse Bind(Extender& extender, std::string_view body) {
  Result<BindArgs> args = ParseBindingArgs(body);
  if (!args.ok()) return Reply(400, BindingResultJson(args.status().message()));
  const Status bound = extender.Bind(*args);
  if (bound.code() == ErrorCode::kUnavailable && !extender.synced()) {
    return Reply(503, BindingResultJson(bound.message()));
  }
  return Reply(200, BindingResultJson(bound.ok() ? "" : bound.message()));
}

}  // namespace

VerbResponse HandleVerb(Extender& extender, std::string_view verb, std::string_view body) {
  try {
    if (verb == "filter") return Filter(extender, body);
    if (verb == "prioritize") return Prioritize(extender, body);
    if (verb == "bind") return Bind(extender, body);
    return Reply(404, json{{"Error", "unknown verb '" + std::string(verb) +
                                         "'; accepted: filter, prioritize, bind"}});
  } catch (const std::exception& e) {
    return Reply(500, json{{"Error", std::string("internal error: ") + e.what()}});
  }
}

Result<std::unique_ptr<ExtenderServer>> ExtenderServer::Create(Extender& extender,
                                                               ServerOptions options) {
  if (options.url_prefix.empty() || options.url_prefix.front() != '/') {
    options.url_prefix.insert(options.url_prefix.begin(), '/');
  }
  while (options.url_prefix.size() > 1 && options.url_prefix.back() == '/') {
    options.url_prefix.pop_back();
  }
  if (options.url_prefix == "/") options.url_prefix.clear();
  for (const char c : options.url_prefix) {
    if (c == '(' || c == ')' || c == '*' || c == '?' || c == '[' || c == '\\' || c == '+') {
      return InvalidArgument("URL prefix '" + options.url_prefix + "' must be a plain path");
    }
  }
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  std::unique_ptr<httplib::Server> server;
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return InvalidArgument("TLS needs both a certificate and a key file");
    }
    server = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                  options.tls_key_file.c_str());
    if (!server->is_valid()) {
      return InvalidArgument("cannot load TLS certificate '" + options.tls_cert_file +
                             "' and key '" + options.tls_key_file + "' (PEM files expected)");
    }
  } else {
    server = std::make_unique<httplib::Server>();
  }
  std::unique_ptr<ExtenderServer> out(
      new ExtenderServer(extender, std::move(options), std::move(server), tls));
  out->Route();
  return out;
}

ExtenderServer::ExtenderServer(Extender& extender, ServerOptions options,
                               std::unique_ptr<httplib::Server> server, bool tls)
    : extender_(extender), options_(std::move(options)), server_(std::move(server)), tls_(tls) {}

ExtenderServer::~ExtenderServer() { Stop(); }

void ExtenderServer::Route() {
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(std::chrono::seconds(30));
  for (const std::string_view verb : {"filter", "prioritize", "bind"}) {
    server_->Post(options_.url_prefix + "/" + std::string(verb),
                  [this, verb](const httplib::Request& request, httplib::Response& response) {
                    const VerbResponse reply = HandleVerb(extender_, verb, request.body);
                    response.status = reply.status;
                    response.set_content(reply.body, "application/json");
                  });
  }
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    const bool ready = extender_.synced();
    response.status = ready ? 200 : 503;
    response.set_content(ready ? "ok\n" : "cache not synced\n", "text/plain");
  });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty()) return;
    const std::string message = response.status == 413 ? "request body too large"
                                                       : "HTTP " + std::to_string(response.status);
    response.set_content(Dump(json{{"Error", message}}), "application/json");
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, const std::exception_ptr&) {
        response.status = 500;
        response.set_content(json{{"Error", "internal error"}}.dump(), "application/json");
      });
}

Result<int> ExtenderServer::Start(const std::string& host, int port) {
  if (thread_.joinable()) return FailedPrecondition("server already started");
  int bound = port;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
  } else if (!server_->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound < 0) {
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) +
                       " (address in use or not local?)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return bound;
}

void ExtenderServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace gpuslice::scheduler
