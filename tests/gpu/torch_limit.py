"""PyTorch under `gpuslice run --memory 4Gi`: mem_get_info shows the limit, allocating past it
raises torch.cuda.OutOfMemoryError (with the default allocator and with expandable segments,
which uses cuMemCreate). Prints PASS/FAIL lines; exit status 0 when all pass, 77 when skipped."""
import os
import sys

try:
    import torch
except ImportError:
    print("SKIP torch not installed")
    sys.exit(77)
if not torch.cuda.is_available():
    print("SKIP torch.cuda not available")
    sys.exit(77)

limit = int(os.environ.get("GPUSLICE_TEST_LIMIT_BYTES", str(4 << 30)))
failures = 0


def check(ok, name):
    global failures
    print(("PASS " if ok else "FAIL ") + name, flush=True)
    failures += 0 if ok else 1


free, total = torch.cuda.mem_get_info()
check(total == limit, f"mem_get_info total {total} == limit {limit}")
check(free <= limit, "mem_get_info free within the limit")
check(torch.cuda.get_device_properties(0).total_memory == limit,
      "get_device_properties total_memory is the limit")

blocks = []
try:
    for _ in range(64):
        blocks.append(torch.empty(512 << 20, dtype=torch.uint8, device="cuda"))
    check(False, "allocating past the limit raises OutOfMemoryError")
except torch.cuda.OutOfMemoryError:
    check(True, "allocating past the limit raises OutOfMemoryError")
check(len(blocks) * (512 << 20) <= limit, f"held {len(blocks)} x 512 MiB within the limit")
blocks.clear()
torch.cuda.empty_cache()
x = torch.ones(1 << 20, device="cuda")
check(float(x.sum()) == float(1 << 20), "the GPU still computes after the refusal")
sys.exit(1 if failures else 0)
