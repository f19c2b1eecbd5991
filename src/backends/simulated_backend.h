// SimulatedBackend: a GPU node described by a YAML file (see docs/simulated-node.md).
//
// Deterministic: UUIDs and PCI bus ids are derived from the node name and GPU index, never
// random. Health events come from three places: `healthEvents` in the file (scheduled relative to
// the backend's creation on its clock), InjectHealthEvent() from the same process, and lines
// appended to the file named by `eventsFile` (so another process, e.g. a test, can inject faults
// into a running node agent).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/gpu_backend.h"
#include "core/clock.h"

namespace gpuslice {

// A node as described by the simulated-node YAML, before any runtime events.
struct SimulatedNode {
  struct ScheduledEvent {
    HealthEvent event;
    Clock::Duration after{};  // since the backend was created
  };
  std::string name;
  DriverInfo driver;
  std::vector<GpuInfo> gpus;
  std::vector<ScheduledEvent> scheduled_events;  // sorted by `after`
  std::string events_file;                       // "" when none
};

// Parses simulated-node YAML. Errors name the source, line and field.
Result<SimulatedNode> ParseSimulatedNode(std::string_view yaml_text,
                                         std::string_view source_name = "<node>");
Result<SimulatedNode> LoadSimulatedNodeFile(const std::string& path);

// Parses one events-file line: "xid <device> <xid>" or "recover <device>", where <device> is a
// GPU index ("3"), a MIG index ("3:1"), a GPU UUID or a MIG UUID.
Result<HealthEvent> ParseHealthEventLine(std::string_view line, const std::vector<GpuInfo>& gpus);

class SimulatedBackend final : public GpuBackend {
 public:
  // `clock` must outlive the backend. `source_name` is used in Name() ("sim:<source_name>").
  SimulatedBackend(SimulatedNode node, std::string source_name, const Clock& clock);
  static Result<std::unique_ptr<SimulatedBackend>> FromFile(const std::string& path,
                                                            const Clock& clock);

  std::string Name() const override;
  Result<DriverInfo> GetDriverInfo() override;
  Result<std::vector<GpuInfo>> ListGpus() override;
  Result<std::vector<HealthEvent>> WaitForHealthEvents(std::chrono::milliseconds timeout) override;

  // Delivers `event` to the next WaitForHealthEvents call. Thread-safe.
  void InjectHealthEvent(HealthEvent event);

 private:
  // Moves due scheduled events and new events-file lines into `out`. Caller holds mu_.
  void CollectDueEventsLocked(std::vector<HealthEvent>& out);
  void ReadEventsFileLocked(std::vector<HealthEvent>& out);

  const SimulatedNode node_;
  const std::string source_name_;
  const Clock& clock_;
  const Clock::TimePoint created_;

  std::mutex mu_;
  std::condition_variable injected_cv_;
  std::deque<HealthEvent> injected_;
  std::size_t next_scheduled_ = 0;
  std::size_t events_file_offset_ = 0;
};

}  // namespace gpuslice
