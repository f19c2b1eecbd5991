"""CuPy under `gpuslice run --memory 4Gi`: memGetInfo shows the limit and allocating past it
raises cupy.cuda.memory.OutOfMemoryError. Exit 0 when all pass, 77 when CuPy is absent."""
import os
import sys

try:
    import cupy
except ImportError:
    print("SKIP cupy not installed")
    sys.exit(77)

limit = int(os.environ.get("GPUSLICE_TEST_LIMIT_BYTES", str(4 << 30)))
failures = 0


def check(ok, name):
    global failures
    print(("PASS " if ok else "FAIL ") + name, flush=True)
    failures += 0 if ok else 1


free, total = cupy.cuda.runtime.memGetInfo()
check(total == limit, f"memGetInfo total {total} == limit {limit}")
blocks = []
try:
    for _ in range(64):
        blocks.append(cupy.empty(512 << 20, dtype=cupy.uint8))
    check(False, "allocating past the limit raises OutOfMemoryError")
except cupy.cuda.memory.OutOfMemoryError:
    check(True, "allocating past the limit raises OutOfMemoryError")
check(len(blocks) * (512 << 20) <= limit, f"held {len(blocks)} x 512 MiB within the limit")
blocks.clear()
cupy.get_default_memory_pool().free_all_blocks()
check(int(cupy.arange(1000).sum()) == 499500, "the GPU still computes after the refusal")
sys.exit(1 if failures else 0)
