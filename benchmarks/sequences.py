"""Gumbel-Softmax flow matching benchmarks; prints JSON.

1. Dirichlet-FM toy: KL(generated marginals || target) per K beside GSFM's reported values.
2. Motif design: motif share, diversity and k-mer spectrum distance with / without STG
   guidance, for both samplers; held-out accuracy of the guiding classifier; sequences per
   second.

    python -m benchmarks.sequences --part toy --out benchmarks/results/sequences_toy.json
    python -m benchmarks.sequences --part motif --out benchmarks/results/sequences_motif.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import bioflow
from bioflow import metrics
from bioflow.data.sequences import encode, one_hot
from bioflow.metrics import marginal_kl

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
QUIET = dict(enable_progress_bar=False)


def toy(ks, steps, n_train, n_gen, sample_steps, seed):
    rows = []
    for K in ks:
        # plug-in KL of N draws is biased by about (K - 1) / (2 N): grow N with K so that
        # the floor stays near 0.005 (the model sees N_train draws and we score N_gen more)
        n_tr, n_ge = max(n_train, 100 * K), max(n_gen, 100 * K)
        seqs, probs, alphabet = bioflow.datasets.categorical_toy(K, n=n_tr, seed=seed)
        t0 = time.time()
        model = bioflow.tl.fit_sequence_flow(
            seqs,
            alphabet=alphabet,
            max_steps=steps,
            batch_size=512,
            seed=seed,
            model_kwargs=dict(hidden=64, n_layers=2, lr=3e-3, lr_schedule="cosine"),
            **QUIET,
        )
        t_fit = time.time() - t0
        data_tok = encode(seqs, alphabet)
        # reference: KL of an i.i.d. sample of the same size (finite-sample floor)
        rng = np.random.default_rng(seed + 2)
        ref = np.stack([rng.choice(K, n_ge, p=probs[i]) for i in range(probs.shape[0])], 1)
        row = dict(
            K=K,
            n_train=n_tr,
            n_gen=n_ge,
            paper_kl=PAPER_KL.get(K),
            kl_exact_sample_floor=marginal_kl(ref, probs),
            fit_s=round(t_fit, 1),
        )
        for method in ("renoise", "euler"):
            t0 = time.time()
            g = torch.Generator().manual_seed(seed + 1)
            x = model.sample_simplex(n_ge, steps=sample_steps, generator=g, method=method)
            row[f"kl_{method}"] = marginal_kl(x.argmax(-1).numpy(), probs)
            row[f"seqs_per_s_{method}"] = round(n_ge / (time.time() - t0), 1)
        row["kl_training_data"] = marginal_kl(data_tok, probs)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def diversity(seqs, n_pairs=2000, seed=0):
    """Mean normalised Hamming distance between random pairs."""
    rng = np.random.default_rng(seed)
    a = np.array([list(s) for s in seqs])
    i, j = rng.integers(0, len(seqs), (2, n_pairs))
    keep = i != j
    return float((a[i[keep]] != a[j[keep]]).mean())


def kmer_distance(a, b, k=3):
    """L1 distance between the normalised k-mer spectra of two lists of DNA strings."""
    return metrics.kmer_distance(encode(a, "dna"), encode(b, "dna"), 4, k=k)


def motif(a, motif_="TATAAT"):
    """Motif share / diversity / 3-mer distance per (sampler, guidance scale) run."""
    seqs, y = bioflow.datasets.motif_sequences(
        a.motif_train, length=a.length, motif=motif_, motif_fraction=0.3, seed=a.seed
    )
    t0 = time.time()
    model = bioflow.tl.fit_sequence_flow(
        seqs,
        max_steps=a.motif_steps,
        seed=a.seed,
        model_kwargs=dict(hidden=64, n_layers=4, lr=2e-3, lr_schedule="cosine"),
        **QUIET,
    )
    fit_s = time.time() - t0
    t0 = time.time()
    clf = bioflow.tl.fit_sequence_classifier(seqs, y, max_steps=a.clf_steps, seed=a.seed, **QUIET)
    clf_fit_s = time.time() - t0
    # the classifier is the guide: check it on held-out sequences of the same law
    hs, hy = bioflow.datasets.motif_sequences(
        2000, length=a.length, motif=motif_, motif_fraction=0.3, seed=a.seed + 1
    )
    with torch.no_grad():
        pred = clf(torch.as_tensor(one_hot(hs)).float()).argmax(-1).numpy()
    positives = [s for s, t in zip(seqs, y, strict=True) if t]
    out = dict(
        motif=motif_,
        length=a.length,
        n_train=a.motif_train,
        flow_train_steps=a.motif_steps,
        fit_s=round(fit_s, 1),
        clf_train_steps=a.clf_steps,
        clf_fit_s=round(clf_fit_s, 1),
        clf_heldout_accuracy=float((pred == hy).mean()),
        clf_heldout_tpr=float(pred[hy == 1].mean()),
        clf_heldout_fpr=float(pred[hy == 0].mean()),
        data_motif_share=float(np.mean(y)),
        data_diversity=diversity(seqs),
        data_positive_diversity=diversity(positives),
        n_gen=a.motif_gen,
        sample_steps=a.sample_steps,
        n_guidance_samples=a.n_guidance_samples,
        runs=[],
    )
    for spec in a.runs.split(","):
        method, sc = spec.split(":")
        sc = float(sc)
        t0 = time.time()
        gen = bioflow.tl.sample_sequences(
            model,
            a.motif_gen,
            steps=a.sample_steps,
            guidance=clf if sc > 0 else None,
            guidance_scale=sc,
            n_guidance_samples=a.n_guidance_samples,
            method=method,
            seed=a.seed,
        )
        dt = time.time() - t0
        div = diversity(gen)
        out["runs"].append(
            dict(
                method=method,
                guidance_scale=sc,
                motif_share=float(np.mean([motif_ in s for s in gen])),
                diversity=div,
                diversity_rel_change=div / out["data_diversity"] - 1,
                unique_fraction=len(set(gen)) / len(gen),
                kmer3_l1_to_data=kmer_distance(gen, seqs),
                kmer3_l1_to_data_positives=kmer_distance(gen, positives),
                seqs_per_s=round(a.motif_gen / dt, 1),
            )
        )
        print(json.dumps(out["runs"][-1]), flush=True)
    # the floor of the 3-mer distance: a fresh sample of the data law of the same size
    fresh, _ = bioflow.datasets.motif_sequences(
        a.motif_gen, length=a.length, motif=motif_, motif_fraction=0.3, seed=a.seed + 2
    )
    out["kmer3_l1_fresh_data_sample"] = kmer_distance(fresh, seqs)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("toy", "motif", "all"), default="all")
    ap.add_argument("--ks", default="20,40,60,80,100,120,140,160,512")
    ap.add_argument("--toy-steps", type=int, default=400)
    ap.add_argument("--toy-train", type=int, default=20000)
    ap.add_argument("--toy-gen", type=int, default=20000)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--motif-steps", type=int, default=2000)
    ap.add_argument("--clf-steps", type=int, default=200)
    ap.add_argument("--motif-train", type=int, default=2000)
    ap.add_argument("--motif-gen", type=int, default=300)
    ap.add_argument("--n-guidance-samples", type=int, default=8)
    ap.add_argument(
        "--runs",
        default="renoise:0,renoise:1,renoise:2,euler:0,euler:20",
        help="comma-separated sampler:guidance_scale pairs (0 = unguided)",
    )
    ap.add_argument("--length", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)  # 1 is fastest on a busy CPU
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    res: dict = {"device": "cpu", "threads": a.threads}
    if a.part in ("toy", "all"):
        res["toy"] = toy(
            [int(k) for k in a.ks.split(",")],
            a.toy_steps,
            a.toy_train,
            a.toy_gen,
            a.sample_steps,
            a.seed,
        )
    if a.part in ("motif", "all"):
        res["motif"] = motif(a)
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
