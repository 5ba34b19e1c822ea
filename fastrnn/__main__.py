"""``python -m fastrnn``: train a small network with fastrnn.bptt and show it learning.

The task: a stream of random bits; the target at step t is the input bit of step t - 2
(a delayed echo, Williams & Zipser's delay-line flavour). Readout: one logistic output, bce loss.
"""
import argparse
import sys
import time

import numpy as np

import fastrnn


def echo_task(rng, T, B, lag, dtype):
    bits = rng.integers(0, 2, size=(T, B, 1))
    d = np.zeros((T, B, 1))
    d[lag:] = bits[:-lag]
    mask = np.zeros((T, B), dtype=bool)
    mask[lag:] = True                     # no target before the first echo
    return bits.astype(dtype), d.astype(dtype), mask


def adam(net, grads, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    state["t"] += 1
    t = state["t"]
    for name, w in net.params().items():
        g = getattr(grads, name)
        m = state.setdefault("m" + name, np.zeros_like(w))
        v = state.setdefault("v" + name, np.zeros_like(w))
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        w -= lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastrnn", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--hidden", type=int, default=16, help="recurrent units (default 16)")
    parser.add_argument("--lag", type=int, default=2, help="echo delay in steps (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hidden < 1 or args.lag < 1:
        parser.error("--steps, --hidden and --lag must be at least 1")

    rng = np.random.default_rng(args.seed)
    net = fastrnn.RNN.init(1, args.hidden, 1, readout="linear", out_activation="logistic", seed=args.seed)
    T, B = 40, 32
    print(f"fastrnn {fastrnn.__version__}: learning to echo a bit {args.lag} steps later "
          f"({net.n_hidden} tanh units, T={T}, B={B}, bce loss, Adam)")
    state = {"t": 0}
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, d, mask = echo_task(rng, T, B, args.lag, net.dtype)
        loss, grads = fastrnn.bptt(net, x, d, mask, loss="bce")
        adam(net, grads, state, lr=0.01)
        if step == 1 or step % 50 == 0 or step == args.steps:
            print(f"  step {step:4d}  loss per target {loss / mask.sum():.4f}")
    elapsed = time.perf_counter() - start

    x, d, mask = echo_task(np.random.default_rng(args.seed + 1), 200, 64, args.lag, net.dtype)
    _, y = fastrnn.forward(net, x)
    accuracy = float(((y[..., 0] > 0.5) == (d[..., 0] > 0.5))[mask].mean())
    print(f"trained in {elapsed:.1f} s; accuracy on fresh data: {accuracy:.1%}")
    fastrnn.bptt(net, x[:50, :4], d[:50, :4], mask[:50, :4], loss="bce", validate=True)
    print("validation: fastrnn.bptt agrees with fastrnn.reference (SPEC §7 tolerance)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
