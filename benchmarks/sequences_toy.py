"""Dirichlet-FM toy task: toy KL of the Gumbel-Softmax flow's ODE sampler against the paper.

For each alphabet size K, random target laws per position (``datasets.categorical_toy``,
length 4), a small ``SequenceFlow`` trained with cross-entropy for a few hundred steps, and
``core.solvers.gumbel_softmax_ode`` at 10 / 50 / 200 steps.  Beside it, in the same run:

* ``kl_exact_ode``: the same ODE with the exact posterior ``P(k | x_t)`` plugged in (no
  training error): what the sampler itself costs;
* ``kl_iid_floor``: an i.i.d. sample of the target of the same size (the plug-in KL floor,
  about ``(K - 1) / (2 n)``);
* ``kl_training_data``: the training sequences themselves (what the network sees);
* ``paper_kl``: GSFM's reported value (Tang et al. 2025, Table 6).

KL is ``metrics.marginal_kl``: mean over positions of KL(generated letters || target).

    nice -n 10 python -m benchmarks.sequences_toy --out benchmarks/results/sequences_toy.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import subprocess
import sys
import time

import numpy as np
import torch

import bioflow
from bioflow.core.solvers import gumbel_softmax_ode
from bioflow.data.sequences import encode
from bioflow.metrics import marginal_kl
from bioflow.models import SequenceFlow

PAPER_KL = {
    20: 0.029,
    40: 0.027,
    60: 0.025,
    80: 0.027,
    100: 0.030,
    120: 0.029,
    140: 0.035,
    160: 0.038,
    512: 0.048,
}


def train(model: SequenceFlow, tokens: torch.Tensor, steps: int, batch: int, lr: float, seed: int):
    """Plain AdamW + cosine loop on ``model.compute_loss`` (no Lightning overhead)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, tokens.shape[0], (batch,), generator=gen)
        loss = model.compute_loss({"tokens": tokens[idx]}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return float(loss.detach())


def network_posterior(model: SequenceFlow):
    def post(t, x):
        return torch.softmax(model(t.expand(x.shape[0]), x), -1)

    return post


def exact_posterior(path, log_pi: torch.Tensor):
    def post(t, x):
        z = path.logits_from_x(x, t)
        return torch.softmax(path.posterior_logits(z, t, log_pi), -1)

    return post


@torch.no_grad()
def sample_kl(post, path, probs, n, L, K, steps, seed, chunk=4096):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, chunk):
        x0 = path.prior_sample(min(chunk, n - s), L, K, generator=gen)
        out.append(gumbel_softmax_ode(post, path, x0, steps=steps).argmax(-1))
    return marginal_kl(torch.cat(out).numpy(), probs)


def run_k(K, seed, a):
    torch.set_num_threads(a.threads)
    # plug-in KL of n draws is biased by about (K - 1) / (2 n): grow n with K
    n_tr, n_ge = max(a.n_train, 100 * K), max(a.n_gen, 20 * K)
    seqs, probs, alphabet = bioflow.datasets.categorical_toy(K, n=n_tr, seed=seed)
    tokens = torch.as_tensor(encode(seqs, alphabet), dtype=torch.long)
    L = tokens.shape[1]
    torch.manual_seed(seed)
    model = SequenceFlow(alphabet, L, hidden=a.hidden, n_layers=a.n_layers)
    t0 = time.time()
    loss = train(model, tokens, a.train_steps, a.batch, a.lr, seed)
    fit_s = time.time() - t0
    rng = np.random.default_rng(seed + 7)
    iid = np.stack([rng.choice(K, n_ge, p=probs[i]) for i in range(L)], 1)
    row = dict(
        K=K,
        seed=seed,
        n_train=n_tr,
        n_gen=n_ge,
        paper_kl=PAPER_KL.get(K),
        kl_iid_floor=marginal_kl(iid, probs),
        kl_training_data=marginal_kl(tokens.numpy(), probs),
        final_ce=round(loss, 4),
        fit_s=round(fit_s, 1),
    )
    log_pi = torch.tensor(np.log(probs), dtype=torch.float32)
    for steps in a.steps_for_k.get(K, a.sample_steps):
        t0 = time.time()
        row[f"kl_gsfm_{steps}"] = sample_kl(
            network_posterior(model), model.path, probs, n_ge, L, K, steps, seed + 1
        )
        row[f"seqs_per_s_{steps}"] = round(n_ge / (time.time() - t0), 1)
        if steps in a.exact_steps:
            row[f"kl_exact_ode_{steps}"] = sample_kl(
                exact_posterior(model.path, log_pi), model.path, probs, n_ge, L, K, steps, seed + 1
            )
    return row


