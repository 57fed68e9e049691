"""The McCann (displacement) interpolant between two point clouds via exact OT."""

from __future__ import annotations

import numpy as np
import torch

from bioflow.core.couplings.ot import exact_ot_plan


def mccann_interpolant(
    x0: np.ndarray, x2: np.ndarray, *, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement (McCann) interpolant between two point clouds at ``fraction``.

    The exact OT plan for squared Euclidean cost pairs the clouds; each pair with mass
    contributes the point ``(1 - fraction) x0_i + fraction x2_j`` with that mass.  It is
    the ``"mccann"`` baseline of :func:`bioflow.tl.evaluate_holdout`.

    Parameters
    ----------
    x0
        Cells at the earlier time, shape ``(n0, d)``.
    x2
        Cells at the later time, shape ``(n2, d)``.
    fraction
        Position between them, in ``[0, 1]``.

    Returns
    -------
    points, weights
        ``(k, d)`` support points and their ``(k,)`` masses (summing to 1).

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.core.couplings import mccann_interpolant
    >>> pts, w = mccann_interpolant(np.array([[0.0], [1.0]]), np.array([[3.0], [2.0]]),
    ...                             fraction=0.5)
    >>> sorted(pts.ravel().tolist()), w.tolist()
    ([1.0, 2.0], [0.5, 0.5])
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    x0, x2 = np.asarray(x0), np.asarray(x2)
    if x0.ndim != 2 or x2.ndim != 2 or x0.shape[1] != x2.shape[1]:
        raise ValueError(
            f"x0 and x2 must be (n, d) arrays of equal d, got {x0.shape} and {x2.shape}"
        )
    plan = exact_ot_plan(torch.from_numpy(x0), torch.from_numpy(x2))
    i, j = np.nonzero(plan > 1e-12)
    pts = (1 - fraction) * x0[i] + fraction * x2[j]
    return pts, plan[i, j]
