"""MFM vs FM vs CGFM vs no motion on held-out populations, several seeds; prints JSON.

Tasks:

- ``letters``: the reference implementation's letters protocol
  (:func:`bioflow.datasets.letters`): filled glyphs, 24 training letters x 10 rotations =
  240 populations, X (10 rotations) for validation, Y (10) for test; source = target +
  0.5 N(0, I), paired cells.
- ``response``: :func:`bioflow.datasets.population_response`, where each population's
  drug response is set by its composition; the last ``--held-out`` populations are tested.

For every task, method and seed the model is fitted and the held-out populations are
pushed through the flow; the table reports W1 / W2 / MMD / mean-shift errors per split
(mean +- sd over seeds), the no-motion baseline, fit wall time, and whether MFM beats
FM and CGFM by more than 2 sd (of the difference over seeds) and beats no motion.

``--speed`` measures ms per optimiser step of MFM and FM at equal field size on the
letters batches (no Lightning, one thread), encoder graphs cached as in training.

Run (single thread, niced, on a shared CPU)::

    PYTHONPATH=. nice -n 10 python benchmarks/meta_letters.py --seeds 0 1 2 > out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

import bioflow

METHODS = ("mfm", "fm", "cgfm")
METRICS = ("w1", "w2", "mmd", "mean_l2")


def letters_task(args, seed):
    a = bioflow.datasets.letters(n_rotations=args.rotations, seed=args.data_seed)
    split = a.obs.groupby("population", observed=True)["split"].first()
    groups = {s: sorted(split.index[split == s]) for s in ("val", "test")}
    keys = dict(
        population_key="population",
        source_key="state",
        source_value="source",
        use_rep="X_coords",
        coupling=args.coupling,
        pair_key="pair" if args.coupling == "paired" else None,
    )
    return a, keys, groups


def response_task(args, seed):
    a = bioflow.datasets.population_response(args.populations, n_cells=300, seed=args.data_seed)
    held = [f"pop{i}" for i in range(args.populations - args.held_out, args.populations)]
    keys = dict(
        population_key="population",
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
        coupling="exact" if args.coupling == "exact" else "independent",  # no pairs here
    )
    return a, keys, {"test": held}


def model_kwargs(args, task):
    kw = {
        "k": args.k,
        "width": args.width,
        "depth": args.depth,
        "embed_dim": args.embed_dim,
        "encoder_hidden": tuple(args.encoder_hidden),
        "embed_cells": args.embed_cells,
        "n_fourier": args.n_fourier,
        "fourier_scale": args.fourier_scale,
        "solver_steps": 20,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "training": args.training,
    }
    if args.settings == "reference" and task == "letters":
        from bioflow.models.meta import REFERENCE_LETTERS_SETTINGS

        kw.update({k: v for k, v in REFERENCE_LETTERS_SETTINGS.items() if k != "coupling"})
    return kw


def fit_and_eval(a, keys, groups, method, seed, args, task):
    held = [p for g in groups.values() for p in g]
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bioflow.tl.fit_meta_flow(
            a,
            **keys,
            method=method,
            exclude_populations=held,
            max_steps=args.steps,
            populations_per_step=args.populations_per_step,
            cells_per_population=args.cells,
            seed=seed,
            model_kwargs=model_kwargs(args, task),
            enable_progress_bar=False,
        )
    fit_s = time.time() - t
    df = bioflow.tl.evaluate_populations(
        model, a, populations=held, max_points=args.max_points, seed=seed
    )
    return fit_s, df


def summarise(values):
    v = np.asarray(values, dtype=float)
    return {
        "mean": round(float(v.mean()), 4),
        "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
        "per_seed": [round(float(x), 4) for x in v],
    }


def run_task(task, args):
    build = letters_task if task == "letters" else response_task
    a, keys, groups = build(args, args.data_seed)
    methods = tuple(args.methods)
    per = {m: {g: {k: [] for k in METRICS} for g in groups} for m in (*methods, "no-motion")}
    fit_s = {m: [] for m in methods}
    for seed in args.seeds:
        for method in methods:
            s, df = fit_and_eval(a, keys, groups, method, seed, args, task)
            fit_s[method].append(s)
            for g, pops in groups.items():
                for name in (method, "no-motion"):
                    if name == "no-motion" and method != methods[0]:
                        continue
                    sel = df[(df.method == name) & df.population.isin(pops)]
                    for k in METRICS:
                        per[name][g][k].append(float(sel[k].mean()))
            print(
                f"[{task}] seed {seed} {method}: fit {s:.0f}s, "
                + ", ".join(f"{g} w1 {per[method][g]['w1'][-1]:.4f}" for g in groups),
                file=sys.stderr,
                flush=True,
            )
    return task_summary(per, fit_s, groups, methods)


def task_summary(per, fit_s, groups, methods):
    """Mean +- sd over seeds of every metric, and the MFM-vs-baselines checks.

    ``per[method][group][metric]`` and ``fit_s[method]`` are per-seed lists.
    """
    out = {m: {g: {k: summarise(v) for k, v in d.items()} for g, d in per[m].items()} for m in per}
    for m in methods:
        out[m]["fit_s"] = summarise(fit_s[m])
    checks = {}
    for g in groups if set(METHODS) <= set(methods) else []:
        mfm = np.array(per["mfm"][g]["w1"])
        for other in ("fm", "cgfm"):
            diff = np.array(per[other][g]["w1"]) - mfm  # > 0: MFM better
            sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
            sd_pooled = (
                float(np.sqrt((np.var(mfm, ddof=1) + np.var(per[other][g]["w1"], ddof=1)) / 2))
                if len(mfm) > 1
                else 0.0
            )
            checks[f"{g}_mfm_vs_{other}_w1"] = {
                "mean_gain": round(float(diff.mean()), 4),
                "sd_of_gain": round(sd, 4),
                "pooled_sd": round(sd_pooled, 4),
                "beats_by_2sd": bool(diff.mean() > 2 * max(sd, sd_pooled)),
            }
        nm = np.array(per["no-motion"][g]["w1"])
        checks[f"{g}_mfm_beats_no_motion_w1"] = bool(mfm.mean() < nm.mean())
    out["checks"] = checks
    out["held_out"] = groups
    return out


def merge(paths):
    """One report from runs of the same settings on disjoint seeds (run side by side).

    The per-seed values of every run are concatenated in seed order and summarised again;
    the report keeps each run's commit and command.
    """
    runs = [json.load(open(p)) for p in paths]
    keep = ("seeds", "wall_s", "commit", "command", "cpu")
    base = {k: v for k, v in runs[0]["settings"].items() if k != "seeds"}
    for r in runs[1:]:
        other = {k: v for k, v in r["settings"].items() if k != "seeds"}
        if other != base:
            raise ValueError("runs to merge must share every setting but the seeds")
    seeds = [s for r in runs for s in r["settings"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs to merge must have disjoint seeds, got {seeds}")
    order = np.argsort(seeds)
    report = {
        "runs": [{k: r[k] if k != "seeds" else r["settings"]["seeds"] for k in keep} for r in runs],
        "settings": {**base, "seeds": sorted(seeds)},
    }
    tasks = [t for t in base["tasks"].split(",") if t]
    for task in tasks:
        first = runs[0][task]
        methods = tuple(m for m in base["methods"])
        groups = first["held_out"]
        per = {
            m: {
                g: {k: [v for r in runs for v in r[task][m][g][k]["per_seed"]] for k in METRICS}
                for g in groups
            }
            for m in (*methods, "no-motion")
        }
        per = {
            m: {g: {k: [v[i] for i in order] for k, v in d.items()} for g, d in pm.items()}
            for m, pm in per.items()
        }
        fit_s = {m: [v for r in runs for v in r[task][m]["fit_s"]["per_seed"]] for m in methods}
        fit_s = {m: [v[i] for i in order] for m, v in fit_s.items()}
        report[task] = task_summary(per, fit_s, groups, methods)
    return report


def speed(args):
    """ms per optimiser step, MFM vs FM, equal field, one thread, no Lightning."""
    from bioflow.data.populations import PopulationBatchDataset, read_populations
    from bioflow.models import MetaFlowMatching

    a = bioflow.datasets.letters(n_rotations=args.rotations, seed=args.data_seed)
    train = a[(a.obs["split"] == "train").to_numpy()]
    ps = read_populations(
        train, "population", "state", "source", use_rep="X_coords", pair_key="pair"
    )
    res, runs = {}, {}
    for method in ("fm", "mfm"):
        kw = model_kwargs(args, "letters")
        kw.pop("training")
        model = MetaFlowMatching(
            dim=2, method=method, data_spec=ps.data_spec(), coupling="paired", **kw
        )
        ds = PopulationBatchDataset(
            ps,
            args.populations_per_step,
            args.cells,
            kw["embed_cells"],
            10**9,
            0,
            knn_k=kw["k"] if method == "mfm" else None,
        )
        t0 = time.perf_counter()
        ds.embed_pool()
        setup = time.perf_counter() - t0
        it = iter(ds)
        batches = [next(it) for _ in range(args.speed_steps + 10)]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        runs[method] = (model, opt, batches, [])
        res[method] = {"graph_pool_setup_s": round(setup, 2) if method == "mfm" else 0.0}
    # interleave the two models' steps so that load on a shared CPU hits both alike
    for i in range(args.speed_steps + 10):
        for method in ("fm", "mfm"):
            model, opt, batches, times = runs[method]
            t = time.perf_counter()
            loss = model.compute_loss(batches[i]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 10:
                times.append(time.perf_counter() - t)
    for method in ("fm", "mfm"):
        times = runs[method][3]
        res[method]["ms_per_step_median"] = round(1e3 * float(np.median(times)), 2)
        res[method]["ms_per_step_mean"] = round(1e3 * float(np.mean(times)), 2)
    res["mfm_over_fm"] = round(
        res["mfm"]["ms_per_step_median"] / res["fm"]["ms_per_step_median"], 3
    )
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="letters,response")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rotations", type=int, default=10)
    p.add_argument("--populations", type=int, default=40, help="response task populations")
    p.add_argument("--held-out", type=int, default=8, help="response task held-out pops")
    p.add_argument("--populations-per-step", type=int, default=8)
    p.add_argument("--cells", type=int, default=128)
    p.add_argument("--max-points", type=int, default=1000)
    p.add_argument("--coupling", default="paired", choices=["independent", "paired", "exact"])
    p.add_argument("--training", default="joint", choices=["joint", "alternating"])
    p.add_argument("--settings", default="bioflow", choices=["bioflow", "reference"])
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--embed-dim", type=int, default=16)
    p.add_argument("--encoder-hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--embed-cells", type=int, default=128)
    p.add_argument("--n-fourier", type=int, default=16)
    p.add_argument("--fourier-scale", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--speed", action="store_true", help="also time MFM vs FM steps")
    p.add_argument("--speed-steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="merge the reports of runs on disjoint seeds (same settings) and exit",
    )
    args = p.parse_args()
    if args.merge:
        print(json.dumps(merge(args.merge), indent=1))
        return
    torch.set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    t0 = time.time()
    report = {
        "commit": commit,
        "command": "PYTHONPATH=. python " + " ".join(sys.argv),
        "settings": vars(args),
        "cpu": f"{os.cpu_count()} cores shared with other jobs, torch threads={args.threads}",
    }
    if args.speed:
        report["speed"] = speed(args)
    for task in [t for t in args.tasks.split(",") if t]:
        report[task] = run_task(task, args)
    report["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
