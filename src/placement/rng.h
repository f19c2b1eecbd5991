// A reproducible random source for placement and simulation.
//
// std::mt19937_64's output sequence is fixed by the C++ standard, but the std:: distributions are
// not, so every draw that shapes a result goes through these helpers instead.
#pragma once

#include <cstdint>
#include <random>

namespace gpuslice::placement {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  std::uint64_t Next() { return engine_(); }

  // Uniform in [0, bound); bound must be > 0. Lemire's multiply-shift with rejection.
  std::uint64_t Below(std::uint64_t bound) {
    while (true) {
      const Wide product = static_cast<Wide>(engine_()) * static_cast<Wide>(bound);
      const auto low = static_cast<std::uint64_t>(product);
      if (low >= bound || low >= (0 - bound) % bound) {
        return static_cast<std::uint64_t>(product >> 64);
      }
    }
  }

  // Uniform in [0, 1) with 53 random bits.
  double Unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  __extension__ using Wide = unsigned __int128;
  std::mt19937_64 engine_;
};

}  // namespace gpuslice::placement
