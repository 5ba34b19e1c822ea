"""The fastrnn command: train (text and --json), check, bench, and its error paths."""
import json
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import cli


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastrnn", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("algorithm", ["bptt", "rtrl"])
def test_train_json_learns_parity(tmp_path, capsys, algorithm):
    out = tmp_path / "run"
    code = cli.main(["train", "--json", "--algorithm", algorithm, "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["final_accuracy"] == 1.0, result
    assert {"task", "cell", "algorithm", "steps", "final_loss", "final_accuracy", "seconds"} <= set(result)
    assert result["task"] == "parity" and result["algorithm"] == algorithm
    with np.load(out / "params.npz", allow_pickle=False) as params:
        assert {"W_in", "W_rec", "b", "W_out", "b_out", "cell", "activation", "readout"} <= set(params.files)
        W_rec = params["W_rec"]
    assert W_rec.shape == (16, 16)
    net = fastrnn.load(out / "params.npz")
    assert isinstance(net, fastrnn.RNN) and net.out_activation == "logistic"
    np.testing.assert_array_equal(net.W_rec, W_rec)
    png = (out / "training.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1000   # 10 in at 100 dpi


def test_python_m_fastrnn_shows_training(tmp_path):
    proc = run("train", "--steps", "60", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "learns 'parity' by bptt" in proc.stdout and "accuracy on fresh data" in proc.stdout
    assert "60/60" in proc.stderr          # the progress bar's last line


@pytest.mark.parametrize("args,message", [
    (["train", "--steps", "abc"], "argument --steps: expected a whole number, got 'abc'"),
    (["train", "--task", "nope"], "argument --task: invalid choice: 'nope'"),
    (["train", "--lr", "-1"], "argument --lr: must be > 0, got -1"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["explode"], "invalid choice: 'explode'"),
])
def test_bad_flags_print_one_line(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_library_errors_print_one_line(tmp_path):
    proc = run("train", "--task", "adding", "--length", "1", "--steps", "2", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fastrnn: error: the adding problem needs length >= 2"


def test_check_passes_and_exits_zero(capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    # 7 checks per cell (4 without RTRL: forward and three BPTTs), float64 and float32
    rows = sum(14 if model.rtrl_available else 8 for model in fastrnn.MODELS.values())
    assert f"{rows} passed, 0 failed" in out and "lstm rtrl vs bptt" in out and "gru online rtrl" in out


def test_check_fails_loudly(capsys, monkeypatch):
    real = cli._check_rows
    monkeypatch.setattr(cli, "_check_rows", lambda seed: real(seed)[:2] + [("broken", np.float64, 1.0, 1e-10)])
    assert cli.main(["check"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_bench_quick(capsys):
    assert cli.main(["bench", "--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("bptt", "rtrl"))]
    assert len(rows) == 4 and all(line.rstrip().endswith("x") for line in rows)


def test_info_names_the_layer_blas_and_cache(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for label in ("numba", "threading layer", "fastrnn threads", "BLAS", "step products", "tiles", "kernel cache",
                  "cores"):
        assert any(line.startswith(label) for line in out.splitlines()), (label, out)
    from fastrnn.kernels._tiles import TILE_BYTES
    from fastrnn.runtime import blas
    tiles = next(line for line in out.splitlines() if line.startswith("tiles"))
    assert f"{TILE_BYTES}-byte vectors" in tiles and ("in the tiles too" in tiles) == blas.tiles_wider()
    assert cli.main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fastrnn"] == fastrnn.__version__ and isinstance(data["BLAS"], list)


@pytest.mark.parametrize("core", [None, "Haswell"])
def test_info_says_when_the_environment_chose_openblass_core(monkeypatch, capsys, core):
    """An OpenBLAS core chosen by OPENBLAS_CORETYPE (it decides which vectors the BLAS takes, and so whether the
    weight gradients go through the tiles) is named on the OpenBLAS rows, and only then."""
    from fastrnn.runtime import blas
    if not any(lib["internal_api"] == "openblas" for lib in blas.info()):
        pytest.skip("no OpenBLAS among this process's BLAS libraries")
    if core is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", core)
    assert cli.main(["info"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("BLAS") and "openblas" in line]
    assert rows and all(("as OPENBLAS_CORETYPE=Haswell asks" in line) == (core is not None) for line in rows)


def test_info_says_what_fastrnn_torch_does_beside_torchs_threads(monkeypatch):
    """Read from the GNU OpenMP variables as torch's runtime reads them, without importing torch;
    the row appears where torch is installed."""
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    row = cli._beside_torch_row()
    assert row.startswith("torch's threads spin") and "GOMP_SPINCOUNT unset: libgomp's default" in row
    assert "puts them to sleep before a call of 50 million multiply-adds" in row
    assert "250 million multiply-adds" in row and "GOMP_SPINCOUNT=10000 set before torch is imported" in row
    monkeypatch.setenv("GOMP_SPINCOUNT", "10k")
    assert cli._beside_torch_row().startswith("torch's threads sleep soon after each operation (GOMP_SPINCOUNT=10k)")
    monkeypatch.setenv("GOMP_SPINCOUNT", "2M")
    assert "(GOMP_SPINCOUNT=2M: 2e+06 iterations)" in cli._beside_torch_row()
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert "sleep soon" in cli._beside_torch_row() and "OMP_WAIT_POLICY=PASSIVE" in cli._beside_torch_row()
    labels = [label for label, _ in cli.info_rows()]
    assert ("beside torch" in labels) is (cli._version("torch") != "not installed")


def test_threads_flag(tmp_path, capsys):
    assert cli.main(["train", "--threads", "1", "--steps", "5", "--json", "--out", str(tmp_path)]) == 0
    assert fastrnn.get_threads() == 1
    fastrnn.set_threads(None)
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", "--threads", bad])
        assert exc.value.code == 2
    code = cli.main(["check", "--threads", "100000"])
    assert code == 2
    assert "but this process can run at most" in capsys.readouterr().err


def test_warmup_reports_the_cache(capsys):
    assert cli.main(["warmup", "--cell", "rnn", "lstmp", "--dtype", "float64", "--serial-only", "--jobs", "1"]) == 0
    assert "kernels ready in" in capsys.readouterr().out


def test_first_compilation_says_so_once_and_a_warm_cache_is_silent(tmp_path):
    """Two kernel variants compiled (the input check, float64 and float32: each call stops at its NaN
    before the forward kernel, which would take some 20 s to compile on an empty cache), one notice;
    a second process loads both and says nothing."""
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import numpy as np, fastrnn\n"
            "for dt in (np.float64, np.float32):\n"
            "    net = fastrnn.RNN.init(2, 3, 1, seed=0, dtype=dt)\n"
            "    try:\n"
            "        fastrnn.forward(net, np.full((2, 1, 2), np.nan, dt))\n"
            "    except fastrnn.NonFiniteError as exc:\n"
            "        print(str(exc).split(' holds')[0])\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["x", "x"], first.stdout
    assert first.stderr.count("fastrnn: compiling kernels for this machine (first run only") == 1, first.stderr
    assert len(list((tmp_path / "cache").rglob("checks._all_finite-*.nbc"))) == 2      # both variants cached
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "compiling" not in again.stderr, again.stderr
    assert again.stdout == first.stdout


def test_no_writable_cache_folder_falls_back_with_one_warning():
    code = ("import warnings\n"
            "from numba.core import caching\n"
            "caching.CacheImpl._locator_classes = []       # as if no folder were writable\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np, fastrnn\n"
            "from fastrnn.checks import all_finite\n"
            "found = [all_finite(np.ones(9, dt)) for dt in (np.float64, np.float32)]\n"
            "found += [all_finite(np.array([1.0, np.nan, 2.0], dt)) for dt in (np.float64, np.float32)]\n"
            "ours = [w for w in seen if 'kernel cache' in str(w.message)]\n"
            "print(len(ours), fastrnn.kernels._jit.CACHING, *found)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # one warning, caching off, and the kernels compiled without a cache still compute (the input
    # check's compiled pass, both dtypes: a kernel that takes milliseconds to compile, not the 20 s
    # of the forward pass's; every kernel goes through the same ``_jit``)
    assert out.stdout.split() == ["1", "False", "True", "True", "False", "False"], out.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    (["train", "--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    (["train", "--clip", "nan"], "argument --clip: must be a finite number, got nan"),
    (["train", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["train", "--threads", "0"], "argument --threads: must be > 0, got 0"),
    (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
    (["train", "--truncation", "5"], "--truncation and --curriculum apply to --algorithm tbptt, not bptt"),
    (["train", "--curriculum", "--algorithm", "rtrl"], "apply to --algorithm tbptt, not rtrl"),
    (["train", "--hidden", "1000000"], "a RNN with 1000000 units needs"),
    (["train", "--out", "/proc/version/sub"], "--out /proc/version/sub: cannot write there"),
    (["train", "--resume", "/nonexistent.npz"], "--resume /nonexistent.npz: cannot read it"),
    (["eval"], "the following arguments are required: --params"),
    (["eval", "--params", "/nonexistent.npz"], "cannot read it"),
])
def test_more_bad_flags_print_one_line(args, message):
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_help_text_is_whole_sentences():
    proc = run("--help")
    assert proc.returncode == 0
    description = " ".join(proc.stdout.split("\n\n")[1].split())
    assert description.endswith("ahead of time."), description


def test_train_writes_history_resumes_evaluates_and_says_when_not_solved(tmp_path, capsys):
    out = tmp_path / "a"
    assert cli.main(["train", "--steps", "40", "--out", str(out), "--optimizer", "sgd", "--lr", "0.001"]) == 0
    text = capsys.readouterr().out
    assert "NOT solved: the task counts as solved at 95% accuracy" in text
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert rows[0] == "update,loss,accuracy,seconds" and len(rows) == 21 and rows[-1].startswith("40,")
    first = fastrnn.load(out / "params.npz")
    assert cli.main(["train", "--resume", str(out / "params.npz"), "--steps", "400", "--out", str(tmp_path / "b"),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["solved"] is True and result["final_accuracy"] >= 0.95
    second = fastrnn.load(tmp_path / "b" / "params.npz")
    assert second.n_hidden == first.n_hidden and not np.array_equal(second.W_rec, first.W_rec)
    assert cli.main(["eval", "--params", str(tmp_path / "b" / "params.npz"), "--task", "parity", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["accuracy"] >= 0.95 and scored["solved"] is True and scored["loss"] > 0
    assert cli.main(["eval", "--params", str(out / "params.npz"), "--task", "adding"]) == 2
    assert "task 'adding' needs" in capsys.readouterr().err


def test_json_output_never_holds_nan():
    assert cli._json_number(float("nan")) is None and cli._json_number(0.5) == 0.5


def test_ctrl_c_saves_the_work_so_far(tmp_path):
    import signal
    import time
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "train", "--steps", "1000000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / ".").exists():
        time.sleep(0.1)
    time.sleep(4.0)                                  # past import and compilation, into training
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "saved the parameters to" in stderr
    net = fastrnn.load(out / "params.npz")
    assert net.n_hidden == 16
    assert (out / "history.csv").read_text().startswith("update,loss,accuracy,seconds")


FLAG_VALUES = {   # flag -> bad values of each kind that applies (wrong type, NaN/inf, negative, zero, huge)
    "--steps": ["x", "nan", "-3", "0", "1.5"],
    "--hidden": ["x", "-1", "0", "10000000"],
    "--lr": ["x", "nan", "inf", "-0.1", "0"],
    "--batch": ["x", "-2", "0", "1e3"],
    "--length": ["x", "-1", "0"],
    "--truncation": ["x", "-1", "0"],
    "--clip": ["x", "nan", "-inf", "0"],
    "--seed": ["x", "-1", "1.5"],
    "--threads": ["x", "-1", "0", "100000"],
    "--task": ["", "xor"],
    "--cell": ["gru2"],
    "--algorithm": ["adam"],
    "--optimizer": ["rmsprop"],
}
FLAG_CASES = [(flag, value) for flag, values in FLAG_VALUES.items() for value in values]


@pytest.mark.parametrize("flag,value", FLAG_CASES, ids=[f"{f}={v}" for f, v in FLAG_CASES])
def test_every_train_flag_rejects_bad_values(flag, value, tmp_path, capsys):
    extra = ["--algorithm", "tbptt"] if flag == "--truncation" else []
    try:
        code = cli.main(["train", flag, value, "--steps", "2", "--out", str(tmp_path)] + extra
                        if flag != "--steps" else ["train", flag, value, "--out", str(tmp_path)])
    except SystemExit as exc:
        code = exc.code
    fastrnn.set_threads(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (flag, value, err)
    assert len(err) == 1 and "error" in err[0], err
    assert "Traceback" not in "\n".join(err)


EVAL_CASES = [("--batch", "0"), ("--batch", "x"), ("--length", "-1"), ("--seed", "-5"), ("--task", "nope"),
              ("--params", "/proc/version")]


@pytest.mark.parametrize("flag,value", EVAL_CASES, ids=[f"{f}={v}" for f, v in EVAL_CASES])
def test_every_eval_flag_rejects_bad_values(flag, value, tmp_path, capsys):
    assert cli.main(["train", "--steps", "2", "--json", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    args = {"--params": str(tmp_path / "params.npz"), flag: value}
    try:
        code = cli.main(["eval"] + [a for kv in args.items() for a in kv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "error" in err[0], err


@pytest.mark.parametrize("args", [["--algorithm", "online-rtrl"], ["--cell", "gru", "--task", "reber"]],
                         ids=["parity-online-rtrl", "reber-gru"])
def test_default_runs_solve_their_task(args, tmp_path, capsys):
    assert cli.main(["train", "--json", "--out", str(tmp_path)] + args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["solved"] is True and result["final_accuracy"] >= result["success_threshold"], result
