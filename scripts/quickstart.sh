#!/usr/bin/env bash
# Installs what gpuslice needs, builds it, and runs the main job on built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc)"

echo
echo "== gpuslice inventory: a simulated 8x A100-40GB node, time-slicing with 4 replicas =="
./build/release/src/cli/gpuslice inventory \
  --backend sim:fixtures/nodes/a100-40gb-8x.yaml \
  --config fixtures/configs/time-slicing-4.yaml
