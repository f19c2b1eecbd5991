#include "core/gpu.h"

namespace gpuslice {

std::string GpuFamilyName(int compute_major, int compute_minor) {
  switch (compute_major) {
    case 1:
      return "tesla";
    case 2:
      return "fermi";
    case 3:
      return "kepler";
    case 5:
      return "maxwell";
    case 6:
      return "pascal";
    case 7:
      return compute_minor < 5 ? "volta" : "turing";
    case 8:
      return compute_minor < 9 ? "ampere" : "ada-lovelace";
    case 9:
      return "hopper";
    case 10:
    case 12:
      return "blackwell";
    default:
      return "undefined";
  }
}

}  // namespace gpuslice
