"""Training throughput (steps/s) of OT-CFM against I-CFM on the best available device.

Runs ``bioflow.tl.fit_dynamics`` on a GPU when one is visible and on the CPU otherwise (the
JSON says which, and says so plainly when no GPU was available).  The two methods are
timed alternately, ``--reps`` times each, medians reported; the ratio shows what the
exact coupling costs once it is solved in the loader thread while the GPU runs the step.

Run: ``python benchmarks/gpu_throughput.py [--compile] [--precision bf16-mixed]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _timing import StepTimer, command, git_commit, machine  # noqa: E402

import bioflow  # noqa: E402


def steps_per_s(adata, method, args, batch):
    timer = StepTimer()
    bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        method=method,
        max_steps=args.steps,
        batch_size=batch,
        model_kwargs=dict(hidden=(args.width,) * 3),
        enable_progress_bar=False,
        accelerator=args.accelerator,
        compile=args.compile,
        precision=args.precision,
        callbacks=[timer],
    )
    return 1e3 / timer.ms_per_step(skip=min(20, args.steps // 4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="256,1024")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--cells-per-time", type=int, default=4000)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    args.accelerator = "gpu" if gpu else "cpu"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=args.cells_per_time, seed=0)
    report = {
        "commit": git_commit(),
        "command": command(),
        "machine": machine(),
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "note": None if gpu else "no GPU was available in this run: CPU figures only",
        "settings": {
            "dims": int(adata.obsm["X_pca"].shape[1]),
            "intervals": int(len(np.unique(adata.obs["time"])) - 1),
            "width": args.width,
            "steps": args.steps,
            "compile": args.compile,
            "precision": args.precision,
        },
        "steps_per_s": {},
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        res = {"i-cfm": [], "ot-cfm": []}
        for r in range(args.reps):
            for method in ("i-cfm", "ot-cfm") if r % 2 == 0 else ("ot-cfm", "i-cfm"):
                res[method].append(steps_per_s(adata, method, args, batch))
                print(f"batch {batch} {method}: {res[method][-1]:.1f} steps/s", file=sys.stderr)
        i, o = statistics.median(res["i-cfm"]), statistics.median(res["ot-cfm"])
        report["steps_per_s"][str(batch)] = {
            "i-cfm": round(i, 2),
            "ot-cfm": round(o, 2),
            "ratio_ot_step_over_i_step": round(i / o, 3),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
