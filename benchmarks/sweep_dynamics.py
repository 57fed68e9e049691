"""Sweep of the cell-dynamics defaults on two simulations, beside the McCann interpolant.

For each configuration (method, interpolant, sigma, width/depth, time embedding, learning
rate schedule, steps, batch, solver) run leave-one-timepoint-out on
``simulated_differentiation`` (built-in; 5 days, two-way branch) and
``simulated_cycle_branching`` (6 days, a cycle then a three-way branch), and report the
mean W1 over the interior days, the endpoint W1 (first day pushed to the last) and the
share of off-data endpoints, with the McCann and no-motion baselines of the same data.

Stage ``screen`` runs every configuration with one seed; stage ``confirm`` runs the named
configurations (``--configs``) with several seeds.  Prints JSON (one line per run to
stderr, the whole result to stdout) with the git commit and the command.

Run: ``nice -n 10 python benchmarks/sweep_dynamics.py --stage screen``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

import bioflow

# The screen varies one factor at a time around BASE (the candidate default).
BASE = dict(
    method="ot-cfm",
    interpolant="linear",
    sigma=0.1,
    hidden=(128, 128, 128),
    time_dim=16,
    lr=1e-3,
    lr_schedule="cosine",
    max_steps=2000,
    batch_size=128,
    solver="rk4",
    solver_steps=20,
)

CONFIGS = {
    "base": {},
    "spline": dict(interpolant="spline"),
    "lr_constant": dict(lr_schedule="constant"),
    "lr_3e-3": dict(lr=3e-3),
    "steps_1000": dict(max_steps=1000),
    "lr_3e-3_steps_4000": dict(lr=3e-3, max_steps=4000),
    "spline_lr_3e-3_steps_4000": dict(interpolant="spline", lr=3e-3, max_steps=4000),
    "spline_lr_3e-3_steps_8000": dict(interpolant="spline", lr=3e-3, max_steps=8000),
    "steps_600_constant": dict(max_steps=600, lr_schedule="constant"),
    "sigma_0": dict(sigma=0.0),
    "sigma_0.2": dict(sigma=0.2),
    "w256x3": dict(hidden=(256,) * 3),
    "w128x2": dict(hidden=(128,) * 2),
    "w128x4": dict(hidden=(128,) * 4),
    "time_dim_32": dict(time_dim=32),
    "time_dim_8": dict(time_dim=8),
    "batch_256": dict(batch_size=256),
    "euler_20": dict(solver="euler"),
    "rk4_50": dict(solver_steps=50),
    "spline_steps_600_constant": dict(interpolant="spline", max_steps=600, lr_schedule="constant"),
    "sf2m_g0.3_sde": dict(method="sf2m", sigma=0.3, stochastic=True),
}

DATASETS = {
    "differentiation": lambda: bioflow.datasets.simulated_differentiation(
        n_cells_per_time=400, seed=0
    ),
    "cycle_branching": lambda: bioflow.datasets.simulated_cycle_branching(
        n_cells_per_time=300, seed=0
    ),
}


def run_config(adata, cfg: dict, seeds) -> dict:
    c = {**BASE, **cfg}
    stochastic = c.pop("stochastic", False)
    fit = {k: c.pop(k) for k in ("max_steps", "batch_size")}
    method = c.pop("method")
    t0 = time.process_time()
    df = bioflow.tl.evaluate_holdout(
        adata,
        time_key="time",
        use_rep="X_pca",
        methods=(method,),
        seeds=tuple(seeds),
        model_kwargs=c,
        stochastic=stochastic,
        enable_progress_bar=False,
        **fit,
    )
    cpu = time.process_time() - t0
    mdl = df[df.method == method]
    per_seed = mdl.groupby("seed")[["w1", "w1_end", "off_data"]].mean()
    # the baselines are fitted once (seed 0 in their rows), whatever the seeds
    base = df[df.method.isin(["mccann", "no-motion"])].groupby("method")["w1"].mean()
    return {
        "w1": round(float(per_seed["w1"].mean()), 4),
        "w1_seed_sd": round(float(per_seed["w1"].std(ddof=1)), 4) if len(seeds) > 1 else None,
        "w1_per_seed": [round(float(v), 4) for v in per_seed["w1"]],
        "w1_by_day": {
            str(k): round(float(v), 4) for k, v in mdl.groupby("held_out")["w1"].mean().items()
        },
        "w1_end": round(float(per_seed["w1_end"].mean()), 4),
        "off_data": round(float(per_seed["off_data"].mean()), 4),
        "mccann_w1": round(float(base["mccann"]), 4),
        "no_motion_w1": round(float(base["no-motion"]), 4),
        "cpu_s": round(cpu, 1),
    }


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stage", choices=["screen", "confirm"], default="screen")
    p.add_argument("--configs", nargs="*", default=None, help="names (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = args.seeds or ([0] if args.stage == "screen" else [0, 1, 2])
    names = args.configs or list(CONFIGS)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    out = {
        "commit": commit,
        "command": "python " + " ".join(sys.argv),
        "stage": args.stage,
        "seeds": seeds,
        "base": {k: list(v) if isinstance(v, tuple) else v for k, v in BASE.items()},
        "configs": {
            n: {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIGS[n].items()}
            for n in names
        },
        "results": {},
    }
    for dname in args.datasets:
        adata = DATASETS[dname]()
        out["results"][dname] = {}
        for name in names:
            res = run_config(adata, dict(CONFIGS[name]), seeds)
            out["results"][dname][name] = res
            print(
                json.dumps({"dataset": dname, "config": name, **res}), file=sys.stderr, flush=True
            )
    for dname, rows in out["results"].items():
        ranked = sorted(rows, key=lambda n: rows[n]["w1"])
        out.setdefault("ranking", {})[dname] = ranked
    names_both = [n for n in names if all(n in r for r in out["results"].values())]
    out["ranking_mean_ratio_to_mccann"] = sorted(
        names_both,
        key=lambda n: np.mean([r[n]["w1"] / r[n]["mccann_w1"] for r in out["results"].values()]),
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
