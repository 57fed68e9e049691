"""Sequence flows side by side on a task with known likelihood; STGFlow guidance curves.

Part ``markov``: the Markov chain + planted motif of
:func:`bioflow.datasets.markov_motif_sequences` (length 32, successor probability 0.7, TATAAT
in 30%).  Every method trains the same dilated CNN (hidden 64, 4 blocks, ~118k parameters)
for the same steps (batch 128, AdamW 2e-3, cosine) and samples at 10 / 50 / 200 steps:
bioflow's default (masked discrete flow matching, stratified jump sampler), masked DFM with
the plain jump sampler, uniform-source DFM, GSFM (every sampler the model offers), and the
peer: masked DFM of Meta's ``flow_matching`` (path, solver) on the same backbone.  Scores:
mean NLL under the exact law, k-mer L1 (3, 6) to the training set, motif share, per-position
KL to the exact marginals, uniqueness, novelty, train ms/step, sampled sequences/s.  Each
method draws ``--n-gen`` (4000) sequences, scored beside as many held-out ones: the motif
share of 1000 draws has a standard error of 0.0145 (0.007 at 4000), half the 0.03 margin
asked of it, so 1000 draws cannot tell a model that meets it from one that does not.  The
law's own motif share (``law_motif_share``, 200000 draws) is recorded beside them.

Part ``guidance``: STGFlow (target ``p(x) exp(gamma f(x))``) with a motif classifier on the
same task, per method and gamma; and, on protein-like sequences (a Markov chain over the 20
amino acids), a regressor of the hydrophobic fraction: gamma vs guided mean vs diversity.

    nice -n 10 python -m benchmarks.sequences --part markov --train-steps 10000 \
        --methods dfm-masked,peer,dfm-uniform,gsfm --jobs 2 \
        --out benchmarks/results/sequences_markov.json
    nice -n 10 python -m benchmarks.sequences --part guidance --train-steps 500 \
        --protein-train-steps 400 --clf-steps 150 --guide-gen 200 --guide-steps 32 \
        --motif-gammas 0,1,2 --protein-gammas 0,8,16,32,64 \
        --out benchmarks/results/sequences_guidance.json
    python -m benchmarks.sequences --table benchmarks/results/sequences_markov.json

(``--table``: the markdown table of a markov result, ranges over its seeds, as quoted in
``docs/guide/sequences.md``.)
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
from bioflow import metrics
from bioflow.data.sequences import encode, one_hot
from bioflow.datasets import MarkovMotif
from bioflow.nn.sequence import DilatedConvNet

QUIET = dict(enable_progress_bar=False, enable_model_summary=False)
HYDROPHOBIC = "AILMFVW"
PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def model_kwargs(a):
    return dict(backbone="cnn", hidden=a.hidden, n_layers=a.n_layers, lr=2e-3, lr_schedule="cosine")


def score(gen, train, law, probs, dt, n_gen):
    """Every figure of one (method, steps) run."""
    tok = encode(gen, law.alphabet)
    tr = encode(train, law.alphabet)
    K = len(law.alphabet)
    return dict(
        nll=metrics.negative_log_likelihood(gen, law.log_prob),
        kmer3_l1=metrics.kmer_distance(tok, tr, K, k=3),
        kmer6_l1=metrics.kmer_distance(tok, tr, K, k=6),
        motif_share=metrics.motif_share(gen, law.motif),
        position_kl=metrics.marginal_kl(tok, probs),
        uniqueness=metrics.uniqueness(gen),
        novelty=metrics.novelty(gen, train),
        seqs_per_s=round(n_gen / dt, 1),
    )


def fit_timed(train, a, seed, **kw):
    t0 = time.time()
    model = bioflow.tl.fit_sequence_flow(
        train,
        max_steps=a.train_steps,
        batch_size=128,
        seed=seed,
        model_kwargs=model_kwargs(a),
        **kw,
        **QUIET,
    )
    return model, 1000 * (time.time() - t0) / a.train_steps


class _PeerPosterior(torch.nn.Module):
    """The backbone as the peer's model wrapper: probabilities over K letters + the mask."""

    def __init__(self, net, K):
        super().__init__()
        self.net, self.K = net, K

    def forward(self, x, t, **extras):
        logits = self.net(t, torch.nn.functional.one_hot(x, self.K + 1).float())
        p = torch.softmax(logits, -1)
        return torch.nn.functional.pad(p, (0, 1))  # the mask token gets probability 0


