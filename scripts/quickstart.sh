#!/usr/bin/env bash
# Installs what gpuslice needs, builds it, and runs the main job on built-in defaults: the
# cluster simulator on its built-in synthetic cluster and workload, every placement policy.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc)"

echo
echo "== gpuslice simulate: built-in synthetic cluster and workload, every placement policy =="
./build/release/src/cli/gpuslice simulate --out simulate-out
echo
echo "The chart (allocation vs arrived demand, one line per policy) is $PWD/simulate-out/synthetic-allocation.svg"
echo "Next: ./build/release/src/cli/gpuslice inventory --backend sim:fixtures/nodes/a100-40gb-8x.yaml --config fixtures/configs/time-slicing-4.yaml"
