"""BPTT at a batch of one against JAX, interleaved: issue 17's "BPTT at B = 1, n = 128, T = 1000 is at
least 2x JAX", with fastrnn at default threads and on one thread, and JAX's jit(value_and_grad) of
lax.scan (``peers.JaxBPTT``), each call in a new random order every round, in one process.

    python bench/bptt_jax.py [rounds] [--n 128 ...] [--no-torch]

``test_bptt.py`` times them one after the other (pytest-benchmark), where JAX's time for this row moved
from 5.7 to 14.5 ms between runs; interleaved, both meet the same machine. The tanh cell, units readout
with o = n/4, summed mse, float64 (``common.problem``); gradients are compared before timing.
``--no-torch``: the process of a JAX user, torch not imported (``peers`` imports it otherwise): a plain fastrnn
call in a process that has imported torch may first put torch's threads to sleep (``fastrnn.torch._cpu_left``
says when it does not), which JAX's spinning pool makes it do.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if "--no-torch" in sys.argv:
    sys.modules["torch"] = None         # ``import torch`` raises ImportError: peers goes on without it
import fastrnn  # noqa: E402

import peers  # noqa: E402
from common import as_tuple, check_against, interleaved, problem  # noqa: E402

T, M = 1000, 8


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=100)
    parser.add_argument("--n", type=int, action="append", help="hidden sizes (default 32, 64, 128, 256)")
    parser.add_argument("--no-torch", action="store_true", help="torch not imported (a JAX user's process)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if peers.jax is None:
        print(peers.WHY_NO_JAX)
        return
    imported = sys.modules.get("torch") is not None
    print(f"`python bench/bptt_jax.py {args.rounds}{' --no-torch' if args.no_torch else ''}`: T={T}, B=1, float64, "
          f"medians of {args.rounds} interleaved rounds, torch {'' if imported else 'not '}imported\n")
    print("| n | fastrnn (default threads) | fastrnn (one thread) | JAX | JAX / fastrnn | JAX / fastrnn one thread "
          "| 2x |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n in args.n or (32, 64, 128, 256):
        net, x, d = problem(n, M, T, 1)
        jax_call = peers.JaxBPTT(net, x, d)
        check_against(jax_call(), as_tuple(fastrnn.bptt(net, x, d)), np.float64, "jax")

        def one(net=net, x=x, d=d):
            with fastrnn.threads(1):
                return fastrnn.bptt(net, x, d)
        times = interleaved({"fastrnn": lambda: fastrnn.bptt(net, x, d), "one": one, "jax": jax_call},
                            args.rounds, warm=3)
        m = {k: np.median(v) * 1e3 for k, v in times.items()}
        ratio = m["jax"] / m["fastrnn"]
        print(f"| {n} | {m['fastrnn']:.2f} ms | {m['one']:.2f} ms | {m['jax']:.2f} ms | {ratio:.2f} "
              f"| {m['jax'] / m['one']:.2f} | {'holds' if ratio >= 2 else 'NOT reached'} |", flush=True)


if __name__ == "__main__":
    main()
