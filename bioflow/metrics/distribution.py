"""Distribution metrics between predicted and observed point clouds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import ot
import torch

ArrayLike = np.ndarray | torch.Tensor

MMD_GAMMAS: tuple[float, ...] = (2.0, 1.0, 0.5, 0.1, 0.01, 0.005)


def _as_points(x: ArrayLike, name: str) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _as_weights(w: ArrayLike | None, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    a = np.asarray(w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w, np.float64)
    if a.shape != (n,) or not np.isfinite(a).all() or (a < 0).any() or a.sum() <= 0:
        raise ValueError(
            f"{name} must be {n} finite non-negative weights with a positive sum, got shape "
            f"{a.shape}"
        )
    return a / a.sum()


def _subsample(x: np.ndarray, w: np.ndarray, max_points: int | None, rng) -> tuple:
    if max_points is None or x.shape[0] <= max_points:
        return x, w
    idx = rng.choice(x.shape[0], size=max_points, replace=False, p=None)
    w = w[idx]
    return x[idx], w / w.sum()


def check_max_points(max_points) -> None:
    """Refuse a ``max_points`` that is not ``None`` or an integer >= 1."""
    if max_points is None:
        return
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise ValueError(f"max_points must be an integer >= 1 or None, got {max_points!r}")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1 (or None for no subsampling), got {max_points}")


def _pair(x, y, wx, wy, max_points, seed):
    check_max_points(max_points)
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but y has {y.shape[1]}")
    wx, wy = _as_weights(wx, x.shape[0], "x_weights"), _as_weights(wy, y.shape[0], "y_weights")
    rng = np.random.default_rng(seed)
    x, wx = _subsample(x, wx, max_points, rng)
    y, wy = _subsample(y, wy, max_points, rng)
    return x, y, wx, wy


def wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    p: int = 1,
    *,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
    max_points: int | None = 5000,
    seed: int = 0,
) -> float:
    """Exact Wasserstein-p distance (p = 1 or 2) between two point clouds, by POT ``emd2``.

    Parameters
    ----------
    x, y
        Point clouds of shape ``(n, d)`` and ``(m, d)``.
    p
        1 for Euclidean ground cost, 2 for squared Euclidean (the square root is returned).
    x_weights, y_weights
        Optional non-negative weights ``(n,)`` / ``(m,)``; uniform when ``None``.
    max_points
        Larger clouds are subsampled to this many points (the exact solver is O(n^3)).
    seed
        Seed of that subsampling.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.metrics import wasserstein
    >>> round(wasserstein(np.zeros((3, 2)), np.ones((3, 2))), 4)
    1.4142
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    x, y, wx, wy = _pair(x, y, x_weights, y_weights, max_points, seed)
    m = ot.dist(x, y, metric="sqeuclidean")
    if p == 1:
        m = np.sqrt(np.maximum(m, 0.0))
    cost = float(ot.emd2(wx, wy, m, numItermax=10_000_000))
    return cost if p == 1 else float(np.sqrt(max(cost, 0.0)))


def mmd_rbf(
    x: ArrayLike,
    y: ArrayLike,
    gammas: Sequence[float] = MMD_GAMMAS,
    *,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
    max_points: int | None = 5000,
    seed: int = 0,
) -> float:
    """Squared RBF-kernel MMD averaged over ``gammas``, ``k(a, b) = exp(-gamma ||a - b||^2)``.

    The (biased, V-statistic) estimate ``E k(x, x') + E k(y, y') - 2 E k(x, y)`` is used, as
    in the Meta Flow Matching evaluation; it is >= 0 and 0 for identical clouds.

    Parameters
    ----------
    x, y
        Point clouds ``(n, d)`` and ``(m, d)``.
    gammas
        Kernel bandwidths to average over.
    x_weights, y_weights, max_points, seed
        As in :func:`wasserstein`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.metrics import mmd_rbf
    >>> mmd_rbf(np.zeros((4, 2)), np.zeros((4, 2)))
    0.0
    """
    gam = np.asarray(list(gammas) if not np.isscalar(gammas) else [gammas], dtype=np.float64)
    if gam.size == 0 or not np.isfinite(gam).all() or (gam <= 0).any():
        raise ValueError(f"gammas must be a non-empty list of finite numbers > 0, got {gammas!r}")
    x, y, wx, wy = _pair(x, y, x_weights, y_weights, max_points, seed)
    dxx, dyy, dxy = (ot.dist(a, b, metric="sqeuclidean") for a, b in ((x, x), (y, y), (x, y)))
    vals = []
    for g in gam.tolist():
        kxx = wx @ np.exp(-g * dxx) @ wx
        kyy = wy @ np.exp(-g * dyy) @ wy
        kxy = wx @ np.exp(-g * dxy) @ wy
        vals.append(kxx + kyy - 2 * kxy)
    return float(max(np.mean(vals), 0.0))


