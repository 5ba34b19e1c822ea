"""A scaling model from one run of bench/test_threads.py: parallel efficiency, serial fraction,
and what they predict for 16 and 64 cores, next to each kernel's bytes per flop.

    pytest bench/test_threads.py --benchmark-only --benchmark-json=threads.json
    python bench/scaling.py threads.json [--bandwidth 20]

For each problem: S2 = t(1 thread) / t(default, 2 threads); efficiency E2 = S2 / 2; Amdahl's serial
fraction f = 2 / S2 - 1 (clipped to [0, 1]); predicted speed-up S(p) = 1 / (f + (1 - f) / p). The
serial twin that the dispatch policy picks for small work has f = 1 by construction. The roofline
columns: GFLOP/s achieved on 2 threads; bytes moved per multiply-add counted from the kernel's
data flow (float64): BPTT streams W_rec (n² numbers) once per step for B rows, 8/B bytes/flop;
RTRL streams its sensitivity tile in and out each step, (n + (n + 1)) n J numbers for 2 (n + 1) n n J
flops, about 8/n bytes/flop; the LSTM's gate matrices are 4n x n, the same ratios. With the
``--bandwidth`` (GB/s of one socket's DRAM), a kernel whose working set falls out of cache is bound
at bandwidth / (bytes per flop).
"""
import argparse
import json


def flops(algo, n, m, T, B):
    J = m + 1 + n
    if algo == "bptt":
        return 2 * 2 * B * n * n * T + 2 * 2 * T * B * n * (m + n)
    if algo == "lstm-bptt":
        return 2 * 8 * B * n * n * T + 2 * 8 * T * B * n * (m + n)
    if algo == "rtrl":
        return 2 * B * (n + 1) * n * n * J * T
    return 2 * B * 4 * n * n * 4 * n * J * T            # lstm-rtrl


def bytes_per_flop(algo, n, B):
    if algo.endswith("bptt"):
        return 8.0 / B
    return 8.0 * (2 * n + 1) / (2 * (n + 1) * n)


def amdahl(f, p):
    return 1.0 / (f + (1.0 - f) / p)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--bandwidth", type=float, default=20.0, help="DRAM bandwidth in GB/s for the bound")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    rows = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if not info.get("algorithm", "").startswith("threads-"):
            continue
        key = (info["algorithm"][len("threads-"):], info["n"], info["m"], info["T"], info["B"])
        rows.setdefault(key, {})[info["impl"]] = bench["stats"]["median"]
    print("| kernel | n | T | B | 1 thread | 2 threads | S2 | E2 | serial fraction | S16 | S64 | GFLOP/s (2 thr) "
          "| bytes/flop | DRAM bound GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(rows):
        algo, n, m, T, B = key
        r = rows[key]
        if "fastrnn" not in r or "one-thread" not in r:
            continue
        t1, t2 = r["one-thread"], r["fastrnn"]
        s2 = t1 / t2
        f = min(1.0, max(0.0, 2.0 / s2 - 1.0))
        bpf = bytes_per_flop(algo, n, B)
        gf = flops(algo, n, m, T, B) / 2 / t2 / 1e9          # multiply-adds counted as 2 flops
        print(f"| {algo} | {n} | {T} | {B} | {t1 * 1e3:.3f} ms | {t2 * 1e3:.3f} ms | {s2:.2f} | {s2 / 2:.2f} | {f:.2f} "
              f"| {amdahl(f, 16):.1f} | {amdahl(f, 64):.1f} | {gf:.1f} | {bpf / 2:.3f} | {args.bandwidth / (bpf / 2):.0f} |")


if __name__ == "__main__":
    main()
