"""Learning curves of MFM vs FM (vs CGFM) on the reference letters split; prints JSON.

The models are trained side by side in one plain loop (no Lightning; one optimiser step of
each method in turn, so that load on a shared CPU hits them alike) on the same batches as
:func:`bioflow.tl.fit_meta_flow` draws (:class:`~bioflow.data.populations.PopulationBatchDataset`,
encoder graphs cached), and evaluated on the held-out populations at every step count of
``--eval-at``: W1 (max 1000 points, as ``benchmarks/meta_letters.py``) on the X
(validation) and Y (test) letters and on ``--train-eval`` training populations.

For MFM it also reports whether the field uses the population context: the test W1 when
each held-out population is pushed with the embedding of *another* letter (a training
population's), and the spread of the embeddings (mean pairwise cosine similarity of the
training populations' embeddings, within and across letters).

Run (single thread, niced, on a shared CPU)::

    PYTHONPATH=. nice -n 10 python benchmarks/meta_curve.py --eval-at 500 1000 2000 > out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

import bioflow
from bioflow.data.population_set import read_populations
from bioflow.data.populations import PopulationBatchDataset
from bioflow.metrics import wasserstein
from bioflow.models import MetaFlowMatching


def build(args):
    a = bioflow.datasets.letters(n_rotations=args.rotations, seed=args.data_seed)
    split = a.obs.groupby("population", observed=True)["split"].first()
    groups = {s: sorted(split.index[split == s]) for s in ("val", "test")}
    held = groups["val"] + groups["test"]
    ps = read_populations(
        a,
        "population",
        "state",
        "source",
        use_rep="X_coords",
        exclude_populations=held,
        pair_key="pair",
    )
    full = read_populations(a, "population", "state", "source", use_rep="X_coords")
    by_pop = {pr.population: pr for pr in full.problems}
    rng = np.random.default_rng(0)
    train = sorted(rng.choice(sorted(ps.populations), args.train_eval, replace=False))
    groups["train"] = list(train)
    return ps, full.x, by_pop, groups


def model_for(method, ps, args):
    kw = dict(
        k=args.k,
        width=args.width,
        depth=args.depth,
        embed_dim=args.embed_dim,
        encoder_hidden=tuple(args.encoder_hidden),
        embed_cells=max(args.embed_cells, args.k + 1),
        n_fourier=args.n_fourier,
        fourier_scale=args.fourier_scale,
        time_dim=args.time_dim,
        solver_steps=20,
        coupling=args.coupling,
    )
    if args.encoder_head is not None:
        kw["encoder_head"] = args.encoder_head == "yes"
    if args.encoder_activation is not None:
        kw["encoder_activation"] = args.encoder_activation
    if args.encoder_final_activation is not None:
        kw["encoder_final_activation"] = args.encoder_final_activation == "yes"
    return MetaFlowMatching(
        dim=ps.dim,
        method=method,
        n_populations=len(ps.populations),
        data_spec=ps.data_spec(),
        **kw,
    )


def evaluate(model, x, by_pop, groups, pop_index, args, donor=None):
    """Mean W1 per group; ``donor``: embed each population with these cells instead."""
    out = {}
    model.eval()
    for g, pops in groups.items():
        w = []
        for j, p in enumerate(pops):
            pr = by_pop[p]
            src = x[pr.source]
            x0 = torch.from_numpy(src)
            if len(src) > args.max_points:  # W1 subsamples to max_points anyway
                pick = np.random.default_rng(j).choice(len(src), args.max_points, replace=False)
                x0 = torch.from_numpy(src[pick])
            kw = {"embed_from": torch.from_numpy(src)} if model.method == "mfm" else {}
            if model.method == "cgfm" and p in pop_index:
                kw["population"] = pop_index[p]
            if donor is not None:
                kw["embed_from"] = donor[j % len(donor)]
            pred = model.predict(x0, **kw).numpy()
            w.append(wasserstein(pred, x[pr.target], 1, max_points=args.max_points, seed=0))
        out[g] = round(float(np.mean(w)), 4)
    model.train()
    return out


@torch.no_grad()
def embedding_spread(model, x, by_pop, pops):
    labels = [p.split("_")[0] for p in pops]
    h = model.embed([torch.from_numpy(x[by_pop[p].source]) for p in pops], seed=0)
    cos = (h @ h.T).numpy()
    same = np.array([[a == b for b in labels] for a in labels])
    off = ~np.eye(len(pops), dtype=bool)
    return {
        "cos_same_letter": round(float(cos[same & off].mean()), 4),
        "cos_other_letter": round(float(cos[~same].mean()), 4),
        "cos_min": round(float(cos.min()), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["mfm", "fm"])
    p.add_argument("--eval-at", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--rotations", type=int, default=10)
    p.add_argument("--populations-per-step", type=int, default=8)
    p.add_argument("--cells", type=int, default=128)
    p.add_argument("--embed-cells", type=int, default=128)
    p.add_argument("--train-eval", type=int, default=10)
    p.add_argument("--max-points", type=int, default=1000)
    p.add_argument("--coupling", default="paired", choices=["independent", "paired", "exact"])
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--embed-dim", type=int, default=16)
    p.add_argument("--encoder-hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--encoder-head", choices=["yes", "no"], default=None)
    p.add_argument("--encoder-activation", default=None)
    p.add_argument("--encoder-final-activation", choices=["yes", "no"], default=None)
    p.add_argument("--n-fourier", type=int, default=16)
    p.add_argument("--fourier-scale", type=float, default=1.0)
    p.add_argument("--time-dim", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    t_start = time.time()
    ps, x, by_pop, groups = build(args)
    pop_index = {name: i for i, name in enumerate(ps.populations)}
    total = max(args.eval_at)
    runs = {}
    for m in args.methods:
        torch.manual_seed(args.seed)
        model = model_for(m, ps, args)
        ds = PopulationBatchDataset(
            ps,
            args.populations_per_step,
            args.cells,
            max(args.embed_cells, args.k + 1),
            10**9,
            args.seed,
            knn_k=args.k if m == "mfm" else None,
        )
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        sched = (
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
            if args.lr_schedule == "cosine"
            else None
        )
        runs[m] = {"model": model, "opt": opt, "sched": sched, "it": iter(ds), "s": 0.0}
    curve = {m: [] for m in args.methods}
    for step in range(1, total + 1):
        for r in runs.values():
            batch = next(r["it"])
            t = time.perf_counter()
            loss = r["model"].compute_loss(batch).loss
            r["opt"].zero_grad()
            loss.backward()
            r["opt"].step()
            if r["sched"] is not None:
                r["sched"].step()
            r["s"] += time.perf_counter() - t
        if step in args.eval_at:
            for m, r in runs.items():
                row = {"step": step, "train_s": round(r["s"], 1)}
                row["w1"] = evaluate(r["model"], x, by_pop, groups, pop_index, args)
                if m == "mfm":
                    donors = [torch.from_numpy(x[by_pop[q].source]) for q in groups["train"]]
                    row["w1_other_embedding"] = evaluate(
                        r["model"],
                        x,
                        by_pop,
                        {"test": groups["test"]},
                        pop_index,
                        args,
                        donor=donors,
                    )["test"]
                    row["embedding"] = embedding_spread(
                        r["model"], x, by_pop, sorted(ps.populations)[::4]
                    )
                curve[m].append(row)
                print(f"[curve] {m} {json.dumps(row)}", file=sys.stderr, flush=True)
    no_motion = {}
    for g, pops in groups.items():
        no_motion[g] = round(
            float(
                np.mean(
                    [
                        wasserstein(
                            x[by_pop[q].source],
                            x[by_pop[q].target],
                            1,
                            max_points=args.max_points,
                            seed=0,
                        )
                        for q in pops
                    ]
                )
            ),
            4,
        )
    report = {
        "commit": commit,
        "command": "PYTHONPATH=. python " + " ".join(sys.argv),
        "settings": vars(args),
        "cpu": f"{os.cpu_count()} cores shared with other jobs, torch threads={args.threads}",
        "no_motion_w1": no_motion,
        "curve": curve,
        "wall_s": round(time.time() - t_start, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
