"""Where pushed cells end: the share of endpoints off the observed data."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from bioflow.metrics.distribution import ArrayLike, _as_points


def off_data_fraction(pred: ArrayLike, target: ArrayLike, *, quantile: float = 0.95) -> float:
    """Share of predicted cells farther from every target cell than the target's own spacing.

    The threshold is the ``quantile`` of the distances from each target cell to its nearest
    *other* target cell (the target's own nearest-neighbour distance); a predicted cell
    whose nearest target cell is farther than that lies in a region the data does not
    occupy (for example the gap between two branches).

    Parameters
    ----------
    pred
        Predicted cells ``(n, d)``.
    target
        Observed cells ``(m, d)``, ``m >= 2``.
    quantile
        Quantile in ``(0, 1]`` of the target's nearest-neighbour distances.

    Returns
    -------
    float
        Fraction in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.metrics import off_data_fraction
    >>> target = np.random.default_rng(0).normal(size=(500, 2))
    >>> off_data_fraction(target[:100] + 0.01, target), off_data_fraction(target + 10, target)
    (0.0, 1.0)
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must lie in (0, 1], got {quantile}")
    p, t = _as_points(pred, "pred"), _as_points(target, "target")
    if t.shape[0] < 2:
        raise ValueError(f"target needs at least 2 cells, got {t.shape[0]}")
    if p.shape[1] != t.shape[1]:
        raise ValueError(f"pred has {p.shape[1]} features but target has {t.shape[1]}")
    tree = cKDTree(t)
    own, _ = tree.query(t, k=2)
    threshold = float(np.quantile(own[:, 1], quantile))
    dist, _ = tree.query(p, k=1)
    return float((dist > threshold).mean())
