"""Plots for the cell-dynamics tools."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bioflow._docs import share_docs
from bioflow.data.anndata import match_labels
from bioflow.pl._utils import embedding_scatter, finish, get_axes


def _label(basis: str | None, c: int) -> str:
    names = {"X_pca": "PC", "X_umap": "UMAP", "X_tsne": "tSNE", "X_diffmap": "DC"}
    if basis is None:
        return f"X {c + 1}"
    if basis in names:
        return f"{names[basis]}{c + 1}"
    if basis.startswith("X_draw_graph"):
        return f"{basis[len('X_draw_graph_') :].upper() or 'DRAW_GRAPH'}{c + 1}"
    return f"{basis} {c + 1}"


def _trajectory_points(adata, traj, key, params, basis, components):
    """Path points on ``basis`` ``(n_obs, T, 2)`` and the cells on it ``(n_obs, 2)``."""
    from bioflow.data.anndata import read_representation
    from bioflow.data.embedding import knn_map

    use_rep = params.get("use_rep")
    use_rep = None if use_rep in (None, "None") else use_rep
    c = list(components)
    if any(isinstance(ci, bool) or not isinstance(ci, int | np.integer) or ci < 0 for ci in c):
        raise ValueError(f"components must be two non-negative indices, got {components!r}")
    if basis == use_rep:
        if max(c) >= traj.shape[2]:
            raise ValueError(
                f"components={tuple(components)} out of range for the {traj.shape[2]} "
                f"coordinates of adata.obsm[{key!r}]"
            )
        cells = read_representation(adata, use_rep)
        if cells.shape[1] != traj.shape[2]:
            raise ValueError(
                f"adata.obsm[{key!r}] has {traj.shape[2]} coordinates but "
                f"{use_rep or 'X'} has {cells.shape[1]}: they are not the same space"
            )
        return traj[:, :, c], cells[:, c]
    if basis not in adata.obsm:
        raise ValueError(f"basis {basis!r} is not a key of adata.obsm: {list(adata.obsm)}")
    cells = np.asarray(adata.obsm[basis], dtype=np.float64)
    if cells.ndim != 2 or cells.shape[0] != adata.n_obs:
        raise ValueError(f"adata.obsm[{basis!r}] is not a per-cell embedding")
    short = basis[2:] if basis.startswith("X_") else basis
    mapped = adata.obsm.get(f"{key}_{short}")
    if mapped is not None and np.asarray(mapped).shape[:2] == traj.shape[:2]:
        pts = np.asarray(mapped)
    else:
        if use_rep is not None and use_rep not in adata.obsm:
            raise ValueError(
                f"the trajectories live in {use_rep!r}, which adata.obsm lacks, so they "
                f"cannot be placed on {basis!r}"
            )
        ref = read_representation(adata, use_rep)
        if ref.shape[1] != traj.shape[2]:
            raise ValueError(
                f"adata.obsm[{key!r}] has {traj.shape[2]} coordinates but the model space "
                f"{use_rep or 'X'} has {ref.shape[1]}: refusing to overlay spaces that do not "
                "match"
            )
        k = int(params.get("n_neighbors", 15))
        pts = knn_map(ref, cells[:, : max(c) + 1], traj, k=k)
    if pts.shape[2] <= max(c):
        raise ValueError(f"components={tuple(c)} out of range for {basis!r}")
    return pts[:, :, c], cells[:, c]


@share_docs
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

    The cells are drawn with :func:`scanpy.pl.embedding` (palettes from
    ``adata.uns["<color>_colors"]``).  On the model's own space (``basis`` = its
    ``use_rep``) the paths are drawn as integrated.  On any other embedding (``"X_umap"``,
    ``"X_draw_graph_fa"``...) every path point is placed by k-nearest-neighbour
    regression from the model space onto the embedding (the mapping
    :func:`bioflow.tl.trajectories` stored with ``basis=``, or the same mapping computed
    here); paths whose space does not match the model's representation are refused.

    Parameters
    ----------
    adata
        AnnData with ``adata.obsm[key]`` of shape ``(n_obs, n_times, d)``.
    key
        ``key_added`` used by :func:`bioflow.tl.trajectories`.
    basis
        Key of ``.obsm`` to draw on (``"X_umap"``; ``"umap"`` works too).  Default: the
        model's ``use_rep`` recorded under ``adata.uns["bioflow"][key]``.
    components
        Two coordinates to plot (0-based).
    color
        Column of ``.obs`` for the cell colours (default: the time column).
    n_trajectories
        Number of trajectories drawn (a random subset).
    starting_at
        Only draw trajectories of cells observed at this time label (default: any cell).
    seed
        Seed of that subset.
    {plot_ax_show_save}

    Returns
    -------
    {plot_returns_axes}

    Raises
    ------
    ValueError
        Missing trajectories or basis, or trajectories whose space does not match the
        model's representation in ``adata``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.trajectories(model, adata, times=[0, 1, 2, 3, 4])
    >>> ax = bioflow.pl.trajectories(adata, color="branch", starting_at=0.0, show=False)
    >>> ax.get_title(), ax.get_xlabel()
    ('Learned trajectories', 'PC1')
    >>> adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2]  # any 2-D embedding
    >>> ax = bioflow.pl.trajectories(adata, basis="umap", show=False)
    >>> ax.get_xlabel()
    'UMAP1'
    """
    if key not in adata.obsm:
        raise ValueError(f"adata.obsm has no {key!r}; run bioflow.tl.trajectories first")
    traj = np.asarray(adata.obsm[key])
    if traj.ndim != 3:
        raise ValueError(f"adata.obsm[{key!r}] must have shape (n_obs, n_times, d)")
    params = adata.uns.get("bioflow", {}).get(key, {})
    use_rep = params.get("use_rep")
    use_rep = None if use_rep in (None, "None") else use_rep
    if basis is not None and basis not in adata.obsm and f"X_{basis}" in adata.obsm:
        basis = f"X_{basis}"
    if basis is None:
        basis = use_rep
    if (
        isinstance(n_trajectories, bool)
        or not isinstance(n_trajectories, int | np.integer)
        or (n_trajectories < 1)
    ):
        raise ValueError(f"n_trajectories must be an integer >= 1, got {n_trajectories!r}")
    if len(components) != 2:
        raise ValueError(f"components must name two coordinates, got {components!r}")
    paths, cells = _trajectory_points(adata, traj, key, params, basis, components)
    color = color or params.get("time_key")
    if color is not None and color not in adata.obs:
        color = None
    ax = get_axes(ax, figsize=(6, 5))
    embedding_scatter(adata, cells, basis=basis or "X", color=color, ax=ax, alpha=0.6, title="")
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
        ax.plot(paths[i, order, 0], paths[i, order, 1], color="k", lw=0.5, alpha=0.4)
    legend = ax.get_legend()
    end = ax.scatter(
        paths[pick][:, order[-1], 0],
        paths[pick][:, order[-1], 1],
        s=8,
        c="crimson",
        label="trajectory end",
        zorder=3,
    )
    ax.legend(handles=[end], loc="lower right", fontsize=8, markerscale=2)
    if legend is not None:
        ax.add_artist(legend)
    c0, c1 = components
    ax.set_xlabel(_label(basis, c0))
    ax.set_ylabel(_label(basis, c1))
    ax.set_title("Learned trajectories")
    return finish(ax, show, save)


@share_docs
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
    {plot_ax_show_save}

    Returns
    -------
    {plot_returns_axes}

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
    import pandas as pd

    if not isinstance(results, pd.DataFrame):
        raise ValueError(
            f"results must be a DataFrame from bioflow.tl.evaluate_holdout, got "
            f"{type(results).__name__}"
        )
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
