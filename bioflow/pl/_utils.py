"""Shared plumbing for the plotting functions: scanpy's show / return / palette conventions.

- ``show=None`` follows ``scanpy.settings.autoshow`` (``True`` by default), as in scanpy.
- A plot returns its axes only when it is not shown (``show=False``); otherwise ``None``,
  so nothing is printed under the figure in a notebook.
- matplotlib's backend is never changed: a script gets the user's backend, a notebook
  its inline one.
- Categorical colours come from ``adata.uns["<key>_colors"]`` when it has enough colours,
  else scanpy's default palettes (matplotlib's cycle up to its length, then 20, 28 and
  102 colours), without writing into the AnnData.
"""

from __future__ import annotations

import os

import numpy as np


def get_axes(ax=None, figsize=(5.0, 4.0)):
    """Return ``ax``, or new axes on a new figure (in the current matplotlib backend)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def resolve_show(show: bool | None) -> bool:
    """``show``, or scanpy's ``settings.autoshow`` when ``None``."""
    if show is not None:
        return bool(show)
    try:
        import scanpy as sc

        return bool(sc.settings.autoshow)
    except ImportError:  # pragma: no cover - scanpy is a dependency
        return True


def finish(ax, show: bool | None, save: str | os.PathLike | None):
    """Save and/or show the figure of ``ax`` (an Axes or an array of them).

    Returns
    -------
    ``ax`` when the figure is not shown, else ``None`` (scanpy's convention).
    """
    import matplotlib.pyplot as plt

    first = np.asarray(ax, dtype=object).ravel()[0]
    fig = first.figure
    if save is not None:
        from bioflow.core.files import write_atomic

        fmt = os.path.splitext(os.fspath(save))[1].lstrip(".").lower() or None
        write_atomic(save, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
    if resolve_show(show):
        plt.show()
        return None
    return ax


def palette(adata, key: str) -> list:
    """Colours of the categories of ``adata.obs[key]`` (scanpy's rules; ``adata`` untouched).

    Returns
    -------
    list
        One matplotlib colour per category, in category order.
    """
    from matplotlib import rcParams
    from scanpy.plotting import palettes

    col = adata.obs[key]
    cats = col.cat.categories if hasattr(col, "cat") else np.unique(col.astype(str))
    n = len(cats)
    given = adata.uns.get(f"{key}_colors")
    if given is not None and len(given) >= n:
        return list(given)[:n]
    cycle = rcParams["axes.prop_cycle"].by_key().get("color", [])
    if len(cycle) >= n:
        return list(cycle)[:n]
    for pal in (palettes.default_20, palettes.default_28, palettes.default_102):
        if len(pal) >= n:
            return list(pal)[:n]
    return ["grey"] * n


def embedding_scatter(adata, coords: np.ndarray, *, basis: str, color: str | None, ax, **kwargs):
    """Draw the cells at ``coords`` ``(n, 2)`` with :func:`scanpy.pl.embedding` into ``ax``.

    A small AnnData holding only the coordinates, the colour column and its palette is
    drawn, so ``adata`` is never modified (scanpy would store default colours in it).
    """
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    obs = pd.DataFrame(index=adata.obs_names.astype(str))
    uns = {}
    if color is not None:
        if color not in adata.obs:
            raise ValueError(f"color={color!r} is not a column of adata.obs")
        col = adata.obs[color]
        if col.dtype == bool or col.dtype == object:
            col = col.astype(str).astype("category")
        obs[color] = col.to_numpy() if not hasattr(col, "cat") else col.values
        if hasattr(obs[color], "cat"):
            uns[f"{color}_colors"] = palette(adata, color)
    name = basis if basis.startswith("X_") else f"X_{basis}"
    tmp = ad.AnnData(obs=obs, uns=uns)
    tmp.obsm[name] = np.asarray(coords, dtype=np.float32)[:, :2]
    kwargs.setdefault("frameon", True)
    # scanpy names the axes from the basis without "X_" (umap -> UMAP1, pca -> PC1)
    sc.pl.embedding(tmp, basis=name[2:], color=color, ax=ax, show=False, **kwargs)
    return ax