def summarize(rows):
    """Seed means per K, the worse seed per step count and whether it meets the paper."""
    summary = []
    for K in sorted({r["K"] for r in rows}):
        rs = [r for r in rows if r["K"] == K]
        s = dict(K=K, paper_kl=PAPER_KL.get(K))
        for key in rs[0]:
            if key.startswith(("kl_", "seqs_per_s_", "fit_s")):
                s[key] = float(np.mean([r[key] for r in rs]))
        for key in [k for k in rs[0] if k.startswith("kl_gsfm_")]:
            st = key.removeprefix("kl_gsfm_")
            worst = max(r[key] for r in rs)  # the worse seed
            s[f"worst_seed_kl_gsfm_{st}"] = worst
            s[f"meets_paper_{st}"] = None if s["paper_kl"] is None else bool(worst <= s["paper_kl"])
        summary.append(s)
    return summary


def combine(files, out=None):
    """Merge the rows of several result files (runs split for CPU time) into one file.

    A file is one run (``command``, ``commit``, ...) or an earlier combined file (its
    ``runs``; a row without ``run`` belongs to the first of its runs whose ``ks`` holds its
    K).  A (K, seed) row of a later file replaces an earlier one; every row keeps the index
    of its run in ``runs``, and runs left without rows are dropped.
    """
    runs, rows = [], {}
    keys = ("command", "commit", "wall_s", "settings")
    for f in files:
        with open(f) as fh:
            part = json.load(fh)
        part_runs = part["runs"] if "runs" in part else [{k: part[k] for k in keys}]
        base = len(runs)
        runs += part_runs
        for r in part["rows"]:
            if "run" in r and "runs" in part:
                i = base + r["run"]
            elif "runs" in part:
                i = base + next(
                    j
                    for j, pr in enumerate(part_runs)
                    if str(r["K"]) in str(pr["settings"]["ks"]).split(",")
                )
            else:
                i = base
            rows[(r["K"], r["seed"])] = dict(r, run=i)
    used = sorted({r["run"] for r in rows.values()})
    renum = {old: new for new, old in enumerate(used)}
    rows = sorted(
        (dict(r, run=renum[r["run"]]) for r in rows.values()), key=lambda r: (r["K"], r["seed"])
    )
    res = dict(
        runs=[runs[i] for i in used],
        device="cpu",
        threads=1,
        python=platform.python_version(),
        torch=torch.__version__,
        summary=summarize(rows),
        rows=rows,
    )
    text = json.dumps(res, indent=1)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
    return res


def _run(job):
    return run_k(*job)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="20,40,60,80,100,120,140,160,512")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--sample-steps", default="10,50,200")
    ap.add_argument(
        "--steps-for-k",
        default="",
        help="per-K override of --sample-steps, e.g. '512:10+50' (CPU budget)",
    )
    ap.add_argument("--exact-steps", default="10,50,200", help="steps of the exact-posterior ODE")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-gen", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2, help="(K, seed) runs in parallel")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--combine", nargs="+", default=None, help="merge result files into --out")
    a = ap.parse_args(argv)
    if a.combine:
        combine(a.combine, a.out)
        return
    a.sample_steps = [int(s) for s in a.sample_steps.split(",")]
    a.exact_steps = [int(s) for s in a.exact_steps.split(",")]
    a.steps_for_k = {
        int(k): [int(s) for s in v.split("+")]
        for k, v in (item.split(":") for item in a.steps_for_k.split(",") if item)
    }
    torch.set_num_threads(a.threads)
    t_start = time.time()
    commit = subprocess.run(  # the code that runs: recorded before anything can change
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    jobs = [(int(k), int(s), a) for k in a.ks.split(",") for s in a.seeds.split(",")]
    jobs.sort(key=lambda j: -j[0])  # largest K first: the longest runs start early
    rows = []
    with multiprocessing.get_context("spawn").Pool(a.workers) as pool:
        for row in pool.imap_unordered(_run, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    rows.sort(key=lambda r: (r["K"], r["seed"]))
    summary = summarize(rows)
    res = dict(
        command="python -m benchmarks.sequences_toy "
        + " ".join(sys.argv[1:] if argv is None else argv),
        commit=commit,
        device="cpu",
        threads=a.threads,
        python=platform.python_version(),
        torch=torch.__version__,
        settings={k: v for k, v in vars(a).items() if k != "out"},
        wall_s=round(time.time() - t_start, 1),
        summary=summary,
        rows=rows,
    )
    text = json.dumps(
        res, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o
    )
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
