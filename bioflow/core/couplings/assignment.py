"""Exact linear assignment by the epsilon-scaling auction algorithm (Bertsekas), in numba.

For minibatch OT with equal batch sizes and uniform weights the optimal plan is a
permutation.  On point clouds of consecutive time points (a shifted, stretched cloud)
augmenting-path solvers (scipy's ``linear_sum_assignment``, LAPJV) and POT's network
simplex are slow; the auction with epsilon scaling was 4-6x faster than ``ot.emd`` at
batch 1024 here (see ``benchmarks/dynamics_vs_torchcfm.py``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _auction(cost: np.ndarray, eps_start: float, eps_end: float, factor: float) -> np.ndarray:
    n = cost.shape[0]
    prices = np.zeros(n)
    owner = np.full(n, -1, np.int64)
    assigned = np.full(n, -1, np.int64)
    queue = np.empty(n, np.int64)
    eps = eps_start
    while True:
        # Each phase restarts the assignment but keeps the prices of the previous phase.
        owner[:] = -1
        assigned[:] = -1
        for i in range(n):
            queue[i] = n - 1 - i
        qlen = n
        while qlen > 0:
            qlen -= 1
            i = queue[qlen]
            best, second, jbest = -np.inf, -np.inf, -1
            for j in range(n):
                v = -cost[i, j] - prices[j]
                if v > best:
                    second, best, jbest = best, v, j
                elif v > second:
                    second = v
            if second == -np.inf:  # a single object
                second = best
            prices[jbest] += best - second + eps
            prev = owner[jbest]
            if prev >= 0:
                assigned[prev] = -1
                queue[qlen] = prev
                qlen += 1
            owner[jbest] = i
            assigned[i] = jbest
        if eps <= eps_end:
            return assigned
        eps = max(eps / factor, eps_end)


def solve_assignment(cost: np.ndarray, rtol: float = 1e-9, factor: float = 8.0) -> np.ndarray:
    """Minimum-cost perfect assignment of a square cost matrix.

    Epsilon-scaling forward auction: each unassigned row bids for its best column, raising
    that column's price by the gap to its second-best value plus ``eps``; ``eps`` shrinks by
    ``factor`` per phase down to ``rtol * (max reduced cost) / n``.  The result is optimal to
    within ``n * eps_end = rtol * max reduced cost`` in total cost (Bertsekas 1988), i.e.
    optimal up to floating-point tolerance.

    Parameters
    ----------
    cost
        Finite cost matrix of shape ``(n, n)``; float32 stays float32 (half the memory
        traffic; prices and bids are float64 either way), other types become float64.
    rtol
        Final tolerance relative to the largest row-reduced cost.
    factor
        Epsilon reduction per phase (> 1).

    Returns
    -------
    numpy.ndarray
        ``cols`` of shape ``(n,)``: row ``i`` is assigned column ``cols[i]`` (a permutation).

    Examples
    --------
    >>> import numpy as np
    >>> from bioflow.core.couplings.assignment import solve_assignment
    >>> solve_assignment(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])).tolist()
    [1, 0, 2]
    """
    c = np.asarray(cost)
    if c.dtype not in (np.float32, np.float64):
        c = c.astype(np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"cost must be a square matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost contains NaN or infinite values")
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    n = c.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Row reduction leaves the optimal assignment unchanged and sets the scale of eps.
    c = c - c.min(axis=1, keepdims=True)
    scale = float(c.max())
    if scale == 0.0:
        return np.arange(n)
    eps_end = rtol * scale / n
    return _auction(np.ascontiguousarray(c), scale / 4.0, eps_end, float(factor))