def fit_peer(train, a, seed, K, L):
    """Meta's flow_matching: masked mixture path, the same backbone, cross-entropy."""
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler

    torch.manual_seed(seed)
    dil = tuple([1, 2, 4, 8, 16, 1][i % 6] for i in range(a.n_layers))
    net = DilatedConvNet(K + 1, K, hidden=a.hidden, dilations=dil)
    path = MixtureDiscreteProbPath(scheduler=PolynomialConvexScheduler(n=1.0))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.train_steps)
    tokens = torch.as_tensor(encode(train, "ACGT"))
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for _ in range(a.train_steps):
        x1 = tokens[torch.randint(0, len(tokens), (128,), generator=g)]
        x0 = torch.full_like(x1, K)
        t = torch.rand(len(x1), generator=g) * (1 - 1e-3)
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        logits = net(t, torch.nn.functional.one_hot(ps.x_t, K + 1).float())
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    ms = 1000 * (time.time() - t0) / a.train_steps
    net.eval()
    return (net, path), ms


def sample_peer(peer, n, steps, seed, K, L):
    from flow_matching.solver import MixtureDiscreteEulerSolver

    net, path = peer
    torch.manual_seed(seed)
    solver = MixtureDiscreteEulerSolver(
        model=_PeerPosterior(net, K), path=path, vocabulary_size=K + 1
    )
    x0 = torch.full((n, L), K, dtype=torch.long)
    with torch.no_grad():
        x = solver.sample(x_init=x0, step_size=None, time_grid=torch.linspace(0, 1, steps + 1))
    if (x == K).any():
        raise RuntimeError("the peer left masked positions")
    return ["".join("ACGT"[i] for i in row) for row in x.numpy()]


def markov(a):
    law = MarkovMotif(a.length)
    steps_list = [int(s) for s in a.sample_steps.split(",")]
    out = dict(
        task=repr(law),
        n_train=a.n_train,
        n_gen=a.n_gen,
        train_steps=a.train_steps,
        hidden=a.hidden,
        n_layers=a.n_layers,
        sample_steps=steps_list,
        law_motif_share=metrics.motif_share(law.sample(200000, seed=99)[0], law.motif),
        seeds=[],
    )
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(a.jobs, len(seeds))) as pool:
            out["seeds"] = pool.starmap(markov_seed, [(a, s) for s in seeds])
    else:
        out["seeds"] = [markov_seed(a, s) for s in seeds]
    return out


def markov_seed(a, seed):
    torch.set_num_threads(a.threads)
    law = MarkovMotif(a.length)
    probs = law.position_marginals()
    K, L = 4, a.length
    steps_list = [int(s) for s in a.sample_steps.split(",")]
    train, _ = law.sample(a.n_train, seed=seed)
    held, _ = law.sample(a.n_gen, seed=seed + 1000)
    t0 = time.time()
    rec = dict(seed=seed, data=score(held, train, law, probs, 1.0, a.n_gen), runs=[])
    rec["data"].pop("seqs_per_s")
    print(json.dumps(rec["data"]), flush=True)
    methods = [m for m in a.methods.split(",")]
    for method in methods:
        if method == "peer":
            model, ms = fit_peer(train, a, seed, K, L)
            samplers = ["euler (flow_matching)"]
        else:
            model, ms = fit_timed(train, a, seed, method=method)
            samplers = [s for s in model.samplers if s not in a.skip_samplers.split(",")]
        for sampler in samplers:
            for steps in steps_list:
                t1 = time.time()
                if method == "peer":
                    gen = sample_peer(model, a.n_gen, steps, seed + 7, K, L)
                else:
                    gen = bioflow.tl.sample_sequences(
                        model, a.n_gen, steps=steps, method=sampler, seed=seed + 7
                    )
                row = dict(
                    method=method, sampler=sampler, steps=steps, train_ms_per_step=round(ms, 1)
                )
                row.update(score(gen, train, law, probs, time.time() - t1, a.n_gen))
                row["default"] = method == "dfm-masked" and sampler == model.samplers[0]
                rec["runs"].append(row)
                print(json.dumps(row), flush=True)
    rec["wall_s"] = round(time.time() - t0, 1)
    return rec


