"""Plots for the cell-dynamics tools."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bioflow.data.anndata import match_labels
from bioflow.pl._utils import finish, get_axes


def trajectories(
    adata,
    *,
    key: str = "bioflow_trajectory",
    basis: str | None = None,
    components: Sequence[int] = (0, 1),
    color: str | None = None,
    n_trajectories: int = 100,
    starting_at=None,
    seed: int = 0,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
):
    """Observed cells with the trajectories written by :func:`bioflow.tl.trajectories`.

    Parameters
    ----------
    adata
        AnnData with ``adata.obsm[key]`` of shape ``(n_obs, n_times, d)``.
    key
        ``key_added`` used by :func:`bioflow.tl.trajectories`.
    basis
        Key of ``.obsm`` with the cells' coordinates (default: the model's ``use_rep``
        recorded under ``adata.uns["bioflow"][key]``).
    components
        Two coordinates to plot.
    color
        Column of ``.obs`` for the cell colours (default: the time column).
    n_trajectories
        Number of trajectories drawn (a random subset).
    starting_at
        Only draw trajectories of cells observed at this time label (default: any cell).
    seed
        Seed of that subset.
    ax, show, save
        Axes to draw into, whether to show, and a file to save to.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.trajectories(model, adata, times=[0, 1, 2, 3, 4])
    >>> ax = bioflow.pl.trajectories(adata, color="branch", starting_at=0.0, show=False)
    >>> ax.get_title()
    'Learned trajectories'
    """
    if key not in adata.obsm:
        raise ValueError(f"adata.obsm has no {key!r}; run bioflow.tl.trajectories first")
    traj = np.asarray(adata.obsm[key])
    if traj.ndim != 3:
        raise ValueError(f"adata.obsm[{key!r}] must have shape (n_obs, n_times, d)")
    params = adata.uns.get("bioflow", {}).get(key, {})
    if basis is None:
        basis = params.get("use_rep")
        basis = None if basis in (None, "None") else basis
    c0, c1 = components
    pts = np.asarray(adata.obsm[basis]) if basis is not None else np.asarray(adata.X)
    if hasattr(pts, "toarray"):
        pts = pts.toarray()
    color = color or params.get("time_key")
    ax = get_axes(ax, figsize=(6, 5))
    if color is not None and color in adata.obs:
        col = adata.obs[color]
        if hasattr(col, "cat"):
            import matplotlib.pyplot as plt

            cmap = plt.get_cmap("tab10")
            for i, cat in enumerate(col.cat.categories):
                m = (col == cat).to_numpy()
                ax.scatter(
                    pts[m, c0], pts[m, c1], s=4, color=cmap(i % 10), alpha=0.5, label=str(cat)
                )
        else:
            sc = ax.scatter(
                pts[:, c0], pts[:, c1], c=col.to_numpy(float), s=4, cmap="viridis", alpha=0.5
            )
            ax.figure.colorbar(sc, ax=ax, label=color)
    else:
        ax.scatter(pts[:, c0], pts[:, c1], s=4, c="0.6", alpha=0.5)
    rng = np.random.default_rng(seed)
    pool = np.arange(traj.shape[0])
    if starting_at is not None:
        tkey = params.get("time_key")
        if tkey is None or tkey not in adata.obs:
            raise ValueError("starting_at needs the time column recorded by tl.trajectories")
        col_t = adata.obs[tkey]
        pool = np.flatnonzero(match_labels(col_t, starting_at))
        if len(pool) == 0:
            raise ValueError(f"no cells with adata.obs[{tkey!r}] == {starting_at!r}")
    pick = rng.choice(pool, size=min(n_trajectories, len(pool)), replace=False)
    values = params.get("time_values")
    order = np.argsort(values) if values is not None else np.arange(traj.shape[1])
    for i in pick:
        ax.plot(traj[i, order, c0], traj[i, order, c1], color="k", lw=0.5, alpha=0.4)
    ax.scatter(
        traj[pick][:, order[-1], c0],
        traj[pick][:, order[-1], c1],
        s=8,
        c="crimson",
        label="trajectory end",
        zorder=3,
    )
    name = basis or "X"
    ax.set_xlabel(f"{name} {c0 + 1}")
    ax.set_ylabel(f"{name} {c1 + 1}")
    ax.set_title("Learned trajectories")
    ax.legend(loc="best", fontsize=8, markerscale=2)
    return finish(ax, show, save)


def holdout(
    results,
    *,
    metric: str = "w1",
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
):
    """Bar chart of a leave-one-timepoint-out table from :func:`bioflow.tl.evaluate_holdout`.

    Parameters
    ----------
    results
        DataFrame with columns ``held_out``, ``method`` and ``metric``.
    metric
        Column to plot (``"w1"``, ``"w2"`` or ``"mmd"``).
    ax, show, save
        Axes, whether to show, file to save to.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50, n_times=3)
    >>> df = bioflow.tl.evaluate_holdout(adata, time_key="time", use_rep="X_pca",
    ...                                  max_steps=5, enable_progress_bar=False)
    >>> ax = bioflow.pl.holdout(df, metric="w1", show=False)
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['no-motion', 'mccann', 'ot-cfm']
    """
    for col in ("held_out", "method", metric):
        if col not in results.columns:
            raise ValueError(f"results has no column {col!r}; columns: {list(results.columns)}")
    table = results.groupby(["held_out", "method"], sort=False)[metric].agg(["mean", "std"])
    held = list(dict.fromkeys(results["held_out"]))
    methods = list(dict.fromkeys(results["method"]))
    ax = get_axes(ax, figsize=(1.2 + 1.1 * len(held) * len(methods) / 3, 4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        means = [table.loc[(h, m), "mean"] if (h, m) in table.index else np.nan for h in held]
        stds = [table.loc[(h, m), "std"] if (h, m) in table.index else np.nan for h in held]
        ax.bar(np.arange(len(held)) + j * width, means, width, yerr=np.nan_to_num(stds), label=m)
    ax.set_xticks(np.arange(len(held)) + 0.4 - width / 2)
    ax.set_xticklabels([str(h) for h in held])
    ax.set_xlabel("held-out time")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"Leave-one-timepoint-out {metric.upper()} (lower is better)")
    ax.legend(fontsize=8)
    return finish(ax, show, save)
