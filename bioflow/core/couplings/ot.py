"""Minibatch optimal-transport couplings: exact (assignment / POT emd) and entropic."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from bioflow.core.couplings.base import CoupledBatch, Coupling


def _stacked_squared_distances(a: Tensor, b: Tensor) -> Tensor:
    # (K, n, d), (K, m, d) -> (K, n, m) by |a|^2 + |b|^2 - 2 a.b, negatives from rounding at 0
    d = torch.baddbmm(
        (a * a).sum(2)[:, :, None] + (b * b).sum(2)[:, None, :], a, b.transpose(1, 2), alpha=-2.0
    )
    return d.clamp_min_(0.0)


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``(n, m)`` for inputs ``(n, ...)``, ``(m, ...)``."""
    a = x0.reshape(1, x0.shape[0], -1)
    b = x1.reshape(1, x1.shape[0], -1)
    return _stacked_squared_distances(a, b)[0]


def assignment_cost(x0: Tensor, x1: Tensor) -> np.ndarray:
    """Squared-distance cost ``(n, m)`` for the assignment solver, on the CPU.

    float32 (half the memory traffic of float64) after centring both clouds on their
    joint mean, which keeps the ``|a|^2 + |b|^2 - 2 a.b`` expansion accurate to float32
    rounding of the distances themselves; float64 inputs stay float64.
    """
    return assignment_costs(x0[None], x1[None])[0]


def assignment_costs(x0s: Tensor, x1s: Tensor) -> np.ndarray:
    """:func:`assignment_cost` of ``K`` problems at once: ``(K, n, m)`` for ``(K, n, ...)``.

    A fixed number of tensor operations whatever ``K`` (each releases and re-takes
    Python's GIL, which is slow in a loader thread beside a busy training step), and the
    same values as :func:`assignment_cost` on each problem.
    """
    a = x0s.detach().reshape(x0s.shape[0], x0s.shape[1], -1)
    b = x1s.detach().reshape(x1s.shape[0], x1s.shape[1], -1)
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    a, b = a.to("cpu", dtype), b.to("cpu", dtype)
    center = torch.cat([a, b], 1).mean(1, keepdim=True)
    return _stacked_squared_distances(a - center, b - center).numpy()


def _check_plan(plan: np.ndarray | Tensor, what: str) -> None:
    total = float(plan.sum())
    finite = (
        bool(np.isfinite(plan).all())
        if isinstance(plan, np.ndarray)
        else bool(torch.isfinite(plan).all())
    )
    if not finite or not np.isfinite(total) or total < 1e-8:
        raise RuntimeError(
            f"{what} returned an invalid transport plan (sum={total:.3g}, finite={finite}); "
            "check the inputs for NaN/inf or, for Sinkhorn, increase `reg`"
        )


def exact_ot_plan(
    x0: Tensor, x1: Tensor, a: Tensor | None = None, b: Tensor | None = None
) -> np.ndarray:
    """Exact OT plan for squared Euclidean cost, solved by POT ``emd`` in float64.

    Parameters
    ----------
    x0, x1
        Point clouds of shape ``(n, ...)`` and ``(m, ...)``.
    a, b
        Marginal weights ``(n,)`` and ``(m,)``; uniform when ``None``.

    Returns
    -------
    numpy.ndarray
        Plan of shape ``(n, m)`` in float64 summing to 1.
    """
    n, m = x0.shape[0], x1.shape[0]
    cost = squared_distances(x0.detach().double(), x1.detach().double()).cpu().numpy()
    wa = np.full(n, 1.0 / n) if a is None else np.asarray(a, dtype=np.float64)
    wb = np.full(m, 1.0 / m) if b is None else np.asarray(b, dtype=np.float64)
    wa, wb = wa / wa.sum(), wb / wb.sum()
    import ot  # POT loads on first use

    plan = ot.emd(wa, wb, cost, numItermax=max(100000, 50 * n * m))
    _check_plan(plan, "ot.emd")
    return plan


