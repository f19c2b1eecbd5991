// FakeApiServer: a deterministic, in-process Kubernetes API server on loopback HTTP (cpp-httplib)
// for tests. It serves core/v1 pods, nodes, events, configmaps and namespaces with the real
// server's JSON, status codes and watch stream, plus the discovery documents kubectl needs. The
// semantics live in ObjectStore; this class is the HTTP layer and the test knobs.
//
// Knobs, also reachable over HTTP for out-of-process clients (kubectl, Python):
//   BreakWatches()      POST /fake/break-watches   drop every open watch connection mid-stream
//   CompactHistory()    POST /fake/compact         forget the event history (later watches: 410)
//   FailNextRequests()  POST /fake/fail?count=N&code=C   answer the next N API requests with C
//   OpenWatches()       GET  /fake/watches         {"open": N}
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/status.h"
#include "fake_apiserver/object_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace gpuslice::fake {

struct FakeApiServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  std::size_t max_history = 1000;
  std::chrono::milliseconds bookmark_interval{1000};  // BOOKMARK cadence on watches that ask
  int worker_threads = 64;                            // each open watch holds one
  // HTTPS when both are set (PEM files); plain HTTP otherwise.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;         // the CA that signed tls_cert_file; Kubeconfig() names it
  std::string tls_client_ca_file;  // when set, clients must present a certificate it signed
};

class FakeApiServer {
 public:
  explicit FakeApiServer(FakeApiServerOptions options = {});
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  // Binds and starts serving on a background thread.
  Status Start();
  void Stop();

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT" (https:// with TLS)
  // A kubeconfig (YAML) whose current context points at this server.
  std::string Kubeconfig() const;

  ObjectStore& store() { return store_; }

  void BreakWatches();
  void CompactHistory();
  void FailNextRequests(int count, int http_code = 500);
  int OpenWatches() const { return open_watches_.load(); }
  // Waits until at least `count` watches are open; returns whether they are.
  bool WaitForWatches(int count, std::chrono::milliseconds timeout) const;

 private:
  bool tls() const;
  void Dispatch(const std::string& method, const httplib::Request& request,
                httplib::Response& response);
  bool ServeKnob(const std::string& method, const httplib::Request& request,
                 httplib::Response& response);
  bool ServeDiscovery(const std::string& path, httplib::Response& response);
  void ServeResource(const std::string& method, const httplib::Request& request,
                     httplib::Response& response);
  void ServeWatch(const ResourceType& type, const std::string& ns, const httplib::Request& request,
                  httplib::Response& response);

  const FakeApiServerOptions options_;
  ObjectStore store_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> break_generation_{0};
  std::atomic<int> open_watches_{0};
  std::atomic<int> fail_remaining_{0};
  std::atomic<int> fail_code_{500};
};

}  // namespace gpuslice::fake
