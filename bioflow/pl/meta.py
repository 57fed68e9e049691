"""Plots for Meta Flow Matching: initial, predicted and observed cells side by side."""

from __future__ import annotations

import os

import numpy as np

from bioflow._docs import share_docs
from bioflow.pl._utils import finish


def _coords(adata, use_rep: str | None, dims: tuple[int, int]) -> np.ndarray:
    from bioflow.data.anndata import read_representation

    x = read_representation(adata, use_rep)
    if x.shape[1] <= max(dims):
        raise ValueError(f"dims={dims} out of range for {x.shape[1]} features")
    return x[:, list(dims)]


@share_docs
def populations(
    adata,
    prediction,
    truth,
    *,
    use_rep: str | None = None,
    dims: tuple[int, int] = (0, 1),
    titles: tuple[str, str, str] = ("initial", "predicted", "observed"),
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
    dims
        The two features plotted.
    titles
        Panel titles.
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
    >>> [a.get_title() for a in axes]
    ['initial', 'predicted', 'observed']
    """
    if use_rep is None and len(prediction.obsm):
        use_rep = next(iter(prediction.obsm))
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    axes = np.asarray(ax).ravel()
    if axes.size != 3:
        raise ValueError(f"ax must hold 3 axes, got {axes.size}")
    for a, data, title, color in zip(
        axes,
        (adata, prediction, truth),
        titles,
        ("tab:gray", "tab:blue", "tab:orange"),
        strict=True,
    ):
        xy = _coords(data, use_rep, dims)
        a.scatter(xy[:, 0], xy[:, 1], s=point_size, c=color, alpha=0.6, linewidths=0)
        a.set_title(title)
        a.set_xlabel(f"{use_rep or 'X'} {dims[0] + 1}")
        a.set_ylabel(f"{use_rep or 'X'} {dims[1] + 1}")
        a.set_aspect("equal", adjustable="box")
    return finish(axes, show, save)
