// Feeds arbitrary bytes to the extender's request handling (what the HTTP server runs for
// /filter, /prioritize and /bind) against a synced extender with a few nodes and pods. The first
// byte picks the verb. It must never crash, leak or throw; every answer must be one of the
// statuses the server documents, with a JSON body; a 400 must carry an Error message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "scheduler/extender.h"
#include "scheduler/extender_server.h"
#include "scheduler/kube_objects.h"

namespace {

using gpuslice::scheduler::BindingRequest;
using nlohmann::json;

class AcceptingWriter final : public gpuslice::scheduler::BindingWriter {
 public:
  gpuslice::Status Bind(const BindingRequest&) override { return gpuslice::Status::Ok(); }
};

json Node(const std::string& name, int gpus) {
  std::vector<gpuslice::scheduler::NodeGpu> list;
  for (int i = 0; i < gpus; ++i) {
    list.push_back({i, "GPU-" + name + std::to_string(i), "A100", std::int64_t{16} << 30});
  }
  return {{"metadata",
           {{"name", name},
            {"annotations", {{"gpuslice.io/gpus", gpuslice::scheduler::EncodeNodeGpus(list)}}}}}};
}

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "scheduler_request_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static gpuslice::ManualClock clock;
  static AcceptingWriter writer;
  // A fresh extender per input keeps runs independent (binds change state).
  gpuslice::scheduler::ExtenderOptions options;
  options.policy = "gpuslice";
  std::unique_ptr<gpuslice::scheduler::Extender> extender =
      *gpuslice::scheduler::Extender::Create(options, clock, writer);
  const std::vector<json> nodes{Node("a", 2), Node("b", 1), Node("c", 0)};
  extender->Rebuild(nodes, {});

  static constexpr std::string_view kVerbs[] = {"filter", "prioritize", "bind"};
  const std::string_view verb = kVerbs[data[0] % 3];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const gpuslice::scheduler::VerbResponse response =
      gpuslice::scheduler::HandleVerb(*extender, verb, body);
  if (response.status != 200 && response.status != 400 && response.status != 500 &&
      response.status != 503) {
    Fail("unexpected status", std::to_string(response.status) + " " + response.body);
  }
  if (response.status == 500) Fail("internal error", response.body);
  const json answer = json::parse(response.body, nullptr, false);
  if (answer.is_discarded()) Fail("answer is not JSON", response.body);
  if (response.status == 400 &&
      (!answer.is_object() || !answer.contains("Error") || answer["Error"] == "")) {
    Fail("400 without an Error message", response.body);
  }
  // Filter and prioritize must be pure: asking twice gives the same answer.
  if (verb != "bind") {
    const auto again = gpuslice::scheduler::HandleVerb(*extender, verb, body);
    if (again.body != response.body) Fail("not idempotent", response.body + "\n" + again.body);
  }
  return 0;
}
