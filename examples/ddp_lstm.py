"""Data-parallel training of fastrnn.torch.LSTM with torch.distributed (gloo), two processes.

Each process trains on its half of every batch; DistributedDataParallel averages the gradients,
so after a few SGD steps the parameters equal one process trained on the whole batch. fastrnn is
the per-process kernel; torch.distributed does the communication.

    python examples/ddp_lstm.py            # prints the largest difference to one process, as JSON
"""
import json
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import fastrnn.torch as ft

T, BATCH, M, H, STEPS, LR = 12, 8, 3, 6, 4, 0.1


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, T, BATCH, M, generator=g, dtype=torch.float64)
    y = torch.randn(STEPS, T, BATCH, H, generator=g, dtype=torch.float64)
    return x, y


def model():
    torch.manual_seed(0)
    return ft.LSTM(M, H, dtype=torch.float64)


def train(lstm, x, y):
    """STEPS updates of plain SGD on the mean squared error of the outputs."""
    opt = torch.optim.SGD(lstm.parameters(), lr=LR)
    for step in range(STEPS):
        opt.zero_grad()
        out, _ = lstm(x[step])
        loss = ((out - y[step]) ** 2).mean()
        loss.backward()
        opt.step()
    return lstm


def worker(rank, world, port, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = data()
        half = BATCH // world
        rows = slice(rank * half, (rank + 1) * half)          # this process's part of every batch
        ddp = DistributedDataParallel(model())
        train(ddp, x[:, :, rows], y[:, :, rows])
        if rank == 0:
            torch.save({k: v.detach().clone() for k, v in ddp.module.state_dict().items()}, result_path)
    finally:
        dist.destroy_process_group()
    leave()


def leave():
    """End a worker without finalizing its interpreter. Gloo's worker threads outlive
    destroy_process_group, and one may still be releasing its last collective, which takes the GIL:
    if the interpreter is finalizing by then, the process aborts ("terminate called without an active
    exception"; a PyTorch bug, seen here in about one run in ten, pytorch/pytorch#190489). Everything
    this worker produced is saved; flush what it printed and exit at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ddp.pt")
        mp.spawn(worker, args=(2, free_port(), path), nprocs=2, join=True)
        parallel = torch.load(path)
    x, y = data()
    single = train(model(), x, y).state_dict()
    half = train(model(), x[:, :, :BATCH // 2], y[:, :, :BATCH // 2]).state_dict()   # no averaging

    def difference(a, b):
        return max(float(((a[k] - b[k]).abs().max() / b[k].abs().max())) for k in b)
    diff = difference(parallel, single)
    print(json.dumps({"max_relative_difference": diff, "without_averaging": difference(half, single),
                      "parameters": list(single)}))
    return 0 if diff <= 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
