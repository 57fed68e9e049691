"""Synthetic populations for Meta Flow Matching: letter glyphs and composition-driven responses."""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import pandas as pd

_GLYPHS: dict[str, np.ndarray] = {}


def _outline(letter: str) -> list[np.ndarray]:
    """Closed polygons of a glyph's outline (DejaVu Sans, matplotlib's bundled font)."""
    if not isinstance(letter, str) or len(letter) != 1 or not letter.strip():
        raise ValueError(f"the font has no outline for {letter!r}: give single visible characters")
    if letter not in _GLYPHS:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath

        path = TextPath((0, 0), letter, size=1.0, prop=FontProperties(family="DejaVu Sans"))
        polys = [p for p in path.to_polygons(closed_only=True) if len(p) >= 2]
        if not polys:
            raise ValueError(f"the font has no outline for {letter!r}")
        _GLYPHS[letter] = polys
    return _GLYPHS[letter]


def glyph_points(letter: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points drawn uniformly along the outline of ``letter``, scaled to [-3, 3].

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.datasets.letters import glyph_points
    >>> pts = glyph_points("A", 200, np.random.default_rng(0))
    >>> pts.shape, bool(np.abs(pts).max() <= 3.0 + 1e-9)
    ((200, 2), True)
    """
    segs = []
    for poly in _outline(letter):
        segs.append(np.stack([poly[:-1], poly[1:]], axis=1))
    segs = np.concatenate(segs)  # (m, 2, 2)
    lengths = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1)
    keep = lengths > 0
    segs, lengths = segs[keep], lengths[keep]
    which = rng.choice(len(segs), n, p=lengths / lengths.sum())
    u = rng.random((n, 1))
    pts = segs[which, 0] * (1 - u) + segs[which, 1] * u
    allv = segs.reshape(-1, 2)
    center = (allv.max(0) + allv.min(0)) / 2
    half = np.abs(allv - center).max()
    return (pts - center) / half * 3.0


def letters(
    letters: str | Sequence[str] = string.ascii_uppercase,
    *,
    n_rotations: int = 10,
    n_points: int = 500,
    noise: float = 0.05,
    source_noise: float = 0.5,
    seed: int = 0,
):
    """Letter point clouds: denoise a blurred glyph back to its outline.

    For each letter and each of ``n_rotations`` random rotations, ``n_points`` points are
    drawn along the glyph outline (DejaVu Sans via :class:`matplotlib.textpath.TextPath`),
    scaled to [-3, 3], rotated and jittered by ``noise`` -- the final cells; the initial
    cells are the same points plus ``source_noise * N(0, I)``.  A population is one
    (letter, rotation); what a cell should do depends on the whole population's shape.

    Parameters
    ----------
    letters
        Characters to draw.
    n_rotations
        Populations per letter.
    n_points
        Points per population (initial and final each).
    noise, source_noise
        Standard deviations of the target jitter and of the source blur.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        ``2 * n_points`` cells per population; ``.obsm["X_coords"]`` ``(n, 2)``; ``.obs``:
        ``population`` (``"A_0"``...), ``letter``, ``angle`` and ``state``
        (``"source"`` / ``"target"``).

    Examples
    --------
    >>> import bioflow
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=50)
    >>> a.n_obs, sorted(a.obs["state"].unique())
    (400, ['source', 'target'])
    """
    import anndata as ad

    from bioflow.datasets._checks import check_count, check_scale

    if isinstance(letters, str):
        letters = list(letters)
    if len(letters) == 0:
        raise ValueError("letters is empty; pass the characters to draw, e.g. 'ABC'")
    check_count("n_rotations", n_rotations)
    check_count("n_points", n_points)
    check_scale("noise", noise)
    check_scale("source_noise", source_noise)
    rng = np.random.default_rng(seed)
    coords, obs = [], []
    for letter in letters:
        for r in range(n_rotations):
            angle = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            tgt = glyph_points(letter, n_points, rng) @ rot.T
            tgt = tgt + noise * rng.standard_normal(tgt.shape)
            src = tgt + source_noise * rng.standard_normal(tgt.shape)
            coords += [src, tgt]
            for state in ("source", "target"):
                obs.append(
                    pd.DataFrame(
                        {
                            "population": f"{letter}_{r}",
                            "letter": letter,
                            "angle": angle,
                            "state": state,
                        },
                        index=range(n_points),
                    )
                )
    obs = pd.concat(obs, ignore_index=True)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for c in ("population", "letter", "state"):
        obs[c] = obs[c].astype("category")
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_coords"] = np.concatenate(coords).astype(np.float32)
    return adata


def population_response(
    n_populations: int = 40,
    *,
    n_cells: int = 400,
    n_cell_types: int = 4,
    dim: int = 5,
    drugs: Sequence[str] = ("drugA", "drugB"),
    concentration: float = 0.5,
    effect: float = 3.0,
    seed: int = 0,
):
    """Populations whose response to a drug is set by their own composition.

    Cells come from ``n_cell_types`` Gaussian clusters in ``dim`` dimensions; each
    population mixes them with its own Dirichlet(``concentration``) weights ``w``.  Under
    drug ``j`` every cell of the population moves by ``effect * M_j w`` (``M_j`` a fixed
    random matrix), plus a cell-type-specific ``effect / 2 * S_jk``.  The shift of a
    population can thus only be predicted from its composition, which its control cells
    reveal; a model that ignores the population (or meets an unseen one) fails.

    Parameters
    ----------
    n_populations
        Number of populations.
    n_cells
        Cells per population and treatment (control and each drug).
    n_cell_types, dim
        Clusters and features.
    drugs
        Drug names; controls are labelled ``"control"``.
    concentration
        Dirichlet concentration of the mixture weights (small: dominated by one type).
    effect
        Scale of the responses.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        ``.X`` ``(n, dim)``; ``.obs``: ``population`` (``"pop0"``...), ``treatment``
        (``"control"`` or a drug) and ``cell_type``; ``.uns["population_weights"]``
        ``(n_populations, n_cell_types)``.

    Examples
    --------
    >>> import bioflow
    >>> a = bioflow.datasets.population_response(4, n_cells=50)
    >>> a.shape, sorted(a.obs["treatment"].unique())
    ((600, 5), ['control', 'drugA', 'drugB'])
    """
    import anndata as ad

    from bioflow.datasets._checks import check_count, check_scale

    check_count("n_populations", n_populations)
    check_count("n_cells", n_cells)
    check_count("n_cell_types", n_cell_types)
    check_count("dim", dim)
    if isinstance(drugs, str) or len(drugs) == 0 or len(set(map(str, drugs))) != len(drugs):
        raise ValueError(f"drugs must be a non-empty list of distinct names, got {drugs!r}")
    if "control" in map(str, drugs):
        raise ValueError("drugs may not include 'control' (the label of the control cells)")
    check_scale("effect", effect)
    if not (isinstance(concentration, int | float) and 0 < concentration < float("inf")):
        raise ValueError(f"concentration must be a finite number > 0, got {concentration!r}")
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.5, size=(n_cell_types, dim))
    mats = rng.normal(size=(len(drugs), dim, n_cell_types)) / np.sqrt(dim)
    type_shift = rng.normal(size=(len(drugs), n_cell_types, dim)) / np.sqrt(dim)
    weights = rng.dirichlet(np.full(n_cell_types, concentration), size=n_populations)
    xs, obs = [], []
    for i in range(n_populations):
        w = weights[i]
        for j, treat in enumerate(["control", *drugs]):
            types = rng.choice(n_cell_types, n_cells, p=w)
            x = centers[types] + 0.5 * rng.standard_normal((n_cells, dim))
            if j > 0:
                x = x + effect * (mats[j - 1] @ w) + effect / 2 * type_shift[j - 1, types]
            xs.append(x)
            obs.append(
                pd.DataFrame(
                    {
                        "population": f"pop{i}",
                        "treatment": treat,
                        "cell_type": [f"type{t}" for t in types],
                    }
                )
            )
    obs = pd.concat(obs, ignore_index=True)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for c in obs:
        obs[c] = obs[c].astype("category")
    adata = ad.AnnData(
        np.concatenate(xs).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"f{k}" for k in range(dim)]),
    )
    adata.uns["population_weights"] = weights
    return adata
