// A simulated GPU for the compute-arbiter tests: kernels take simulated time, and the GPU
// time-slices busy contexts equally, as the hardware does (round robin over the contexts with
// queued work, `slice_ns` each, about 1 ms on current GPUs; a context's kernels run in order).
// Deterministic: time moves only through Step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace gpuslice::testing {

class SimulatedGpu {
 public:
  explicit SimulatedGpu(std::uint64_t slice_ns = 1'000'000) : slice_ns_(slice_ns) {}

  std::size_t AddContext() {
    contexts_.emplace_back();
    return contexts_.size() - 1;
  }
  // Queues a kernel of `duration_ns` on context `ctx`.
  void Submit(std::size_t ctx, std::uint64_t duration_ns) {
    contexts_[ctx].queue.push_back(duration_ns);
  }
  std::size_t Pending(std::size_t ctx) const { return contexts_[ctx].queue.size(); }
  // When `ctx`'s last kernel finished (0 if none has).
  std::uint64_t LastCompletion(std::size_t ctx) const { return contexts_[ctx].last_completion_ns; }
  std::uint64_t BusyNs(std::size_t ctx) const { return contexts_[ctx].busy_ns; }
  std::uint64_t now() const { return now_ns_; }

  // Advances simulated time by `dt_ns`.
  void Step(std::uint64_t dt_ns) {
    while (dt_ns > 0) {
      if (!PickContext()) {
        now_ns_ += dt_ns;
        return;
      }
      Context& c = contexts_[static_cast<std::size_t>(current_)];
      std::uint64_t run = dt_ns;
      if (run > slice_left_) run = slice_left_;
      if (run > c.queue.front()) run = c.queue.front();
      c.queue.front() -= run;
      c.busy_ns += run;
      now_ns_ += run;
      dt_ns -= run;
      slice_left_ -= run;
      if (c.queue.front() == 0) {
        c.queue.pop_front();
        c.last_completion_ns = now_ns_;
      }
    }
  }

 private:
  struct Context {
    std::deque<std::uint64_t> queue;  // remaining ns of each queued kernel
    std::uint64_t busy_ns = 0;
    std::uint64_t last_completion_ns = 0;
  };

  // Keeps the current context while it has work and slice left; else the next busy one.
  bool PickContext() {
    const std::size_t n = contexts_.size();
    if (current_ >= 0 && slice_left_ > 0 &&
        !contexts_[static_cast<std::size_t>(current_)].queue.empty()) {
      return true;
    }
    const std::size_t start = current_ < 0 ? n - 1 : static_cast<std::size_t>(current_);
    for (std::size_t k = 1; k <= n; ++k) {
      const std::size_t candidate = (start + k) % n;
      if (!contexts_[candidate].queue.empty()) {
        current_ = static_cast<long>(candidate);
        slice_left_ = slice_ns_;
        return true;
      }
    }
    return false;
  }

  std::uint64_t slice_ns_;
  std::vector<Context> contexts_;
  long current_ = -1;
  std::uint64_t slice_left_ = 0;
  std::uint64_t now_ns_ = 0;
};

}  // namespace gpuslice::testing
