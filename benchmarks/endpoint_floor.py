"""The floor of the off-data endpoint share: independent day-4 cells of the same process.

``bioflow.metrics.off_data_fraction(pred, target)`` counts predicted cells whose nearest
target cell is farther than the 95th percentile of the target's own nearest-other-cell
distances.  A perfect model is a fresh, independent sample of the target population, so
its share is not 0 but the share such a sample gets.  This script measures it on the
demo's data (``simulated_differentiation(n_cells_per_time=400, seed=0)``, 10 PCs, the
space the demo's model is fitted and measured in): new latent trajectories (other seeds)
go through the *same* gene model and the *same* PCA as the demo's cells, and their day-4
cells (400, as many as the demo pushes) are scored against the demo's day-4 cells.  W1 of
the same samples is reported as the matching floor of ``w1_day0_to_last``.

The latent process and expression model are re-run here (they are not public functions);
the script first checks that its re-run reproduces the dataset exactly and stops if not.

    PYTHONPATH=. nice -n 10 python benchmarks/endpoint_floor.py \\
        --out benchmarks/results/endpoint_floor.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

import numpy as np

import bioflow
from bioflow.metrics import off_data_fraction, wasserstein


def _latent(n_per: int, n_times: int, noise: float, rng: np.random.Generator):
    """The latent SDE of ``simulated_differentiation`` (same draws in the same order)."""
    n, dt = n_per * n_times, 0.01
    z = np.column_stack([rng.normal(0, 0.1, n), rng.normal(0, 0.25, n), rng.normal(0, 0.3, n)])
    observed, day = np.empty((n, 3)), np.repeat(np.arange(n_times), n_per)
    for step in range(100 * (n_times - 1) + 1):
        k, r = divmod(step, 100)
        if r == 0:
            observed[day == k] = z[day == k]
        gate = 1.0 / (1.0 + np.exp(-4.0 * (z[:, 0] - 1.0)))
        drift = np.column_stack(
            [np.ones(n), 3.0 * gate * (z[:, 1] - z[:, 1] ** 3 / 1.5**2), -1.0 * z[:, 2]]
        )
        z = z + drift * dt + noise * np.sqrt(dt) * rng.normal(size=z.shape)
    return observed, day


def _features(o: np.ndarray, n_times: int) -> np.ndarray:
    return np.column_stack(
        [
            o[:, 0] / n_times * 2,
            o[:, 1],
            np.tanh(2 * o[:, 1]) * o[:, 0] / n_times,
            o[:, 2] * 0.5,
            np.sin(o[:, 0]),
        ]
    )


def _log_expression(feats, w, base, rng) -> np.ndarray:
    rates = np.exp(base + feats @ w)
    library = rng.lognormal(np.log(2000), 0.2, len(feats))
    mean = rates / rates.sum(1, keepdims=True) * library[:, None]
    counts = rng.poisson(mean).astype(np.float32)
    return np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--n-cells", type=int, default=400)
    p.add_argument("--repeats", type=int, default=10, help="independent samples")
    a = p.parse_args(argv)
    n_times, n_genes, noise, seed = 5, 50, 0.15, 0
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=a.n_cells, seed=seed)
    rng = np.random.default_rng(seed)
    latent, _ = _latent(a.n_cells, n_times, noise, rng)
    w = rng.normal(0, 1.0, (5, n_genes))
    base = rng.normal(0.5, 0.5, n_genes)
    x = _log_expression(_features(latent, n_times), w, base, rng)
    if not (np.allclose(latent, adata.obsm["X_latent"], atol=1e-5) and np.allclose(x, adata.X)):
        raise SystemExit("the re-run no longer reproduces simulated_differentiation; update it")
    mu = adata.X.astype(np.float64).mean(0)
    loadings = adata.varm["PCs"].astype(np.float64)
    raw = (adata.X - mu) @ loadings
    scale = raw[:, 0].std() / adata.obsm["X_pca"][:, 0].std()
    if not np.allclose(raw / scale, adata.obsm["X_pca"], atol=1e-4):
        raise SystemExit("the PCA projection does not reproduce .obsm['X_pca']")
    last = (adata.obs["time"] == n_times - 1).to_numpy()
    target = adata.obsm["X_pca"][last]
    rows = []
    for r in range(a.repeats):
        g = np.random.default_rng(1000 + r)
        o, day = _latent(a.n_cells, n_times, noise, g)
        xs = _log_expression(_features(o, n_times), w, base, g)
        sample = ((xs - mu) @ loadings / scale)[day == n_times - 1]
        rows.append(
            {
                "sample_seed": 1000 + r,
                "off_data_share": off_data_fraction(sample, target),
                "w1": round(wasserstein(sample, target), 4),
            }
        )
    shares = np.array([row["off_data_share"] for row in rows])
    w1s = np.array([row["w1"] for row in rows])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "command": "python "
        + shlex.join(["benchmarks/endpoint_floor.py", *(argv or sys.argv[1:])]),
        "commit": commit,
        "dataset": adata.uns["bioflow_dataset"],
        "space": "X_pca (10 PCs of the demo's data)",
        "n_cells": int(last.sum()),
        "floor": {
            "off_data_share_mean": round(float(shares.mean()), 4),
            "off_data_share_sd": round(float(shares.std(ddof=1)), 4),
            "off_data_share_min": round(float(shares.min()), 4),
            "off_data_share_max": round(float(shares.max()), 4),
            "share_of_samples_at_or_above_5pct": round(float((shares >= 0.05).mean()), 2),
            "w1_mean": round(float(w1s.mean()), 4),
            "w1_sd": round(float(w1s.std(ddof=1)), 4),
        },
        "rows": rows,
    }
    text = json.dumps(result, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
