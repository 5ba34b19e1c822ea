"""The README's task table: accuracy and time of each task's default run on this machine, and
(with --all) whether every algorithm and cell reaches the task's success threshold with its
defaults.

    python bench/task_table.py                 # prints the table
    python bench/task_table.py --readme        # also writes the "default run" column of README.md
    python bench/task_table.py --all           # every task x algorithm x cell (takes a while)
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys

from fastrnn import tasks

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
ALGORITHMS = ("bptt", "tbptt", "rtrl", "online-rtrl")
CELLS = ("rnn", "lstm")


def run(task, algorithm="bptt", cell="rnn"):
    """One default run through the command line, as a user would start it."""
    cmd = [sys.executable, "-m", "fastrnn", "train", "--task", task, "--algorithm", algorithm, "--cell", cell,
           "--json", "--out", str(pathlib.Path("/tmp") / f"fastrnn-table-{task}-{algorithm}-{cell}")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cell_text(result):
    if "error" in result:
        return f"error: {result['error']}"
    acc = result["final_accuracy"]
    mark = "solved" if result["solved"] else "NOT solved"
    return f"{100 * acc:.1f}% in {result['seconds']:.1f} s ({mark})" if acc is not None else "no accuracy"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the default-run column of README.md")
    parser.add_argument("--all", action="store_true", help="every algorithm and cell, not only the default")
    args = parser.parse_args(argv)
    defaults = {}
    for name in tasks.TASKS:
        defaults[name] = run(name)
        print(f"| `{name}` | {cell_text(defaults[name])} |", flush=True)
    if args.readme:
        text = README.read_text(encoding="utf-8")
        for name, result in defaults.items():
            pattern = re.compile(rf"^(\| `{re.escape(name)}` \|[^\n]*\|[^\n]*\|)[^\n]*\|$", re.M)
            text, count = pattern.subn(lambda m: f"{m.group(1)} {cell_text(result)} |", text)
            if count != 1:
                raise SystemExit(f"README.md has no single table row for task {name!r}")
        README.write_text(text, encoding="utf-8")
        print("README.md: task table written")
    if args.all:
        print("\n| task | " + " | ".join(f"{c} {a}" for c in CELLS for a in ALGORITHMS) + " |")
        print("| --- | " + " | ".join("---" for _ in CELLS for _ in ALGORITHMS) + " |")
        for name in tasks.TASKS:
            cells = [cell_text(run(name, a, c)) for c in CELLS for a in ALGORITHMS]
            print(f"| `{name}` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
