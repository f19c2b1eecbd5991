"""Two PyTorch processes under one `gpuslice run` limit: the first holds 3/4 of it, the second
is refused another 3/4 with OutOfMemoryError. Exit 0 on success, 77 when torch is absent."""
import multiprocessing as mp
import os
import sys

LIMIT = int(os.environ.get("GPUSLICE_TEST_LIMIT_BYTES", str(4 << 30)))


def holder(ready, done):
    import torch
    x = torch.empty(LIMIT // 4 * 3, dtype=torch.uint8, device="cuda")
    ready.set()
    done.wait()
    del x


def main():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP torch not installed")
        return 77
    ctx = mp.get_context("spawn")  # a fresh process: CUDA is not fork-safe
    ready, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=holder, args=(ready, done))
    p.start()
    if not ready.wait(120):
        print("FAIL the first process did not allocate")
        return 1
    import torch
    ok = False
    try:
        torch.empty(LIMIT // 4 * 3, dtype=torch.uint8, device="cuda")
    except torch.cuda.OutOfMemoryError:
        ok = True
    print(("PASS " if ok else "FAIL ") + "second process refused past the shared limit", flush=True)
    done.set()
    p.join()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
