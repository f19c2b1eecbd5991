#!/usr/bin/env bash
# Builds gpuslice and runs every test under CTest. Works as root on a fresh Debian 12 machine.
#   1. installs the Debian packages the build needs (skipped when present);
#   2. builds the libFuzzer targets with clang (build/fuzz), which CTest runs briefly;
#   3. builds everything else with the default compiler (build/test) and runs CTest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
jobs=$(nproc)

cmake --preset fuzz -DGPUSLICE_BUILD_TESTS=ON >/dev/null
cmake --build build/fuzz --target gpuslice_fuzzers -j "$jobs"

cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DGPUSLICE_FUZZER_DIR="$PWD/build/fuzz/tests/fuzz" >/dev/null
cmake --build build/test -j "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs" "$@"
