// ExtenderServer: the extender's HTTP(S) endpoints, as kube-scheduler's HTTPExtender calls them.
//   POST <prefix>/filter, <prefix>/prioritize, <prefix>/bind   (JSON, see extender_wire.h)
//   GET  /healthz (always 200 while serving), /readyz (200 once the cache is synced, else 503)
// A body that is not what the verb expects gets 400 with {"Error": "..."}; a body over the limit
// gets 413; an extender that has not synced answers 503; a handler never crashes the server.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "core/status.h"
#include "scheduler/extender.h"

namespace httplib {
class Server;
}

namespace gpuslice::scheduler {

struct ServerOptions {
  std::string url_prefix = "/gpuslice";   // urlPrefix's path in the KubeSchedulerConfiguration
  std::size_t max_body_bytes = 64 << 20;  // 5,000 full v1 Nodes fit well below this
  // TLS when both are set (PEM files); plain HTTP otherwise.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class ExtenderServer {
 public:
  // Fails when the TLS files cannot be loaded or the prefix is malformed.
  static Result<std::unique_ptr<ExtenderServer>> Create(Extender& extender, ServerOptions options);
  ~ExtenderServer();  // stops serving
  ExtenderServer(const ExtenderServer&) = delete;
  ExtenderServer& operator=(const ExtenderServer&) = delete;

  // Binds host:port (port 0: any free port) and serves on a background thread; returns the port.
  Result<int> Start(const std::string& host, int port);
  // Stops serving and joins the thread. Idempotent.
  void Stop();
  bool tls() const { return tls_; }

 private:
  ExtenderServer(Extender& extender, ServerOptions options, std::unique_ptr<httplib::Server> server,
                 bool tls);
  void Route();

  Extender& extender_;
  const ServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  bool tls_ = false;
  std::thread thread_;
};

// The HTTP status and JSON body for one request to `verb` ("filter", "prioritize", "bind"),
// without the transport: what the server answers. Exposed for the fuzz target.
struct VerbResponse {
  int status = 200;
  std::string body;
};
VerbResponse HandleVerb(Extender& extender, std::string_view verb, std::string_view body);

}  // namespace gpuslice::scheduler
