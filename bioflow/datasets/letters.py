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

    (The ``style="outline"`` letters; the default letters are filled glyphs,
    ``glyph_pixels``.)

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


_PIXELS: dict[tuple[str, int], np.ndarray] = {}


def glyph_pixels(letter: str, font_size: int = 100) -> np.ndarray:
    """Pixel centres inside the filled glyph of ``letter`` (DejaVu Sans), upright.

    The glyph (matplotlib's bundled DejaVu Sans via :class:`matplotlib.textpath.TextPath`
    at ``font_size`` units) is rasterised on a unit grid: a pixel is inside when its
    centre lies inside an odd number of the glyph's closed contours (even-odd rule, so
    the counters of "A", "B", "O" stay empty).  At the default size the capital letters
    give 730 ("I") to 2534 ("W") pixels, the range of the reference's rasterised Arial.

    Returns
    -------
    numpy.ndarray
        ``(m, 2)`` float coordinates ``(x, y)``.

    Examples
    --------
    >>> from bioflow.datasets.letters import glyph_pixels
    >>> glyph_pixels("I").shape
    (730, 2)
    """
    key = (letter, int(font_size))
    if key not in _PIXELS:
        from matplotlib.font_manager import FontProperties
        from matplotlib.path import Path
        from matplotlib.textpath import TextPath

        if len(letter) != 1:
            raise ValueError(f"one character per glyph, got {letter!r}")
        if not letter.strip():
            raise ValueError(f"the font has no outline for {letter!r} (a blank character)")
        path = TextPath((0, 0), letter, size=font_size, prop=FontProperties(family="DejaVu Sans"))
        polys = [p for p in path.to_polygons(closed_only=True) if len(p) >= 3]
        if not polys:
            raise ValueError(f"the font has no outline for {letter!r}")
        ext = path.get_extents()
        xs = np.arange(np.floor(ext.x0), np.ceil(ext.x1)) + 0.5
        ys = np.arange(np.floor(ext.y0), np.ceil(ext.y1)) + 0.5
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        count = np.zeros(len(grid), dtype=int)
        for poly in polys:
            count += Path(poly).contains_points(grid)
        pts = grid[count % 2 == 1]
        if len(pts) == 0:
            raise ValueError(f"the glyph of {letter!r} covers no pixel at font_size={font_size}")
        _PIXELS[key] = pts
    return _PIXELS[key].copy()


def _normalise_glyph(pts: np.ndarray) -> np.ndarray:
    """Scale to [-3, 3] along the longer side, keeping the aspect ratio (as the reference)."""
    lo, hi = pts.min(0), pts.max(0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    out = ((pts - lo) / rng * 2 - 1) * 3.0
    ratio = rng[0] / rng[1]
    if ratio < 1:
        out[:, 0] *= ratio
    else:
        out[:, 1] /= ratio
    return out


def letters(
    letters: str | Sequence[str] | None = None,
    *,
    n_rotations: int = 10,
    n_points: int | None = None,
    noise: float = 0.05,
    source_noise: float = 0.5,
    style: str = "filled",
    font_size: int = 100,
    val_letters: str | Sequence[str] = "X",
    test_letters: str | Sequence[str] = "Y",
    seed: int = 0,
):
    """Letter point clouds: denoise a blurred glyph back to its shape (MFM's letters task).

    As the reference implementation builds it (lazaratan/meta-flow-matching): each
    population is one letter at one random rotation; its final cells are the pixels of
    the filled glyph (``glyph_pixels``), scaled to [-3, 3] keeping the aspect ratio,
    jittered by ``noise`` and then rotated; its initial cells are the same points plus
    ``source_noise * N(0, I)``, so initial cell ``i`` and final cell ``i`` form a pair
    (``obs["pair"]``, the reference's paired coupling).  The default split is the
    reference's: the 24 letters other than X and Y x 10 rotations = 240 training
    populations, X (10 rotations) for validation and Y (10) for test (``obs["split"]``).
    The font is matplotlib's bundled DejaVu Sans instead of the reference's Arial.

    Parameters
    ----------
    letters
        Characters to draw (default: A-Z).
    n_rotations
        Populations per letter.
    n_points
        Points per population: ``None`` keeps every pixel of the glyph (730-2534 at the
        default size); an integer subsamples (without replacement when possible).
    noise, source_noise
        Standard deviations of the target jitter and of the source blur.
    style
        ``"filled"`` (pixels of the glyph, the reference) or ``"outline"`` (points drawn
        uniformly along the contours).
    font_size
        Rasterisation size of the filled glyphs.
    val_letters, test_letters
        Letters whose populations get ``obs["split"]`` ``"val"`` / ``"test"``.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        ``.obsm["X_coords"]`` ``(n, 2)``; ``.obs``: ``population`` (``"A_0"``...),
        ``letter``, ``angle``, ``state`` (``"source"`` / ``"target"``), ``pair`` (pair id
        within the population) and ``split`` (``"train"``, ``"val"``, ``"test"``).

    Examples
    --------
    >>> import bioflow
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=50)
    >>> a.n_obs, sorted(a.obs["state"].unique())
    (400, ['source', 'target'])
    >>> full = bioflow.datasets.letters(n_rotations=1)
    >>> full.obs.groupby("split", observed=True)["population"].nunique().to_dict()
    {'test': 1, 'train': 24, 'val': 1}
    """
    import anndata as ad

    from bioflow.datasets._checks import check_count, check_scale

    if style not in ("filled", "outline"):
        raise ValueError(f"style must be 'filled' or 'outline', got {style!r}")
    check_count("n_rotations", n_rotations)
    if n_points is not None:
        check_count("n_points", n_points)
    check_scale("noise", noise)
    check_scale("source_noise", source_noise)
    if style == "outline" and n_points is None:
        raise ValueError("style='outline' needs n_points")
    chars = list(string.ascii_uppercase if letters is None else letters)
    if len(chars) == 0:
        raise ValueError("letters is empty; pass the characters to draw, e.g. 'ABC'")
    val, test = set(val_letters), set(test_letters)
    rng = np.random.default_rng(seed)
    coords: list = []
    cols: dict[str, list] = {
        k: [] for k in ("population", "letter", "angle", "state", "pair", "split")
    }
    for letter in chars:
        split = "val" if letter in val else "test" if letter in test else "train"
        for r in range(n_rotations):
            angle = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            if style == "filled":
                pts = _normalise_glyph(glyph_pixels(letter, font_size))
                if n_points is not None:
                    pick = rng.choice(len(pts), n_points, replace=n_points > len(pts))
                    pts = pts[pick]
                tgt = (pts + noise * rng.standard_normal(pts.shape)) @ rot.T
            else:
                tgt = glyph_points(letter, n_points, rng) @ rot.T
                tgt = tgt + noise * rng.standard_normal(tgt.shape)
            src = tgt + source_noise * rng.standard_normal(tgt.shape)
            m = len(tgt)
            coords += [src, tgt]
            for state in ("source", "target"):
                cols["population"].append(np.full(m, f"{letter}_{r}", dtype=object))
                cols["letter"].append(np.full(m, letter, dtype=object))
                cols["angle"].append(np.full(m, angle))
                cols["state"].append(np.full(m, state, dtype=object))
                cols["pair"].append(np.arange(m))
                cols["split"].append(np.full(m, split, dtype=object))
    obs = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for c in ("population", "letter", "state", "split"):
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
