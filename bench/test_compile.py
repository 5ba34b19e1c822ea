"""Compile cost: import plus the first calls of the README example in a fresh process, with an
empty Numba cache (everything compiles) and with a warm one (everything loads from disk)."""
import shutil
import tempfile

import compile_time


def test_compile_cold(benchmark):
    dirs = []

    def fresh_cache():
        dirs.append(tempfile.mkdtemp(prefix="fastrnn-numba-cache-"))
        return (dirs[-1],), {}

    benchmark.group = "compile"
    benchmark.extra_info.update(algorithm="compile", impl="cold cache")
    try:
        benchmark.pedantic(compile_time.first_calls, setup=fresh_cache, rounds=1, iterations=1)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_compile_warm(benchmark):
    cache = tempfile.mkdtemp(prefix="fastrnn-numba-cache-")
    try:
        compile_time.first_calls(cache)          # fill the cache
        benchmark.group = "compile"
        benchmark.extra_info.update(algorithm="compile", impl="warm cache")
        benchmark.pedantic(compile_time.first_calls, args=(cache,), rounds=3, iterations=1)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
