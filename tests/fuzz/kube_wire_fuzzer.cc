// Feeds arbitrary bytes to what the Kubernetes client parses from outside: watch-stream lines
// and API error bodies (from the API server) and kubeconfig files (from the user). The first
// byte picks the parser. Nothing may crash, leak or throw; a rejected input must get
// kInvalidArgument, and a kubeconfig error must name its source.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kube/api_status.h"
#include "kube/kube_api.h"
#include "kube/kube_config.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "kube_wire_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void FuzzWatchLine(std::string_view text) {
  gpuslice::Result<gpuslice::kube::WatchEvent> event = gpuslice::kube::ParseWatchEventLine(text);
  if (!event.ok()) {
    if (event.status().code() != gpuslice::ErrorCode::kInvalidArgument)
      Fail("watch line error is not InvalidArgument", event.status().ToString());
    return;
  }
  (void)gpuslice::kube::ObjectKey(event->object);
  const gpuslice::Status status =
      gpuslice::kube::StatusFromApiStatusObject("WATCH pods", event->object);
  if (status.ok()) Fail("an API Status object became an OK status", text.data());
  (void)gpuslice::kube::ApiReason(status);
}

void FuzzErrorBody(std::string_view text) {
  const long code = 400 + static_cast<long>(text.size() % 200);
  const gpuslice::Status status = gpuslice::kube::StatusFromApiResponse("GET pods", code, text);
  if (status.ok()) Fail("an error response became an OK status", std::string(text));
  if (gpuslice::kube::ApiHttpCode(status) != code)
    Fail("the HTTP code does not round-trip", status.ToString());
}

void FuzzKubeconfig(std::string_view text) {
  gpuslice::Result<gpuslice::kube::KubeConfig> config =
      gpuslice::kube::ParseKubeconfig(text, "fuzz.kubeconfig", "", "/base");
  if (config.ok()) {
    if (config->server.rfind("http://", 0) != 0 && config->server.rfind("https://", 0) != 0)
      Fail("accepted a kubeconfig without an http(s) server", config->server);
    return;
  }
  const gpuslice::Status status = config.status();
  if (status.code() != gpuslice::ErrorCode::kInvalidArgument ||
      status.message().rfind("fuzz.kubeconfig", 0) != 0)
    Fail("kubeconfig error without InvalidArgument or source name", status.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      FuzzWatchLine(text);
      break;
    case 1:
      FuzzErrorBody(text);
      break;
    default:
      FuzzKubeconfig(text);
      break;
  }
  return 0;
}