def sinkhorn_plan(
    x0: Tensor,
    x1: Tensor,
    reg: float,
    normalize_cost: bool = False,
    num_iter: int = 1000,
    tol: float = 1e-7,
) -> Tensor:
    """Entropic OT plan for squared Euclidean cost, by Sinkhorn iterations (POT) in float64.

    The plain (kernel-space) iterations are used when ``max(cost) / reg`` is small enough
    for ``exp(-cost / reg)`` not to underflow, and log-domain iterations otherwise.

    Parameters
    ----------
    x0, x1
        Point clouds of shape ``(n, ...)`` and ``(m, ...)``.
    reg
        Entropic regularisation; for a Brownian bridge of scale ``sigma`` use ``2 sigma**2``.
    normalize_cost
        Divide the cost by its maximum first (then ``reg`` is relative).
    num_iter
        Maximum number of Sinkhorn iterations.
    tol
        Stop when the marginal violation falls below this.

    Returns
    -------
    torch.Tensor
        Plan of shape ``(n, m)`` on the device of ``x0``, float64.
    """
    if reg <= 0:
        raise ValueError(f"Sinkhorn `reg` must be > 0, got {reg}")
    cost = squared_distances(x0.detach().double(), x1.detach().double()).cpu().numpy()
    if normalize_cost:
        cost = cost / max(float(cost.max()), 1e-12)
    n, m = cost.shape
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    # exp(-600) ~ 1e-261 is still a normal float64: plain iterations are safe below that.
    method = "sinkhorn" if float(cost.max()) / reg < 600.0 else "sinkhorn_log"
    import ot  # POT loads on first use

    with warnings.catch_warnings():
        # Convergence warnings are expected at small reg; the plan is checked below.
        warnings.simplefilter("ignore")
        plan = ot.sinkhorn(a, b, cost, reg, method=method, numItermax=num_iter, stopThr=tol)
    _check_plan(plan, "Sinkhorn")
    return torch.from_numpy(plan).to(x0.device)


def _rows_from_plan(plan: Tensor, generator: torch.Generator | None) -> Tensor:
    """For each row ``i`` draw a column ``j ~ plan[i] / plan[i].sum()``, shape ``(n,)``."""
    p = plan.detach().cpu().double()
    p = p / p.sum(1, keepdim=True).clamp_min(1e-300)
    bad = ~torch.isfinite(p).all(1) | (p.sum(1) <= 0)
    if bool(bad.any()):
        p[bad] = 1.0 / p.shape[1]
    return torch.multinomial(p, 1, generator=generator).squeeze(1)


# up to this many dimensions chained exact OT makes its costs inside the compiled solver
# (T n^2 d operations, no GIL held); above it matrix products are cheaper
CHAIN_MAX_DIM = 32


