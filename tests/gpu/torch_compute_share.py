"""A PyTorch training step against a GEMM loop under the compute arbiter (tests/gpu/run.sh).

    torch_compute_share.py train <seconds>   small MLP training steps; prints steps=N
    torch_compute_share.py gemm <seconds>    4096x4096 matmuls; prints iterations=N

run.sh measures each alone, then both at once under `gpuslice run --compute 30` / `--compute 70`,
and reports each one's rate as a fraction of its lone rate (its share of the GPU's time).
Exits 77 (skip) without PyTorch or a GPU.
"""
import sys
import time

try:
    import torch
except ImportError:
    print("SKIP no torch")
    sys.exit(77)
if not torch.cuda.is_available():
    print("SKIP no CUDA device")
    sys.exit(77)


def train(seconds):
    model = torch.nn.Sequential(
        torch.nn.Linear(4096, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 4096)
    ).cuda()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(512, 4096, device="cuda")
    steps = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        optimiser.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        optimiser.step()
        torch.cuda.synchronize()
        steps += 1
    print(f"PASS train\nsteps={steps}")


def gemm(seconds):
    a = torch.randn(4096, 4096, device="cuda")
    b = torch.randn(4096, 4096, device="cuda")
    iterations = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(4):
            torch.mm(a, b)
        torch.cuda.synchronize()
        iterations += 4
    print(f"PASS gemm\niterations={iterations}")


if __name__ == "__main__":
    mode, seconds = sys.argv[1], float(sys.argv[2])
    {"train": train, "gemm": gemm}[mode](seconds)
