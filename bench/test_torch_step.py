"""A training step inside PyTorch: fastrnn.torch.RNN/LSTM against torch.nn.RNN/LSTM.

One step = forward, a Linear head of 8 outputs, summed squared error, backward, SGD update;
float32, T = 100, m = 32, the module's default threads, torch imported (as anyone embedding
fastrnn runs it). Both modules start from the same weights, and their gradients are compared
before timing.

    pytest bench/test_torch_step.py --benchmark-only --benchmark-json=step.json
    python bench/report.py step.json
"""
import numpy as np
import pytest

import peers

torch = peers.torch
SIZES = [(n, B) for n in (32, 128, 512) for B in (1, 8, 32)]
T, M, OUT = 100, 32, 8


def make_step(module, dtype):
    torch.manual_seed(1)
    head = torch.nn.Linear(module.hidden_size, OUT, dtype=dtype)
    opt = torch.optim.SGD([*module.parameters(), *head.parameters()], lr=1e-6)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, module._bench_B, M, generator=g, dtype=dtype)
    y = torch.randn(T, module._bench_B, OUT, generator=g, dtype=dtype)

    def step():
        opt.zero_grad()
        out, _ = module(x)
        loss = ((head(out) - y) ** 2).sum()
        loss.backward()
        opt.step()
        return loss
    return step


def gradients(module, B, dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, M, generator=g, dtype=dtype)
    out, _ = module(x)
    return torch.autograd.grad((out ** 2).sum(), list(module.parameters()))


@pytest.mark.parametrize("impl", ["fastrnn", "torch"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
@pytest.mark.parametrize("n,B", SIZES, ids=[f"n{n}-B{B}" for n, B in SIZES])
def test_torch_training_step(benchmark, impl, kind, n, B):
    if torch is None:
        pytest.skip(peers.WHY_NO_TORCH)
    import fastrnn.torch as ft
    dtype = torch.float32
    torch.manual_seed(0)
    module = (getattr(ft, kind) if impl == "fastrnn" else getattr(torch.nn, kind))(M, n, dtype=dtype)
    torch.manual_seed(0)
    other = (getattr(torch.nn, kind) if impl == "fastrnn" else getattr(ft, kind))(M, n, dtype=dtype)
    for a, b in zip(gradients(module, B, dtype), gradients(other, B, dtype)):   # the same computation
        err = float((a - b).abs().max() / b.abs().max())
        if err > 2e-3:
            pytest.fail(f"{impl} disagrees with its peer: rel err {err:.2g}")
    module._bench_B = B
    step = make_step(module, dtype)
    step()
    benchmark.group = f"torch step {kind} n={n} B={B}"
    flops = (8 if kind == "LSTM" else 2) * n * (M + n) * B * T * 3    # forward + backward products
    benchmark.extra_info.update(algorithm=f"torch-step-{kind.lower()}", impl=impl, n=n, m=M, T=T, B=B,
                                dtype="float32", flops=flops)
    benchmark(step)
