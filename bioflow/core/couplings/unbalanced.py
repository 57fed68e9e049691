"""Unbalanced entropic OT couplings: cells may grow or die between two time points."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from ot.unbalanced import sinkhorn_unbalanced
from torch import Tensor

from bioflow.core.couplings.base import CoupledBatch, Coupling
from bioflow.core.couplings.ot import _check_plan, squared_distances


def unbalanced_plan(
    x0: Tensor,
    x1: Tensor,
    *,
    reg: float = 0.05,
    reg_m: float = 1.0,
    a: Tensor | None = None,
    num_iter: int = 1000,
) -> np.ndarray:
    """Semi-relaxed unbalanced entropic OT plan (POT ``sinkhorn_unbalanced``), float64.

    Solves ``min <P, C> + reg KL(P | a b^T) + reg_m KL(P 1 | a)`` with the target marginal
    ``P^T 1 = b`` kept exact: every later cell must come from somewhere, while a source
    cell may send more mass (it divided) or less (it died) than ``a`` gives it.  The
    squared-Euclidean cost is divided by its mean, so ``reg`` and ``reg_m`` are relative.

    Parameters
    ----------
    x0, x1
        Point clouds ``(n, d)`` and ``(m, d)``.
    reg
        Entropic regularisation (relative to the mean cost).
    reg_m
        Strength of the source-marginal penalty: large values approach balanced OT, small
        values let mass be created or destroyed cheaply.
    a
        Prior source masses ``(n,)`` (e.g. ``exp(g dt)`` from known growth rates);
        uniform when ``None``.
    num_iter
        Maximum iterations.

    Returns
    -------
    numpy.ndarray
        Plan ``(n, m)``; its column sums are ``1 / m``.
    """
    if reg <= 0 or reg_m <= 0:
        raise ValueError(f"reg and reg_m must be > 0, got reg={reg}, reg_m={reg_m}")
    cost = squared_distances(x0.detach().double(), x1.detach().double()).cpu().numpy()
    if not np.isfinite(cost).all():
        raise ValueError("cannot couple batches with NaN or infinite values")
    cost = cost / max(float(cost.mean()), 1e-12)
    n, m = cost.shape
    wa = np.full(n, 1.0 / n) if a is None else np.asarray(a, dtype=np.float64)
    wa = wa / wa.sum()
    wb = np.full(m, 1.0 / m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = sinkhorn_unbalanced(
            wa,
            wb,
            cost,
            reg,
            (reg_m, float("inf")),
            # Plain scaling is safe while exp(-cost / reg) does not underflow.
            method="sinkhorn" if float(cost.max()) / reg < 600.0 else "sinkhorn_stabilized",
            numItermax=num_iter,
            stopThr=1e-8,
        )
    _check_plan(plan, "sinkhorn_unbalanced")
    return plan


class UnbalancedSinkhornCoupling(Coupling):
    """Pairs drawn from a semi-relaxed unbalanced entropic OT plan, with growth estimates.

    ``n`` pairs ``(i, j)`` are drawn with probability proportional to the plan, so a source
    cell that divides appears in several pairs and one that dies in few; the returned
    ``source_mass`` (row mass of each source over the mean row mass) is a per-cell growth
    factor over the interval, ``log(source_mass) / dt`` a growth rate.

    Parameters
    ----------
    reg, reg_m
        See :func:`unbalanced_plan`.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.couplings.unbalanced import UnbalancedSinkhornCoupling
    >>> x0 = torch.tensor([[0.0], [10.0]]); x1 = torch.tensor([[0.1], [0.2], [0.3], [10.1]])
    >>> cb = UnbalancedSinkhornCoupling(reg=0.01, reg_m=0.1)(x0, x1)
    >>> bool(cb.source_mass[0] > cb.source_mass[1])  # the first cell has three descendants
    True
    """

    def __init__(self, reg: float = 0.05, reg_m: float = 1.0, num_iter: int = 1000) -> None:
        if reg <= 0 or reg_m <= 0:
            raise ValueError(f"reg and reg_m must be > 0, got reg={reg}, reg_m={reg_m}")
        self.reg, self.reg_m, self.num_iter = float(reg), float(reg_m), int(num_iter)

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        plan = torch.from_numpy(
            unbalanced_plan(x0, x1, reg=self.reg, reg_m=self.reg_m, num_iter=self.num_iter)
        )
        n, m = plan.shape
        flat = (plan / plan.sum()).reshape(-1)
        k = torch.multinomial(flat, n, replacement=True, generator=generator)
        i, j = (k // m).to(x0.device), (k % m).to(x1.device)
        row = plan.sum(1)
        mass = (row / row.mean()).to(x0)
        return CoupledBatch(x0=x0[i], x1=x1[j], index0=i, index1=j, source_mass=mass)

    def __repr__(self) -> str:
        return f"UnbalancedSinkhornCoupling(reg={self.reg}, reg_m={self.reg_m})"
