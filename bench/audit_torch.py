"""Random configurations of fastrnn.torch's layers against torch.nn's, float64: outputs, final states and every
gradient, for as long as asked; prints what differs and a count at the end.

    python bench/audit_torch.py [seconds] [--seed S] [--large]

Each configuration draws a cell (RNN with tanh or relu, LSTM with or without a projection, GRU), 1-3 layers,
one or two directions, batch_first, bias, T, B (0 included), an unbatched input, initial states given or not,
and a mode: grad (a loss on the outputs and the final states, then ``torch.autograd.grad`` of x, the initial
states and every parameter), ``no_grad`` or ``inference_mode`` (outputs only). Sizes stay small, so that many
configurations run. ``--large``: one layer at n = 256-384, B = 1-8, T = 20-140, with the pair of threads and the
cut of a batch by units (``runtime.pair``) forced at random, the paths the small sizes never take.

Not a test (it takes minutes, and its cases are random): the tests hold the chosen cases; this looks for the
ones nobody chose. Tolerances: rtol 1e-9 (1e-8 with ``--large``, longer sums), as float64 against float64.
"""
import argparse
import random
import sys
import time

import torch

import fastrnn.torch as ft
from fastrnn.runtime import pair


def _small(rng):
    kind = rng.choice(["RNN", "LSTM", "GRU"])
    m, H = rng.randint(1, 9), rng.randint(1, 12)
    opts = dict(num_layers=rng.randint(1, 3), bidirectional=rng.random() < 0.4, batch_first=rng.random() < 0.4,
                bias=rng.random() < 0.8)
    if kind == "RNN":
        opts["nonlinearity"] = rng.choice(["tanh", "relu"])
    if kind == "LSTM" and H > 1 and rng.random() < 0.3:
        opts["proj_size"] = rng.randint(1, H - 1)
    T, B = rng.randint(1, 12), rng.choice([0, 1, 1, 2, 3, 5])
    return kind, m, H, opts, T, B, B == 1 and rng.random() < 0.15, rng.random() < 0.5


def _large(rng):
    kind = rng.choice(["RNN", "LSTM", "GRU"])
    B = rng.choice([1, 1, 2, 3, 4, 8])
    pair.FORCE = rng.choice([None, True]) if B == 1 else None
    pair.ROWS_FORCE = rng.choice([None, True]) if B > 1 else None
    return kind, rng.randint(4, 40), rng.choice([256, 300, 384]), {}, rng.randint(20, 140), B, False, False


def _inputs(kind, m, H, opts, T, B, unbatched, with_state):
    D, L = (2 if opts.get("bidirectional") else 1), opts.get("num_layers", 1)
    H_out = opts.get("proj_size", 0) or H
    shape = (T, m) if unbatched else ((B, T, m) if opts.get("batch_first") else (T, B, m))
    x = torch.randn(shape, dtype=torch.float64)
    if not with_state:
        return x, None
    lead = (L * D,) if unbatched else (L * D, B)
    h0 = 0.5 * torch.randn(lead + (H_out,), dtype=torch.float64)
    return x, ((h0, 0.5 * torch.randn(lead + (H,), dtype=torch.float64)) if kind == "LSTM" else h0)


def _run(module, x, hx, mode):
    grad = mode == "grad"
    x = x.clone().requires_grad_(grad)
    states = [] if hx is None else [h.clone().requires_grad_(grad) for h in (hx if isinstance(hx, tuple) else (hx,))]
    arg = None if hx is None else (tuple(states) if isinstance(hx, tuple) else states[0])
    if mode != "grad":
        with (torch.no_grad() if mode == "no_grad" else torch.inference_mode()):
            out, final = module(x, arg)
        finals = final if isinstance(final, tuple) else (final,)
        return [out.clone()] + [f.clone() for f in finals]
    out, final = module(x, arg)
    finals = final if isinstance(final, tuple) else (final,)
    loss = (out ** 3).sum() + sum(torch.sin(f).sum() for f in finals)
    grads = torch.autograd.grad(loss, [x, *states, *module.parameters()], allow_unused=True)
    return [out.detach()] + [f.detach() for f in finals] + [torch.zeros(0) if g is None else g for g in grads]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large", action="store_true", help="n = 256-384, the pair and the cut by units forced")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rng = random.Random(args.seed)
    rtol = 1e-8 if args.large else 1e-9
    start, count, bad = time.time(), 0, 0
    try:
        while time.time() - start < args.seconds:
            kind, m, H, opts, T, B, unbatched, with_state = (_large if args.large else _small)(rng)
            mode = rng.choice(["grad", "no_grad", "inference"] if not args.large else ["grad", "no_grad"])
            torch.manual_seed(count)
            ref = getattr(torch.nn, kind)(m, H, dtype=torch.float64, **opts)
            ours = getattr(ft, kind)(m, H, dtype=torch.float64, **opts)
            ours.load_state_dict(ref.state_dict())
            x, hx = _inputs(kind, m, H, opts, T, B, unbatched, with_state)
            case = f"{kind} m={m} H={H} {opts} T={T} B={B} unbatched={unbatched} hx={with_state} {mode}"
            try:
                got, want = _run(ours, x, hx, mode), _run(ref, x, hx, mode)
                same = len(got) == len(want) and all(
                    a.shape == b.shape and (a.numel() == 0 or torch.allclose(a, b, rtol=rtol, atol=1e-11))
                    for a, b in zip(got, want))
            except Exception as exc:        # a configuration that raises is a finding too
                same = False
                case += f": {type(exc).__name__}: {exc}"
            if not same:
                bad += 1
                print("DIFFERS:", case, flush=True)
            count += 1
    finally:
        pair.FORCE = pair.ROWS_FORCE = None
    print(f"{count} configurations in {time.time() - start:.0f} s, {bad} differ from torch.nn")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
