"""The README's demo table as a committed result: ``bioflow.demo.run`` plus provenance.

Runs the leave-one-timepoint-out demo (four CFM variants and the no-motion / McCann
baselines on the built-in simulated differentiation data) and prints its metrics as JSON,
with the git commit and the exact command, so that the figures quoted in README.md can be
checked against a committed file (``tests/test_docs_figures.py``); ``--figure`` copies the
trajectories plot (the README's figure).

    PYTHONPATH=. nice -n 10 python benchmarks/demo.py --out benchmarks/results/demo.json \\
        --figure docs/_static/demo_trajectories.png
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--n-cells", type=int, default=400)
    p.add_argument("--max-steps", type=int, default=600)
    p.add_argument("--default-steps", type=int, default=8000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figure", default=None, help="copy the trajectories plot to this file")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from bioflow.demo import run

    with tempfile.TemporaryDirectory() as tmp:
        metrics = run(
            tmp,
            n_cells_per_time=a.n_cells,
            max_steps=a.max_steps,
            default_steps=a.default_steps,
            progress_bar=False,
        )
        if a.figure:
            shutil.copyfile(f"{tmp}/trajectories.png", a.figure)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "command": "python " + shlex.join(["benchmarks/demo.py", *(argv or sys.argv[1:])]),
        "commit": commit,
        "threads": a.threads,
        **metrics,
    }
    text = json.dumps(result, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    # the demo prints its table on stdout; keep stdout for the JSON alone
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    out = main()
    sys.stdout = real_stdout
    print(json.dumps(out, indent=1))
