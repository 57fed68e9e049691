"""Plots for Meta Flow Matching: initial, predicted and observed cells side by side."""

from __future__ import annotations

import os

import numpy as np

from bioflow._docs import share_docs
from bioflow.pl._utils import finish


def _features(adata, use_rep: str | None) -> tuple[np.ndarray, list[str]]:
    from bioflow.data.anndata import read_representation

    x = read_representation(adata, use_rep)
    if use_rep is None:
        names = [str(v) for v in adata.var_names]
    else:
        names = [f"{use_rep}[{i}]" for i in range(x.shape[1])]
    return x, names


def _project(
    clouds: list[np.ndarray], names: list[str], basis: str, dims, seed: int
) -> tuple[list[np.ndarray], tuple[str, str]]:
    """2-d coordinates of each cloud in a shared basis, and the axis labels."""
    d = clouds[0].shape[1]
    if basis == "features":
        idx = []
        for f in dims:
            if isinstance(f, str):
                if f not in names:
                    raise ValueError(f"feature {f!r} not found; features: {names[:20]}")
                idx.append(names.index(f))
            else:
                if not 0 <= int(f) < d:
                    raise ValueError(f"dims={tuple(dims)} out of range for {d} features")
                idx.append(int(f))
        return [c[:, idx] for c in clouds], (names[idx[0]], names[idx[1]])
    allx = np.concatenate(clouds)
    if basis == "pca":
        mean = allx.mean(0)
        _, sv, vt = np.linalg.svd(allx - mean, full_matrices=False)
        comps = vt[:2].T
        var = sv**2 / max((sv**2).sum(), 1e-12)
        out = [(c - mean) @ comps for c in clouds]
        return out, (f"PC1 ({100 * var[0]:.0f}%)", f"PC2 ({100 * var[1]:.0f}%)")
    if basis == "umap":
        import umap

        emb = umap.UMAP(n_components=2, random_state=seed).fit_transform(allx)
        out, start = [], 0
        for c in clouds:
            out.append(emb[start : start + len(c)])
            start += len(c)
        return out, ("UMAP1", "UMAP2")
    raise ValueError(f"basis must be 'features', 'pca' or 'umap', got {basis!r}")


@share_docs
def populations(
    adata,
    prediction,
    truth,
    *,
    use_rep: str | None = None,
    basis: str | None = None,
    dims: tuple = (0, 1),
    titles: tuple[str, str, str] = ("initial", "predicted", "observed"),
    title: str | None = None,
    seed: int = 0,
    point_size: float = 4.0,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
):
    """Scatter the initial, predicted and observed cells of a population side by side.

    Parameters
    ----------
    adata, prediction, truth
        AnnData of initial cells, of predicted cells (:func:`bioflow.tl.predict_population`)
        and of observed final cells (``(n, d)`` coordinates each).
    use_rep
        Key of ``.obsm`` holding the coordinates (``None``: the first ``.obsm`` key of
        ``prediction``, else ``.X``).
    basis
        ``"features"`` (two features, ``dims``), ``"pca"`` (the first two principal
        components of the three sets together) or ``"umap"`` (a joint UMAP; needs
        ``umap-learn``).  Default: ``"features"`` for 2 features, else ``"pca"``.
    dims
        With ``basis="features"``: the two features, by index or by name (``var_names``).
    titles
        Panel titles.
    title
        Figure title (e.g. the population and treatment).
    seed
        Seed of the UMAP layout.
    point_size
        Marker size.
    ax
        A sequence of three axes to draw on (default: a new 1 x 3 figure).
    {plot_show_save}

    Returns
    -------
    numpy.ndarray or None
        The three axes, shape ``(3,)``, when ``show`` is false, else ``None``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=60)
    >>> model = bioflow.tl.fit_meta_flow(
    ...     adata, population_key="population", source_key="state", source_value="source",
    ...     use_rep="X_coords", exclude_populations=["C_0"], max_steps=5,
    ...     model_kwargs={"k": 10, "width": 32}, enable_progress_bar=False)
    >>> pop = adata[adata.obs["population"] == "C_0"]
    >>> src, truth = pop[pop.obs["state"] == "source"], pop[pop.obs["state"] == "target"]
    >>> pred = bioflow.tl.predict_population(model, src)
    >>> axes = bioflow.pl.populations(src, pred, truth, use_rep="X_coords", show=False)
    >>> [a.get_title() for a in axes], axes[0].get_xlabel()
    (['initial', 'predicted', 'observed'], 'X_coords[0]')
    """
    if use_rep is None and len(prediction.obsm):
        use_rep = next(iter(prediction.obsm))
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    axes = np.asarray(ax).ravel()
    if axes.size != 3:
        raise ValueError(f"ax must hold 3 axes, got {axes.size}")
    clouds, names = [], None
    for data in (adata, prediction, truth):
        x, nm = _features(data, use_rep)
        if clouds and x.shape[1] != clouds[0].shape[1]:
            raise ValueError(
                f"the three sets must have the same features; got {clouds[0].shape[1]} "
                f"and {x.shape[1]}"
            )
        clouds.append(x)
        names = names or nm
    basis = basis or ("features" if clouds[0].shape[1] == 2 else "pca")
    xys, (xlabel, ylabel) = _project(clouds, names, basis, dims, seed)
    for a, xy, panel, color in zip(
        axes, xys, titles, ("tab:gray", "tab:blue", "tab:orange"), strict=True
    ):
        a.scatter(xy[:, 0], xy[:, 1], s=point_size, c=color, alpha=0.6, linewidths=0)
        a.set_title(panel)
        a.set_xlabel(xlabel)
        a.set_ylabel(ylabel)
        if basis == "features" and clouds[0].shape[1] == 2:
            a.set_aspect("equal", adjustable="box")
    if title is not None:
        axes[0].figure.suptitle(title)
    return finish(axes, show, save)
