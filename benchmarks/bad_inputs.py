"""Census of the bad-input table of ``tests/test_bad_inputs.py``: how many fail clearly.

Each case runs in its own forked process (the tiny models and data are built once, before
forking), so a segfault, a hang or a silent success is counted instead of ending the run.
Outcomes:

- ``clear``: the expected exception type, with a message naming the fault (the table's
  pattern matches);
- ``vague``: the expected type, but the message does not name the fault;
- ``wrong_type``: another exception;
- ``no_error``: the call returned (silent success);
- ``crash``: the process died on a signal (e.g. a segfault);
- ``hang``: no answer within ``--timeout`` seconds.

Usage (prints JSON; ``--out`` also writes it)::

    nice -n 10 python benchmarks/bad_inputs.py --out benchmarks/results/bad_inputs_after.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_table():
    spec = importlib.util.spec_from_file_location(
        "bad_inputs_table", ROOT / "tests" / "test_bad_inputs.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _child(case, ctx, wfd: int) -> None:
    code, detail = 0, ""
    try:
        case.call(ctx)
        code, detail = 3, "returned normally"
    except BaseException as err:  # noqa: BLE001 - classifying every outcome is the point
        detail = f"{type(err).__name__}: {err}"[:300]
        if not isinstance(err, case.exc):
            code = 1
        elif not re.search(case.match, str(err)):
            code = 2
    os.write(wfd, detail.encode("utf-8", "replace"))
    os.close(wfd)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


OUTCOMES = {0: "clear", 1: "wrong_type", 2: "vague", 3: "no_error"}


def run_case(case, ctx, timeout: float) -> tuple[str, str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _child(case, ctx, w)
    os.close(w)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return "hang", f"no answer in {timeout:.0f} s"
        time.sleep(0.02)
    detail = b""
    while chunk := os.read(r, 4096):
        detail += chunk
    os.close(r)
    if os.WIFSIGNALED(status):
        return "crash", f"killed by signal {os.WTERMSIG(status)}"
    return OUTCOMES.get(os.WEXITSTATUS(status), "crash"), detail.decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--note", default="", help="free text recorded in the JSON")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    mod = _load_table()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mod.Ctx(tmp)
        rows = []
        for case in mod.CASES:
            outcome, detail = run_case(case, ctx, a.timeout)
            rows.append({"area": case.area, "id": case.id, "outcome": outcome, "detail": detail})
            print(
                f"{outcome:10s} {case.area}-{case.id}: {detail[:120]}", file=sys.stderr, flush=True
            )
    counts = {
        k: sum(r["outcome"] == k for r in rows)
        for k in ("clear", "vague", "wrong_type", "no_error", "crash", "hang")
    }
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    result = {
        "commit": commit + ("+uncommitted" if dirty else ""),
        "command": "python " + " ".join(sys.argv),
        "note": a.note,
        "n_cases": len(rows),
        "clear": counts["clear"],
        "other": len(rows) - counts["clear"],
        "outcomes": counts,
        "cases": rows,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