def _guided_rows(model, clf_or_fn, gammas, a, label, target=1, **score_kw):
    rows = []
    for gamma in gammas:
        t0 = time.time()
        gen = bioflow.tl.sample_sequences(
            model,
            a.guide_gen,
            steps=a.guide_steps,
            seed=a.seeds_list[0] + 11,
            guidance=clf_or_fn if gamma > 0 else None,
            guidance_scale=gamma,
            guidance_target=target,
            n_guidance_samples=a.n_guidance_samples,
        )
        row = dict(
            method=label,
            guidance_scale=gamma,
            diversity=metrics.diversity(gen),
            uniqueness=metrics.uniqueness(gen),
            seqs_per_s=round(a.guide_gen / (time.time() - t0), 1),
        )
        row.update({k: f(gen) for k, f in score_kw.items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def guidance(a):
    seed = a.seeds_list[0]
    law = MarkovMotif(a.length)
    train, y = law.sample(a.n_train, seed=seed)
    held, hy = law.sample(2000, seed=seed + 1000)
    t0 = time.time()
    clf = bioflow.tl.fit_sequence_classifier(train, y, max_steps=a.clf_steps, seed=seed, **QUIET)
    with torch.no_grad():
        pred = clf(torch.as_tensor(one_hot(held)).float()).argmax(-1).numpy()
    positives = [s for s, t in zip(train, y, strict=True) if t]
    motif = dict(
        task=repr(law),
        clf_train_steps=a.clf_steps,
        clf_heldout_accuracy=float((pred == hy).mean()),
        data_motif_share=metrics.motif_share(held, law.motif),
        data_diversity=metrics.diversity(held),
        data_positive_diversity=metrics.diversity(positives),
        n_gen=a.guide_gen,
        sample_steps=a.guide_steps,
        n_guidance_samples=a.n_guidance_samples,
        runs=[],
    )
    gammas = [float(g) for g in a.motif_gammas.split(",")]
    for method in a.guide_methods.split(","):
        model, _ = fit_timed(train, a, seed, method=method)
        rows = _guided_rows(
            model,
            clf,
            gammas,
            a,
            method,
            motif_share=lambda g: metrics.motif_share(g, law.motif),
            nll=lambda g: metrics.negative_log_likelihood(g, law.log_prob),
        )
        for r in rows:
            r["diversity_rel_to_data"] = r["diversity"] / motif["data_diversity"] - 1
        motif["runs"] += rows
    motif["wall_s"] = round(time.time() - t0, 1)

    # protein-like sequences: a Markov chain over the 20 amino acids (each residue followed
    # by its successor in a fixed permutation w.p. 0.5); regressor of the hydrophobic fraction
    t0 = time.time()
    succ = PROTEIN[7:] + PROTEIN[:7]
    plaw = MarkovMotif(
        a.protein_length,
        successor_prob=0.5,
        successors=succ,
        motif="W",
        motif_prob=0.0,
        alphabet=PROTEIN,
    )
    ptrain, _ = plaw.sample(a.n_train, seed=seed)
    frac = np.array([sum(c in HYDROPHOBIC for c in s) / len(s) for s in ptrain], dtype=np.float32)
    reg = bioflow.tl.fit_sequence_classifier(
        ptrain,
        frac,
        alphabet="protein",
        task="regression",
        max_steps=a.clf_steps,
        seed=seed,
        **QUIET,
    )
    pheld, _ = plaw.sample(1000, seed=seed + 1000)
    hfrac = np.array([sum(c in HYDROPHOBIC for c in s) / len(s) for s in pheld])
    with torch.no_grad():
        hpred = reg(torch.as_tensor(one_hot(pheld, "protein")).float()).squeeze(-1).numpy()
    protein = dict(
        task=repr(plaw),
        hydrophobic=HYDROPHOBIC,
        regressor_heldout_r=float(np.corrcoef(hpred, hfrac)[0, 1]),
        data_hydrophobic_fraction=float(hfrac.mean()),
        data_diversity=metrics.diversity(pheld),
        runs=[],
    )
    pgammas = [float(g) for g in a.protein_gammas.split(",")]
    for method in a.guide_methods.split(","):
        pa = argparse.Namespace(**{**vars(a), "train_steps": a.protein_train_steps})
        model, _ = fit_timed(ptrain, pa, seed, method=method, alphabet="protein")
        protein["runs"] += _guided_rows(
            model,
            reg,
            pgammas,
            a,
            method,
            target=0,
            hydrophobic_fraction=lambda g: float(
                np.mean([sum(c in HYDROPHOBIC for c in s) / len(s) for s in g])
            ),
        )
    protein["wall_s"] = round(time.time() - t0, 1)
    return dict(motif=motif, protein=protein)


def _span(values, digits):
    lo, hi = min(values), max(values)
    return (
        f"{lo:.{digits}f}"
        if round(lo, digits) == round(hi, digits)
        else f"{lo:.{digits}f}-{hi:.{digits}f}"
    )


def markov_table(res):
    """The markdown table of a markov result: each figure as its range over the seeds."""
    cols = (("nll", 2), ("kmer3_l1", 3), ("kmer6_l1", 3), ("motif_share", 3))
    seeds = res["markov"]["seeds"]
    lines = [
        "| method (sampler) | steps | NLL | 3-mer L1 | 6-mer L1 | motif share |",
        "|---|---|---|---|---|---|",
        "| held-out data | - | "
        + " | ".join(_span([s["data"][c] for s in seeds], d) for c, d in cols)
        + " |",
    ]
    keys = []
    for row in seeds[0]["runs"]:
        if (row["method"], row["sampler"]) not in keys:
            keys.append((row["method"], row["sampler"]))
    for method, sampler in keys:
        for i, steps in enumerate(res["markov"]["sample_steps"]):
            rows = [
                r
                for s in seeds
                for r in s["runs"]
                if (r["method"], r["sampler"], r["steps"]) == (method, sampler, steps)
            ]
            name = f"{method} ({sampler})" + (", the default" if rows[0].get("default") else "")
            lines.append(
                f"| {name if i == 0 else ''} | {steps} | "
                + " | ".join(_span([r[c] for r in rows], d) for c, d in cols)
                + " |"
            )
    return "\n".join(lines)


def combine(files, out=None):
    """Merge ``--part markov`` result files (methods run separately for CPU time) into one.

    Each file becomes an entry of ``runs`` (its commit, command, wall time); every row of
    ``markov.seeds[*].runs`` gets ``run``, the index of the file it came from.
    """
    parts = []
    for f in files:
        with open(f) as fh:
            parts.append(json.load(fh))
    keep = ("task", "n_train", "n_gen", "train_steps", "hidden", "n_layers", "sample_steps")
    first = parts[0]["markov"]
    for p in parts[1:]:
        diff = [k for k in keep if p["markov"][k] != first[k]]
        if diff:
            raise ValueError(f"the files differ in {diff}: they are not one protocol")
    seeds: dict[int, dict] = {}
    for i, p in enumerate(parts):
        for rec in p["markov"]["seeds"]:
            s = seeds.setdefault(rec["seed"], dict(seed=rec["seed"], data=rec["data"], runs=[]))
            s["runs"] += [dict(r, run=i) for r in rec["runs"]]
    res = dict(
        device=parts[0]["device"],
        threads=parts[0]["threads"],
        runs=[{k: p[k] for k in ("commit", "command", "wall_s")} for p in parts],
        markov=dict({k: first[k] for k in keep}, seeds=[seeds[k] for k in sorted(seeds)]),
    )
    text = json.dumps(res, indent=1)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("markov", "guidance", "all"), default="all")
    ap.add_argument("--methods", default="dfm-masked,dfm-uniform,gsfm,peer")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-gen", type=int, default=4000)
    ap.add_argument("--train-steps", type=int, default=1500)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--sample-steps", default="10,50,200")
    ap.add_argument(
        "--skip-samplers",
        default="renoise",
        help="samplers left out (GSFM's predict-and-renoise does not sample the joint law)",
    )
    ap.add_argument("--guide-methods", default="dfm-masked,gsfm")
    ap.add_argument("--guide-gen", type=int, default=300)
    ap.add_argument("--guide-steps", type=int, default=50)
    ap.add_argument("--clf-steps", type=int, default=300)
    ap.add_argument("--n-guidance-samples", type=int, default=8)
    ap.add_argument("--motif-gammas", default="0,1,2,4")
    ap.add_argument("--protein-length", type=int, default=24)
    ap.add_argument("--protein-train-steps", type=int, default=800)
    ap.add_argument("--protein-gammas", default="0,4,8,16,32,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    ap.add_argument("--out", default=None)
    ap.add_argument("--combine", nargs="+", default=None, help="merge markov files into --out")
    ap.add_argument("--table", default=None, help="print the markdown table of a markov result")
    a = ap.parse_args(argv)
    if a.table:
        with open(a.table) as fh:
            print(markov_table(json.load(fh)))
        return
    if a.combine:
        combine(a.combine, a.out)
        return
    a.seeds_list = [int(s) for s in a.seeds.split(",")]
    torch.set_num_threads(a.threads)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    res: dict = dict(
        device="cpu",
        threads=a.threads,
        commit=commit.strip(),
        command="python -m benchmarks.sequences " + " ".join(argv if argv else sys.argv[1:]),
    )
    t0 = time.time()
    if a.part in ("markov", "all"):
        res["markov"] = markov(a)
    if a.part in ("guidance", "all"):
        res["guidance"] = guidance(a)
    res["wall_s"] = round(time.time() - t0, 1)
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
