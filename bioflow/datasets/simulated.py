"""Simulated bifurcating differentiation time course."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _pca(x: np.ndarray, n_comps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(0)
    u, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    # Deterministic signs: the largest loading of each component is positive.
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
    u, vt = u * signs, vt * signs[:, None]
    scores = u[:, :n_comps] * s[:n_comps]
    var = s**2 / (x.shape[0] - 1)
    return scores, vt[:n_comps].T, var[:n_comps] / var.sum()


def simulated_differentiation(
    n_cells_per_time: int = 400,
    n_times: int = 5,
    n_genes: int = 50,
    n_pcs: int = 10,
    noise: float = 0.15,
    seed: int = 0,
):
    """A bifurcating differentiation process observed at ``n_times`` days.

    Cells follow a stochastic differential equation in a 3-D latent space: a progression
    coordinate moves forward at unit speed, a fate coordinate is pushed into one of two
    branches by a double-well force that switches on after day 1, and a third coordinate is
    an Ornstein-Uhlenbeck nuisance.  Each day, ``n_cells_per_time`` *different* cells are
    observed (snapshots, as in a destructive assay).  Gene expression is Poisson counts with
    log-rates non-linear in the latent state; ``X`` holds log1p of library-normalised
    counts.

    Parameters
    ----------
    n_cells_per_time
        Cells observed per day.
    n_times
        Number of observation days (>= 3), at days ``0, 1, ..., n_times - 1``.
    n_genes
        Number of genes.
    n_pcs
        Number of principal components stored in ``.obsm["X_pca"]``.
    noise
        Diffusion coefficient of the latent SDE.
    seed
        Seed; the output is identical for the same arguments.

    Returns
    -------
    anndata.AnnData
        ``n_cells_per_time * n_times`` cells by ``n_genes`` genes with
        ``.obs["time"]`` (float day), ``.obs["day"]`` (ordered categorical ``"day0"``, ...),
        ``.obs["branch"]``; ``.layers["counts"]``; ``.obsm["X_pca"]`` (scaled so PC1 has unit
        variance), ``.obsm["X_latent"]``;
        ``.varm["PCs"]`` and ``.uns["pca"]``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=100)
    >>> adata.shape, adata.obsm["X_pca"].shape
    ((500, 50), (500, 10))
    """
    if n_times < 3:
        raise ValueError(f"n_times must be >= 3, got {n_times}")
    if n_cells_per_time < 2:
        raise ValueError(f"n_cells_per_time must be >= 2, got {n_cells_per_time}")
    if n_genes < 3 or not 1 <= n_pcs <= n_genes:
        raise ValueError(
            f"need n_genes >= 3 and 1 <= n_pcs <= n_genes, got n_genes={n_genes}, n_pcs={n_pcs}"
        )
    rng = np.random.default_rng(seed)
    n = n_cells_per_time * n_times
    dt = 0.01
    # Progenitors are heterogeneous along the fate axis, so fate is partly primed at day 0.
    z = np.column_stack([rng.normal(0, 0.1, n), rng.normal(0, 0.25, n), rng.normal(0, 0.3, n)])
    observed = np.empty((n, 3))
    day = np.repeat(np.arange(n_times), n_cells_per_time)
    steps_per_day = round(1 / dt)
    for step in range(steps_per_day * (n_times - 1) + 1):
        k, r = divmod(step, steps_per_day)
        if r == 0:
            observed[day == k] = z[day == k]
        gate = 1.0 / (1.0 + np.exp(-4.0 * (z[:, 0] - 1.0)))
        drift = np.column_stack(
            [
                np.ones(n),
                3.0 * gate * (z[:, 1] - z[:, 1] ** 3 / 1.5**2),
                -1.0 * z[:, 2],
            ]
        )
        z = z + drift * dt + noise * np.sqrt(dt) * rng.normal(size=z.shape)

    feats = np.column_stack(
        [
            observed[:, 0] / n_times * 2,
            observed[:, 1],
            np.tanh(2 * observed[:, 1]) * observed[:, 0] / n_times,
            observed[:, 2] * 0.5,
            np.sin(observed[:, 0]),
        ]
    )
    expr = _expression(feats, n_genes, n_pcs, rng)

    fate = np.where(
        observed[:, 1] > 0.4, "upper", np.where(observed[:, 1] < -0.4, "lower", "progenitor")
    )
    obs = pd.DataFrame(
        {
            "time": day.astype(np.float64),
            "day": pd.Categorical(
                [f"day{d}" for d in day],
                categories=[f"day{d}" for d in range(n_times)],
                ordered=True,
            ),
            "branch": pd.Categorical(fate, categories=["progenitor", "upper", "lower"]),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    return _expression_anndata(
        expr,
        obs,
        observed,
        "simulated_differentiation",
        {
            "n_cells_per_time": n_cells_per_time,
            "n_times": n_times,
            "n_genes": n_genes,
            "n_pcs": n_pcs,
            "noise": noise,
            "seed": seed,
        },
    )


@dataclass
class _Expression:
    counts: np.ndarray
    x: np.ndarray
    scores: np.ndarray
    loadings: np.ndarray
    var_ratio: np.ndarray


def _expression(
    feats: np.ndarray, n_genes: int, n_pcs: int, rng: np.random.Generator, gain: float = 1.0
) -> _Expression:
    """Poisson counts from per-cell features ``(n, f)``, log-normalised, and their PCA."""
    w = rng.normal(0, 1.0, (feats.shape[1], n_genes))
    base = rng.normal(0.5, 0.5, n_genes)
    rates = np.exp(base + feats @ w * gain)
    library = rng.lognormal(np.log(2000), 0.2, len(feats))
    mean = rates / rates.sum(1, keepdims=True) * library[:, None]
    counts = rng.poisson(mean).astype(np.float32)
    x = np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32)
    scores, loadings, var_ratio = _pca(x.astype(np.float64), n_pcs)
    # One global scale (PC1 to unit variance) keeps relative PC scales, as for real PCA,
    # while giving the models inputs of order one.
    return _Expression(counts, x, scores / scores[:, 0].std(), loadings, var_ratio)


def _expression_anndata(expr: _Expression, obs, latent: np.ndarray, name: str, params: dict):
    """AnnData of a simulation: genes in ``.X``, counts, PCA, latent state, provenance."""
    import anndata as ad
    import scipy.sparse as sp

    var = pd.DataFrame(index=[f"gene{j}" for j in range(expr.x.shape[1])])
    adata = ad.AnnData(expr.x, obs=obs, var=var)
    adata.layers["counts"] = sp.csr_matrix(expr.counts)
    adata.obsm["X_pca"] = expr.scores.astype(np.float32)
    adata.obsm["X_latent"] = latent.astype(np.float32)
    adata.varm["PCs"] = expr.loadings.astype(np.float32)
    adata.uns["pca"] = {"variance_ratio": expr.var_ratio}
    adata.uns["bioflow_dataset"] = {"name": name, "params": params}
    return adata
