"""Simulated time course of a cycling progenitor pool that exits into three fates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bioflow.datasets.simulated import _expression, _expression_anndata

BRANCHES = ("fate_a", "fate_b", "fate_c")


def simulated_cycle_branching(
    n_cells_per_time: int = 300,
    n_times: int = 6,
    n_genes: int = 60,
    n_pcs: int = 10,
    noise: float = 0.15,
    branch_growth: Sequence[float] = (0.0, 0.0, 0.0),
    seed: int = 0,
):
    """A cycling progenitor pool that leaves the cycle into a three-way branch.

    The latent state is a point in the plane plus an Ornstein-Uhlenbeck nuisance.  Cells
    start on the unit circle and rotate around it (a cell cycle, one turn in about four
    days); from about day 1.5 a gate opens, the radius grows at unit speed and the angle is
    pulled to the nearest of three fate directions (0, 120 and 240 degrees), so cells leave
    the cycle along three straight branches.  Unlike
    :func:`~bioflow.datasets.simulated_differentiation` (one progression axis, a two-way
    split), trajectories here curve (rotation) before they split three ways.

    Cells of a branch can proliferate: ``branch_growth[b]`` is the division rate (per day)
    of committed cells of fate ``b`` (a cell divides into two identical cells; snapshots
    are drawn from the whole, growing population), so later days over-represent that fate
    relative to where the progenitors were headed.  Each cell's rate is stored in
    ``.obs["growth_rate"]``.

    Parameters
    ----------
    n_cells_per_time
        Cells observed per day.
    n_times
        Observation days ``0, 1, ..., n_times - 1`` (>= 3).
    n_genes, n_pcs
        Genes and principal components (``.obsm["X_pca"]``, scaled so PC1 has unit
        variance).
    noise
        Diffusion of the latent SDE.
    branch_growth
        Three non-negative division rates per day, for fates a, b, c.
    seed
        Seed; the output is identical for the same arguments.

    Returns
    -------
    anndata.AnnData
        ``n_cells_per_time * n_times`` cells with ``.obs["time"]`` (float day),
        ``.obs["branch"]`` (``cycling``, ``fate_a``, ``fate_b``, ``fate_c``),
        ``.obs["growth_rate"]``, ``.obsm["X_pca"]``, ``.obsm["X_latent"]`` and
        ``.layers["counts"]``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_cycle_branching(n_cells_per_time=50)
    >>> adata.shape, sorted(adata.obs["branch"].cat.categories)
    ((300, 60), ['cycling', 'fate_a', 'fate_b', 'fate_c'])
    """
    if n_times < 3:
        raise ValueError(f"n_times must be >= 3, got {n_times}")
    if n_cells_per_time < 2 or n_genes < 3 or not 1 <= n_pcs <= n_genes:
        raise ValueError("need n_cells_per_time >= 2, n_genes >= 3 and 1 <= n_pcs <= n_genes")
    growth = np.asarray(branch_growth, dtype=np.float64)
    if growth.shape != (3,) or not np.isfinite(growth).all() or (growth < 0).any():
        raise ValueError(f"branch_growth must be three finite rates >= 0, got {branch_growth}")
    rng = np.random.default_rng(seed)
    n0 = max(2000, 2 * n_cells_per_time)
    theta = rng.uniform(0, 2 * np.pi, n0)
    r = 1.0 + rng.normal(0, 0.05, n0)
    nuis = rng.normal(0, 0.3, n0)
    onset = 1.5 + rng.normal(0, 0.3, n0)  # when each cell's exit gate opens
    dt, omega = 0.01, 2 * np.pi / 4.0
    steps_per_day = round(1 / dt)
    obs_state, obs_day, obs_rate = [], [], []

    def fate_of(th, rad):
        k = np.round(np.mod(th, 2 * np.pi) / (2 * np.pi / 3)).astype(int) % 3
        return np.where(rad > 1.3, k, -1)

    for step in range(steps_per_day * (n_times - 1) + 1):
        k, rem = divmod(step, steps_per_day)
        t = step * dt
        fate = fate_of(theta, r)
        rate = np.where(fate >= 0, growth[np.clip(fate, 0, 2)], 0.0)
        if rem == 0:
            pick = rng.choice(len(theta), n_cells_per_time, replace=len(theta) < n_cells_per_time)
            obs_state.append(np.column_stack([r[pick], theta[pick], nuis[pick]]))
            obs_day.append(np.full(n_cells_per_time, k))
            obs_rate.append(rate[pick])
            if k == n_times - 1:
                break
        gate = 1.0 / (1.0 + np.exp(-6.0 * (t - onset)))
        d_theta = (1 - gate) * omega - gate * 1.5 * np.sin(3 * theta)
        d_r = gate * 1.0 - (1 - gate) * 2.0 * (r - 1.0)
        theta = theta + d_theta * dt + noise * np.sqrt(dt) * rng.normal(size=theta.shape) / r
        r = np.abs(r + d_r * dt + noise * np.sqrt(dt) * rng.normal(size=r.shape))
        nuis = nuis - nuis * dt + noise * np.sqrt(dt) * rng.normal(size=nuis.shape)
        if (growth > 0).any():
            divide = rng.random(len(theta)) < rate * dt
            if divide.any():
                theta, r, nuis, onset = (
                    np.concatenate([a, a[divide]]) for a in (theta, r, nuis, onset)
                )

    state = np.vstack(obs_state)
    day = np.concatenate(obs_day)
    rates = np.concatenate(obs_rate)
    rad, ang, nz = state[:, 0], state[:, 1], state[:, 2]
    latent = np.column_stack([rad * np.cos(ang), rad * np.sin(ang), nz])
    feats = np.column_stack(
        [
            latent[:, 0],
            latent[:, 1],
            0.5 * nz,
            np.tanh(rad - 1.0),
            0.3 * latent[:, 0] * latent[:, 1],
        ]
    )
    expr = _expression(feats, n_genes, n_pcs, rng, gain=0.7)
    n = len(day)
    fate = fate_of(ang, rad)
    labels = np.where(fate >= 0, np.array(BRANCHES)[np.clip(fate, 0, 2)], "cycling")
    obs = pd.DataFrame(
        {
            "time": day.astype(np.float64),
            "branch": pd.Categorical(labels, categories=["cycling", *BRANCHES]),
            "growth_rate": rates,
        },
        index=[f"cell{i}" for i in range(n)],
    )
    return _expression_anndata(
        expr,
        obs,
        latent,
        "simulated_cycle_branching",
        {
            "n_cells_per_time": n_cells_per_time,
            "n_times": n_times,
            "n_genes": n_genes,
            "n_pcs": n_pcs,
            "noise": noise,
            "branch_growth": [float(g) for g in growth],
            "seed": seed,
        },
    )
