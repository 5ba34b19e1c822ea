"""The kernels' on-disk cache: one variant for writable and read-only inputs, safe between processes,
and compiled ahead of time on several processes (``fastrnn warmup --jobs``)."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from numba.core.caching import IndexDataCacheFile

import fastrnn
from fastrnn import cli
from fastrnn.kernels import _forward, _jit, _lstm_forward
from fastrnn.runtime import compilation

# Several processes save different entries of one kernel's cache at the same moment, through the store
# fastrnn wraps (Numba's own class, in a folder of the test's).
_SAVER = """
import sys, time
from numba.core.caching import IndexDataCacheFile
from fastrnn.kernels._jit import _locked

class Dispatcher:          # what _locked reads of a Numba dispatcher
    pass

folder, who, count, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
d = Dispatcher()
d._cache = Dispatcher()
d._cache._cache_file = IndexDataCacheFile(folder, "probe", ("stamp", 1))
_locked(d)
time.sleep(max(0.0, start - time.time()))
for i in range(count):
    d._cache._cache_file.save((who, i), ("code of", who, i))
print("saved")
"""


def test_processes_saving_variants_of_one_kernel_at_once_keep_each_its_own_code(tmp_path):
    folder = str(tmp_path / "cache")
    writers, count = 4, 40
    start = time.time() + 2.0            # every process imports first, then all save together
    procs = [subprocess.Popen([sys.executable, "-c", _SAVER, folder, str(w), str(count), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(writers)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "saved", err
    store = IndexDataCacheFile(folder, "probe", ("stamp", 1))       # Numba's plain reader
    index = store._load_index()
    assert len(index) == writers * count, f"{writers * count - len(index)} entries lost"
    assert len(set(index.values())) == writers * count               # one data file each
    for w in range(writers):
        for i in range(count):
            assert store.load((w, i)) == ("code of", w, i)
    assert os.path.exists(os.path.join(folder, _jit.LOCK_NAME))


def test_a_lock_held_too_long_is_passed_with_one_warning(tmp_path, monkeypatch):
    import filelock
    monkeypatch.setattr(_jit, "LOCK_SECONDS", 0.2)
    folder = str(tmp_path / "cache")
    os.makedirs(folder)
    store = IndexDataCacheFile(folder, "probe", ("stamp", 1))

    class Dispatcher:
        pass
    d = Dispatcher()
    d._cache = Dispatcher()
    d._cache._cache_file = store
    _jit._locked(d)
    with filelock.FileLock(os.path.join(folder, _jit.LOCK_NAME)):          # another holder that never lets go
        with pytest.warns(RuntimeWarning, match="could not lock the kernel cache in .*without the lock"):
            store.save("a", ("code", 1))
        store.save("b", ("code", 2))                                        # said once per folder
    assert store.load("a") == ("code", 1) and store.load("b") == ("code", 2)


def test_kernels_read_and_write_their_cache_under_the_lock():
    store = _forward._serial._cache._cache_file
    assert store.save.__wrapped__.__func__ is IndexDataCacheFile.save
    assert store.load.__wrapped__.__func__ is IndexDataCacheFile.load
    fastrnn.forward(fastrnn.RNN.init(2, 3, 1, seed=0), np.ones((2, 1, 2)))
    assert os.path.exists(os.path.join(compilation.cache_folder(), _jit.LOCK_NAME))


def test_read_only_inputs_run_the_variant_compiled_for_writable_ones():
    """JAX's buffers and arrays set read-only reach the kernels as the same type as writable ones
    (``Kernel.read_only``), so they run the same machine code: no second compilation."""
    net = fastrnn.LSTM.init(3, 5, 2, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3))
    d = rng.standard_normal((4, 2, 2))
    L, g = fastrnn.bptt(net, x, d)
    before = {k: len(k_disp.signatures) for k, k_disp in _dispatchers().items()}
    x_ro, d_ro = x.copy(), d.copy()
    x_ro.flags.writeable = d_ro.flags.writeable = False
    ro_net = fastrnn.LSTM.init(3, 5, 2, seed=1)
    for w in ro_net.params().values():
        w.flags.writeable = False
    L_ro, g_ro = fastrnn.bptt(ro_net, x_ro, d_ro)
    assert L_ro == L
    assert sorted(g_ro) == sorted(g)
    for name in g:
        np.testing.assert_array_equal(g_ro[name], g[name])
    after = {k: len(k_disp.signatures) for k, k_disp in _dispatchers().items()}
    assert after == before
    # and the arrays handed to a kernel as read-only are views, the caller's arrays untouched
    args = _lstm_forward.read_only((x, net.W_ih, net.W_hh, net.b_ih, np.zeros(1)))
    assert [a.flags.writeable for a in args] == [False, False, False, False, True]
    assert args[0].base is x and x.flags.writeable


def _dispatchers():
    from fastrnn import kernels
    found = {}
    for name in dir(kernels):
        k = getattr(kernels, name)
        if isinstance(k, _jit.Kernel):
            found[name + ".serial"], found[name + ".parallel"] = k._serial, k._parallel
    return found


def test_a_kernel_cannot_name_an_argument_it_does_not_have():
    with pytest.raises(ValueError, match="has no argument 'W'"):
        _jit.Kernel(lambda x, nblocks: None, "rows", reads=("W",))


def test_warmup_shares_the_units_among_processes_as_they_go(monkeypatch, tmp_path):
    """Processes claiming units in one folder compile each unit once, largest first; a process held up on
    a long unit leaves the rest to the others."""
    import threading
    import time
    units = [(c, d, p) for c in ("rnn", "gru", "lstm", "lstmp") for d in ("float64", "float32")
             for p in (False, True)]
    assert cli._unit_cost(("rnn", "float32", True)) > cli._unit_cost(("gru", "float32", True)) \
        > cli._unit_cost(("gru", "float32", False))
    seen, lock = {}, threading.Lock()

    def compile_one(share):                 # the first unit takes long, the others a moment
        (unit,) = share
        time.sleep(0.5 if unit == ("rnn", "float64", True) else 0.01)
        with lock:
            seen.setdefault(threading.current_thread().name, []).append(unit)

    monkeypatch.setattr(cli, "_warm_share", compile_one)
    workers = [threading.Thread(target=cli.warm_claimed, args=(units, tmp_path), name=f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    taken = [u for share in seen.values() for u in share]
    assert sorted(taken) == sorted(units)                           # each unit once, none left out
    assert len(seen) == 2
    slow = next(share for share in seen.values() if ("rnn", "float64", True) in share)
    assert len(slow) < 3                    # while it compiled the long unit the other took the rest
    order = sorted(units, key=cli._unit_cost, reverse=True)
    for share in seen.values():             # each process took its units in the order of their cost
        assert share == sorted(share, key=order.index)
    # nothing left to claim: a third process compiles nothing
    assert cli.warm_claimed(units, tmp_path) == []
    compiled = []
    monkeypatch.setattr(cli, "_warm_share", compiled.append)
    cli.warm_units(units[:4], jobs=1)       # one process: in the order given, in one go
    assert compiled == [units[:4]]


@pytest.mark.slow
def test_warmup_on_two_processes_fills_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "fastrnn", "warmup", "--cell", "rnn", "--serial-only",
                          "--jobs", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    # the simple cell's four kernels (forward, BPTT sweep, weight gradients, RTRL), serial twins only, and where
    # the tiles are wider than NumPy's BLAS the products outside the kernels (``dispatch.product``) a fifth
    from fastrnn.runtime import blas
    kernels = 5 if blas.tiles_wider_than_numpy() else 4
    assert "kernels ready in" in out.stdout and f"({kernels} kernels cached in" in out.stdout, out.stdout
    # a fresh process then compiles nothing for those calls: every variant came from the two processes
    code = ("import numpy as np, fastrnn\n"
            "from fastrnn.runtime import compilation\n"
            "for dt in (np.float64, np.float32):\n"
            "    net = fastrnn.RNN.init(2, 3, 2, readout='linear', dtype=dt, seed=0)\n"
            "    x = np.zeros((3, 2, 2), dt)\n"
            "    with fastrnn.threads(1):\n"
            "        fastrnn.bptt(net, x, x)\n"
            "        fastrnn.rtrl(net, x, x)\n")
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "compiling" not in again.stderr, again.stderr


def test_the_kernels_folder_imported_on_its_own_is_refused(tmp_path):
    """``import kernels`` from the repository's root would cache compiled code under the module name
    "kernels" beside fastrnn's entries; it raises instead, naming what to import."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "kernels")):
        pytest.skip("the tests run outside the source tree: there is no kernels folder to import on its own")
    out = subprocess.run([sys.executable, "-c", "import kernels"], capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)), timeout=120)
    assert out.returncode != 0
    assert "ImportError: the kernels folder was imported as 'kernels': import fastrnn" in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())          # nothing was compiled or cached under that name
    again = subprocess.run([sys.executable, "-c", "import fastrnn.kernels as k; print(k.__name__)"],
                           capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "fastrnn.kernels", again.stderr