def correlation_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson r between the pairwise feature-correlation vectors of two point clouds.

    Each cloud's ``d x d`` correlation matrix is flattened to its upper triangle (``d(d-1)/2``
    entries); the two vectors are correlated.  Constant features count as zero correlation.

    Parameters
    ----------
    x, y
        Point clouds ``(n, d)`` and ``(m, d)`` with ``d >= 3``.

    Returns
    -------
    float
        In [-1, 1].
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape[1] != y.shape[1] or x.shape[1] < 3:
        raise ValueError("x and y need the same number (>= 3) of features")

    def upper(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(a, rowvar=False)
        return np.nan_to_num(c[np.triu_indices(a.shape[1], k=1)])

    u, v = upper(x), upper(y)
    if u.std() == 0 or v.std() == 0:
        return 0.0
    return float(np.corrcoef(u, v)[0, 1])


def compare_distributions(
    pred: ArrayLike,
    true: ArrayLike,
    *,
    pred_weights: ArrayLike | None = None,
    max_points: int | None = 5000,
    seed: int = 0,
    correlation: bool = False,
) -> dict[str, float]:
    """W1, W2 and MMD (and optionally feature-correlation r) of ``pred`` against ``true``.

    Parameters
    ----------
    pred, true
        Point clouds ``(n, d)`` and ``(m, d)``.
    pred_weights
        Optional weights of the predicted points ``(n,)``.
    max_points, seed
        Subsampling of large clouds, as in :func:`wasserstein`.
    correlation
        Also compute :func:`correlation_r` (key ``"r"``).

    Returns
    -------
    dict
        Keys ``"w1"``, ``"w2"``, ``"mmd"`` (and ``"r"``).
    """
    kw = dict(x_weights=pred_weights, max_points=max_points, seed=seed)
    out = {
        "w1": wasserstein(pred, true, 1, **kw),
        "w2": wasserstein(pred, true, 2, **kw),
        "mmd": mmd_rbf(pred, true, **kw),
    }
    if correlation:
        out["r"] = correlation_r(pred, true)
    return out


def mean_shift_errors(pred: ArrayLike, true: ArrayLike) -> dict[str, float]:
    """Errors between the feature means of two point clouds (the MFM paper's mean metrics).

    With ``delta = mean(pred) - mean(true)`` over ``d`` features: ``mean_mse`` is
    ``mean(delta ** 2)``, ``mean_l2`` its square root (the reference's "Mean_L2", an RMSE)
    and ``mean_l1`` is ``mean(|delta|)``.

    Parameters
    ----------
    pred, true
        Point clouds ``(n, d)`` and ``(m, d)``.

    Returns
    -------
    dict
        Keys ``"mean_mse"``, ``"mean_l2"``, ``"mean_l1"``.

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.metrics import mean_shift_errors
    >>> mean_shift_errors(np.zeros((4, 2)), np.full((3, 2), 2.0))
    {'mean_mse': 4.0, 'mean_l2': 2.0, 'mean_l1': 2.0}
    """
    a = np.asarray(pred, dtype=np.float64)
    b = np.asarray(true, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(
            f"pred and true must be non-empty (n, d) arrays with equal d, got {a.shape} "
            f"and {b.shape}"
        )
    delta = a.mean(0) - b.mean(0)
    mse = float(np.mean(delta**2))
    return {
        "mean_mse": mse,
        "mean_l2": float(np.sqrt(mse)),
        "mean_l1": float(np.mean(np.abs(delta))),
    }