class ExactOTCoupling(Coupling):
    """Exact minibatch OT pairs for squared Euclidean cost (OT-CFM).

    With equal batch sizes and uniform weights the optimal plan is a permutation, found
    as an assignment problem by an epsilon-scaling auction
    (:func:`~bioflow.core.couplings.assignment.solve_assignment`; no duplicated or dropped
    points).  Otherwise POT's
    network-simplex ``emd`` gives the plan, and each source point draws its partner from
    its row of the plan.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> x0 = torch.tensor([[0.0], [10.0]]); x1 = torch.tensor([[11.0], [1.0]])
    >>> ExactOTCoupling()(x0, x1).x1.squeeze(1).tolist()
    [1.0, 11.0]
    """

    permutation_pairs = True

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        n, m = x0.shape[0], x1.shape[0]
        if n == m:
            from bioflow.core.couplings.assignment import solve_assignment  # numba, on first use

            cost = assignment_cost(x0, x1)
            if not np.isfinite(cost).all():
                raise ValueError("cannot couple batches with NaN or infinite values")
            j = torch.as_tensor(solve_assignment(cost), device=x1.device)
        else:
            plan = torch.from_numpy(exact_ot_plan(x0, x1))
            j = _rows_from_plan(plan, generator).to(x1.device)
        i = torch.arange(n, device=x0.device)
        return CoupledBatch(x0=x0, x1=x1[j], index0=i, index1=j)

    def assign_many(self, x0s: Sequence[Tensor], x1s: Sequence[Tensor]) -> Tensor:
        """Optimal partners of ``K`` equal-size problems, solved in one compiled call.

        The same pairs as ``self(x0s[k], x1s[k]).index1`` for each ``k``, with the Python
        overhead of one problem and the GIL released throughout the solve.

        Parameters
        ----------
        x0s, x1s
            ``K`` sources and ``K`` targets, each ``(n, ...)`` with one ``n`` for all
            (sequences of tensors or stacked ``(K, n, ...)`` tensors).

        Returns
        -------
        Tensor
            ``(K, n)`` int64 on the device of ``x1s[0]``: in problem ``k`` source ``i``
            pairs with target ``out[k, i]``.
        """
        from bioflow.core.couplings.assignment import solve_assignments  # numba, on first use

        if len(x0s) != len(x1s) or len(x0s) == 0:
            raise ValueError(f"need as many sources as targets (>= 1), got {len(x0s)}, {len(x1s)}")
        if not isinstance(x0s, Tensor) or not isinstance(x1s, Tensor):
            sizes = {x.shape[0] for x in (*x0s, *x1s)}
            if len(sizes) != 1:
                raise ValueError(f"assign_many needs problems of one size, got {sorted(sizes)}")
            x0s, x1s = torch.stack(list(x0s)), torch.stack(list(x1s))
        elif x0s.shape[1] != x1s.shape[1]:
            raise ValueError(
                f"assign_many needs problems of one size, got {x0s.shape[1]} and {x1s.shape[1]}"
            )
        costs = assignment_costs(x0s, x1s)
        try:
            cols = solve_assignments(costs)
        except ValueError as err:
            raise ValueError("cannot couple batches with NaN or infinite values") from err
        return torch.from_numpy(cols).to(x1s[0].device)

    def chain_rows(self, points: Tensor) -> Tensor:
        """Rows of the exact-OT chains through ``T`` equal-size batches.

        Batches ``k`` and ``k + 1`` are paired by exact OT and the pairings composed
        (:func:`~bioflow.core.couplings.assignment.compose_assignments`).  Few dimensions
        (<= ``CHAIN_MAX_DIM``): costs and plans in one compiled call that holds the GIL for
        none of it, or from batches of 512 on one such call per interval in parallel
        threads; more dimensions: the costs by matrix products, then the plans
        (:meth:`assign_many`).

        Parameters
        ----------
        points
            Finite batches of shape ``(T, n, ...)``, ``T >= 1``.

        Returns
        -------
        Tensor
            ``(T, n)`` int64 on the device of ``points``: the chain starting at row ``i`` of
            batch 0 sits on row ``out[k, i]`` of batch ``k``.
        """
        from bioflow.core.couplings.assignment import (  # numba, on first use
            chain_rows,
            compose_assignments,
        )
        from bioflow.core.couplings.batched import PARALLEL_MIN_SIZE, _pool

        if points.dim() < 2 or points.shape[0] < 1:
            raise ValueError(f"points must have shape (T >= 1, n, ...), got {tuple(points.shape)}")
        flat = points.detach().reshape(points.shape[0], points.shape[1], -1)
        n_times, n = flat.shape[0], flat.shape[1]
        if flat.shape[-1] > CHAIN_MAX_DIM:
            cols = np.zeros((0, n), dtype=np.int64)
            if n_times > 1:
                cols = self.assign_many(flat[:-1], flat[1:]).cpu().numpy()
            rows = compose_assignments(cols)
        else:
            arr = flat.to("cpu").numpy()
            if not np.isfinite(arr).all():
                raise ValueError("cannot couple batches with NaN or infinite values")
            # a thread hand-off costs more than it saves on small batches
            threaded = n_times > 2 and n * n >= 16 * PARALLEL_MIN_SIZE and (os.cpu_count() or 1) > 1
            if not threaded:
                rows = chain_rows(arr)
            else:
                jobs = [_pool().submit(chain_rows, arr[k : k + 2]) for k in range(n_times - 1)]
                rows = compose_assignments(np.stack([job.result()[1] for job in jobs]))
        return torch.from_numpy(rows).to(points.device)

    def warmup(self) -> None:
        """Load the compiled assignment kernels (numba, cached on disk) for both cost dtypes."""
        from bioflow.core.couplings.assignment import (
            chain_rows,
            solve_assignment,
            solve_assignments,
        )

        for dtype in (np.float32, np.float64):
            solve_assignment(np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype))
            solve_assignments(np.array([[[0.0, 1.0], [1.0, 0.0]]], dtype=dtype))
            chain_rows(np.array([[[0.0]], [[1.0]]], dtype=dtype))


class SinkhornCoupling(Coupling):
    """Entropic minibatch OT (SB-CFM): each source point draws its partner from its plan row.

    Parameters
    ----------
    reg
        Entropic regularisation ``epsilon`` (SB-CFM uses ``2 sigma**2``).
    normalize_cost
        Divide the cost matrix by its maximum before solving.
    num_iter
        Maximum Sinkhorn iterations.
    """

    def __init__(
        self, reg: float = 0.5, normalize_cost: bool = False, num_iter: int = 1000
    ) -> None:
        if reg <= 0:
            raise ValueError(f"Sinkhorn `reg` must be > 0, got {reg}")
        self.reg = float(reg)
        self.normalize_cost = bool(normalize_cost)
        self.num_iter = int(num_iter)

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """Entropic plan of shape ``(n, m)``; see :func:`~bioflow.core.couplings.sinkhorn_plan`."""
        return sinkhorn_plan(x0, x1, self.reg, self.normalize_cost, self.num_iter)

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        j = _rows_from_plan(self.plan(x0, x1), generator).to(x1.device)
        i = torch.arange(x0.shape[0], device=x0.device)
        return CoupledBatch(x0=x0, x1=x1[j], index0=i, index1=j)

    def __repr__(self) -> str:
        return f"SinkhornCoupling(reg={self.reg}, normalize_cost={self.normalize_cost})"
