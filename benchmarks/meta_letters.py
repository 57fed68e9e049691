"""MFM vs FM vs CGFM on held-out populations; prints JSON.

Two tasks:

- ``letters``: denoise blurred letter glyphs; train on all letters but two, validate on
  one, test on the other (``--rotations`` populations each).
- ``response``: :func:`bioflow.datasets.population_response`, where each population's
  drug response is set by its composition; test on held-out populations.

Run: ``PYTHONPATH=. python benchmarks/meta_letters.py [--steps 1000]`` (minutes on 2 CPU
cores with the defaults).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import bioflow

METHODS = ("mfm", "fm", "cgfm")


def run(adata, keys, held_out, args, model_kwargs, seed):
    out = {}
    for method in METHODS:
        t = time.time()
        model = bioflow.tl.fit_meta_flow(
            adata,
            **keys,
            method=method,
            exclude_populations=held_out,
            max_steps=args.steps,
            populations_per_step=args.populations_per_step,
            cells_per_population=args.cells,
            seed=seed,
            model_kwargs=model_kwargs,
            enable_progress_bar=False,
        )
        fit_s = time.time() - t
        df = bioflow.tl.evaluate_populations(
            model, adata, populations=held_out, max_points=args.max_points, seed=seed
        )
        out[method] = {"fit_s": round(fit_s, 1), "tables": df}
    return out


def summarise(results, groups):
    """Mean metrics per method over each group of held-out populations."""
    summary = {}
    for method, res in results.items():
        df = res["tables"]
        summary[method] = {"fit_s": res["fit_s"]}
        for gname, pops in groups.items():
            for name, sub in (
                ("model", df[df.method == method]),
                ("no-motion", df[df.method == "no-motion"]),
            ):
                sel = sub[sub.population.isin(pops)]
                key = gname if name == "model" else f"{gname}_no_motion"
                if name == "no-motion" and method != METHODS[0]:
                    continue
                summary[method if name == "model" else "no-motion"] = summary.get(
                    method if name == "model" else "no-motion", {}
                )
                summary[method if name == "model" else "no-motion"][key] = {
                    m: round(float(sel[m].mean()), 4)
                    for m in ("w1", "w2", "mmd", "r")
                    if sel[m].notna().any()
                }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--letters", default="ABCDEFGHIJKL", help="letters; last two held out")
    p.add_argument("--rotations", type=int, default=6)
    p.add_argument("--points", type=int, default=400)
    p.add_argument("--populations", type=int, default=40, help="response task populations")
    p.add_argument("--held-out", type=int, default=8, help="response task held-out pops")
    p.add_argument("--populations-per-step", type=int, default=8)
    p.add_argument("--cells", type=int, default=128)
    p.add_argument("--max-points", type=int, default=1000)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="letters,response")
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model_kwargs = {
        "k": args.k,
        "width": 128,
        "depth": 3,
        "embed_dim": 16,
        "encoder_hidden": (64, 64),
        "embed_cells": 256,
        "n_fourier": 16,
        "solver_steps": 20,
        "lr": 1e-3,
    }
    report = {"settings": vars(args), "model_kwargs": model_kwargs}
    tasks = args.tasks.split(",")
    if "letters" in tasks:
        a = bioflow.datasets.letters(
            args.letters, n_rotations=args.rotations, n_points=args.points, seed=args.seed
        )
        val_letter, test_letter = args.letters[-2], args.letters[-1]
        val = [f"{val_letter}_{r}" for r in range(args.rotations)]
        test = [f"{test_letter}_{r}" for r in range(args.rotations)]
        keys = dict(
            population_key="population",
            source_key="state",
            source_value="source",
            use_rep="X_coords",
        )
        res = run(a, keys, val + test, args, model_kwargs, args.seed)
        report["letters"] = summarise(res, {"val": val, "test": test})
    if "response" in tasks:
        a = bioflow.datasets.population_response(args.populations, n_cells=300, seed=args.seed)
        held = [f"pop{i}" for i in range(args.populations - args.held_out, args.populations)]
        keys = dict(
            population_key="population",
            source_key="treatment",
            source_value="control",
            condition_key="treatment",
        )
        res = run(a, keys, held, args, model_kwargs, args.seed)
        report["response"] = summarise(res, {"test": held})
    checks = {}
    for task in ("letters", "response"):
        if task in report:
            r = report[task]
            for metric in ("w1", "mmd"):
                checks[f"{task}_mfm_best_{metric}"] = bool(
                    r["mfm"]["test"][metric]
                    < min(r["fm"]["test"][metric], r["cgfm"]["test"][metric])
                )
    report["mfm_beats_fm_and_cgfm_on_test"] = checks
    print(
        json.dumps(
            report, indent=1, default=lambda o: o if not isinstance(o, np.generic) else o.item()
        )
    )


if __name__ == "__main__":
    main()
