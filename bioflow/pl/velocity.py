"""Velocity streams and fate probabilities on an embedding (what tl.velocity and
tl.fate_probabilities wrote)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bioflow._docs import share_docs
from bioflow.pl._utils import embedding_scatter, finish, get_axes


def _grid_velocity(x: np.ndarray, v: np.ndarray, n_grid: int, smooth: float = 0.5):
    """Gaussian-kernel average of cell velocities ``v`` at ``x`` on a regular grid.

    Returns ``(gx, gy, U, V)``; grid points far from every cell are NaN (no stream).
    """
    from bioflow.data.embedding import neighbors

    lo, hi = x.min(0), x.max(0)
    pad = 0.02 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n_grid)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n_grid)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    h = smooth * float(np.mean((hi - lo) / n_grid)) * 2
    dist, idx = neighbors(x, grid, min(30, len(x)))
    w = np.exp(-0.5 * (dist / h) ** 2)
    mass = w.sum(1)
    vg = (w[:, :, None] * v[idx]).sum(1) / np.maximum(mass, 1e-12)[:, None]
    vg[mass < 0.05 * np.percentile(mass, 99)] = np.nan
    return gx, gy, vg[:, 0].reshape(n_grid, n_grid), vg[:, 1].reshape(n_grid, n_grid)


@share_docs
def velocity_embedding_stream(
    adata,
    *,
    basis: str = "umap",
    vkey: str = "velocity_X_pca",
    color: str | None = None,
    density: float = 1.0,
    n_neighbors: int = 30,
    scale: float = 10.0,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
):
    """Streamlines of the learned velocities on an embedding, as scVelo draws them.

    Uses ``adata.obsm[f"{vkey}_{basis}"]`` written by :func:`bioflow.tl.velocity_embedding`
    or, when absent, computes the same projection (transition probabilities from the
    cosine similarity of each cell's velocity with the displacements to its neighbours;
    ``adata`` is not modified).  The embedded velocities are averaged on a grid with a
    Gaussian kernel and drawn with :meth:`matplotlib.axes.Axes.streamplot` over the cells
    (:func:`scanpy.pl.embedding`).

    Parameters
    ----------
    adata
        AnnData with ``.obsm[vkey]`` (:func:`bioflow.tl.velocity`) and the embedding.
    basis
        Embedding (``"umap"`` or ``"X_umap"``, ...).
    vkey
        ``.obsm`` key of the model-space velocities.
    color
        Column of ``.obs`` colouring the cells.
    density
        Stream density (matplotlib's ``streamplot``).
    n_neighbors, scale
        Projection settings when it is computed here.
    {plot_ax_show_save}

    Returns
    -------
    {plot_returns_axes}

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.velocity(model, adata)
    >>> adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2]  # any 2-D embedding
    >>> ax = bioflow.pl.velocity_embedding_stream(adata, color="branch", show=False)
    >>> ax.get_xlabel()
    'UMAP1'
    """
    from bioflow.data.embedding import basis_key, embed_velocity, velocity_inputs

    bkey = basis_key(adata, basis)
    x_rep, v, x_emb, key = velocity_inputs(adata, bkey, vkey)
    if key in adata.obsm:
        v_emb = np.asarray(adata.obsm[key], dtype=np.float64)
    else:
        v_emb = embed_velocity(x_rep, v, x_emb, n_neighbors=n_neighbors, scale=scale)
    ax = get_axes(ax, figsize=(6, 5))
    embedding_scatter(adata, x_emb, basis=bkey, color=color, ax=ax, alpha=0.5, title="")
    n_grid = int(max(10, 40 * density))
    gx, gy, u, w = _grid_velocity(x_emb, v_emb, n_grid)
    ax.streamplot(gx, gy, u, w, density=density, color="k", linewidth=0.8, arrowsize=1.0, zorder=3)
    ax.set_title(f"Velocity of the learned flow ({vkey})")
    return finish(ax, show, save)


@share_docs
def fate_probabilities(
    adata,
    *,
    basis: str = "umap",
    key: str = "fate_probabilities",
    groups: Sequence[str] | None = None,
    ncols: int = 3,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
):
    """Fate probabilities written by :func:`bioflow.tl.fate_probabilities`, one panel per fate.

    Each panel colours the cells on the embedding by the probability (0 to 1) of ending
    in that group; cells without a probability (observed after the target time) are grey.

    Parameters
    ----------
    adata
        AnnData with ``.obsm[key]`` (cells x groups) and the embedding.
    basis
        Embedding (``"umap"`` or ``"X_umap"``, ...).
    key
        ``key_added`` of :func:`bioflow.tl.fate_probabilities`.
    groups
        Fates to draw (default: all).
    ncols
        Panels per row of a new figure.
    ax
        One axes per drawn fate (a sequence), or a single axes when one fate is drawn;
        default: a new figure.
    {plot_show_save}

    Returns
    -------
    numpy.ndarray or None
        The axes (one per fate) when ``show`` is false, else ``None``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.fate_probabilities(model, adata, time_key="time", groupby="branch",
    ...                               target_time=4.0)
    >>> adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2]  # any 2-D embedding
    >>> axes = bioflow.pl.fate_probabilities(adata, groups=["upper", "lower"], show=False)
    >>> [a.get_title() for a in axes]
    ['fate: upper', 'fate: lower']
    """
    import pandas as pd

    if key not in adata.obsm:
        raise ValueError(f"adata.obsm has no {key!r}; run bioflow.tl.fate_probabilities first")
    fates = adata.obsm[key]
    if not isinstance(fates, pd.DataFrame):
        cols = adata.uns.get("bioflow", {}).get(key, {}).get("groups")
        fates = pd.DataFrame(np.asarray(fates), index=adata.obs_names, columns=cols)
    groups = list(fates.columns) if groups is None else [str(g) for g in groups]
    for g in groups:
        if g not in fates.columns:
            raise ValueError(f"no fate {g!r}; fates: {list(fates.columns)}")
    from bioflow.data.embedding import basis_key

    bkey = basis_key(adata, basis)
    x_emb = np.asarray(adata.obsm[bkey])[:, :2]
    if ax is None:
        import matplotlib.pyplot as plt

        nc = min(ncols, len(groups))
        nr = -(-len(groups) // nc)
        _, ax = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.6 * nr), squeeze=False)
        axes = ax.ravel()
        for extra in axes[len(groups) :]:
            extra.set_visible(False)
        axes = axes[: len(groups)]
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if len(axes) != len(groups):
            raise ValueError(f"ax holds {len(axes)} axes for {len(groups)} fates")
    import anndata as ad

    tmp = ad.AnnData(
        obs=pd.DataFrame(
            fates[groups].to_numpy(), index=adata.obs_names.astype(str), columns=groups
        )
    )
    for a, g in zip(axes, groups, strict=True):
        embedding_scatter(
            tmp,
            x_emb,
            basis=bkey,
            color=g,
            ax=a,
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
            title=f"fate: {g}",
        )
    out = finish(axes, show, save)
    return None if out is None else np.asarray(axes, dtype=object)
