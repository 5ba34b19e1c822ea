"""A training step against PyTorch: fastrnn (plain arrays) and fastrnn.torch (a torch module)
against torch.nn.RNN / LSTM / GRU.

One step = forward, a readout of 8 outputs, summed squared error, backward to every weight,
SGD update; T = 100, m = 32, n 32-512, B 1/8/32, float32 and float64, in one process that imports
torch, with one thread (torch.set_num_threads(1), fastrnn.threads(1) with the BLAS on one thread)
and with default threads. The same weights start every implementation, and their gradients are
compared before timing. A ``gemm`` row per dtype times one thread's matrix multiply (n = 512
squares) in the same run: the roofline for the GFLOP/s column. ``gemv`` rows time one thread's
chain of T matrix-vector products by each cell's W_hh (gates·n, n), through the BLAS the kernels
call: at B = 1 a step is bound by streaming W_hh twice per time step (forward and backward), and
the report turns these rates into the least time a B = 1 step can take on this machine.

    pytest bench/test_torch_step.py --benchmark-only --benchmark-json=step.json
    python bench/report.py step.json
"""
import contextlib
import copy

import numpy as np
import pytest

import fastrnn
import fastrnn.train

import peers
from common import gemm_one_thread, gemv_one_thread

torch = peers.torch
SIZES = [(n, B) for n in (32, 128, 512) for B in (1, 8, 32)]
T, M, OUT = 100, 32, 8
DTYPES = ["float32", "float64"]
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


@contextlib.contextmanager
def thread_mode(mode):
    if mode == "default":
        yield
        return
    from threadpoolctl import threadpool_limits
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with fastrnn.threads(1), threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(old)


def torch_step(module, x, y, head):
    opt = torch.optim.SGD([*module.parameters(), *head.parameters()], lr=1e-6)

    def step():
        opt.zero_grad()
        out, _ = module(x)
        loss = ((head(out) - y) ** 2).sum()
        loss.backward()
        opt.step()
        return loss
    return step


def fastrnn_step(kind, module, head, x, y):
    """fastrnn.bptt on plain arrays with the same weights: linear readout, mse (½ Σ), SGD (``fastrnn.train.SGD``)."""
    state = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    readout = dict(W_out=head.weight.detach().numpy().copy(), b_out=head.bias.detach().numpy().copy(),
                   readout="linear")
    if kind == "RNN":
        net = fastrnn.RNN(state["weight_ih_l0"], state["weight_hh_l0"], state["bias_ih_l0"] + state["bias_hh_l0"],
                          **readout)
    else:
        net = fastrnn.MODELS[kind.lower()](state["weight_ih_l0"], state["weight_hh_l0"], state["bias_ih_l0"],
                                           state["bias_hh_l0"], **readout)
    xn, yn = x.numpy(), y.numpy()
    params = net.params()
    opt = fastrnn.train.SGD(lr=1e-6)     # as torch.optim.SGD on torch's side: the update in place, no new arrays

    def step():
        loss, grads = fastrnn.bptt(net, xn, yn)
        opt.step(params, grads)
        return loss
    return step


@pytest.mark.parametrize("threads", ["one", "default"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fastrnn", "fastrnn.torch", "torch"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("n,B", SIZES, ids=[f"n{n}-B{B}" for n, B in SIZES])
def test_torch_training_step(benchmark, impl, kind, n, B, dtype, threads):
    if torch is None:
        pytest.skip(peers.WHY_NO_TORCH)
    import fastrnn.torch as ft
    tdtype = getattr(torch, dtype)
    torch.manual_seed(0)
    module = getattr(ft if impl == "fastrnn.torch" else torch.nn, kind)(M, n, dtype=tdtype)
    torch.manual_seed(1)
    head = torch.nn.Linear(n, OUT, dtype=tdtype)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, M, generator=g, dtype=tdtype)
    y = torch.randn(T, B, OUT, generator=g, dtype=tdtype)
    with thread_mode(threads):
        torch.manual_seed(0)
        ref = torch_step(getattr(torch.nn, kind)(M, n, dtype=tdtype), x, y, copy.deepcopy(head))
        expected = float(ref().detach())
        step = fastrnn_step(kind, module, head, x, y) if impl == "fastrnn" else torch_step(module, x, y, head)
        loss = step()
        loss = 2 * loss if impl == "fastrnn" else float(loss.detach())    # fastrnn's mse is ½ Σ (y − d)²
        if abs(loss - expected) > (2e-3 if dtype == "float32" else 1e-8) * abs(expected):
            pytest.fail(f"{impl} computes another loss than torch: {loss} against {expected}")
        benchmark.group = f"step {kind} n={n} B={B} {dtype} {threads}"
        flops = 3 * 2 * GATES[kind] * n * (M + n) * B * T           # forward + backward products
        benchmark.extra_info.update(algorithm=f"step-{kind.lower()}-{threads}", impl=impl.replace(".", "-")
                                    if impl != "fastrnn" else "fastrnn", n=n, m=M, T=T, B=B, dtype=dtype, flops=flops)
        benchmark(step)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_one_thread(benchmark, dtype):
    gemm_one_thread(benchmark, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gates", sorted(set(GATES.values())))
@pytest.mark.parametrize("n", sorted({n for n, _ in SIZES}))
def test_gemv_one_thread(benchmark, n, gates, dtype):
    gemv_one_thread(benchmark, n, gates, dtype, T)
