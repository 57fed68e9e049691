"""Weighted CFM (W-CFM): independent pairs weighted by a Gibbs kernel."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bioflow.core.couplings.base import CoupledBatch, IndependentCoupling


def gibbs_weights(x0: Tensor, x1: Tensor, epsilon: float, cost: str = "euclidean") -> Tensor:
    """Gibbs-kernel weights ``exp(-c(x0_i, x1_i) / epsilon)`` for paired rows.

    Parameters
    ----------
    x0, x1
        Paired points, shape ``(n, ...)``.
    epsilon
        Temperature of the kernel (> 0).
    cost
        ``"euclidean"`` for ``||x0 - x1||`` or ``"sqeuclidean"`` for ``||x0 - x1||**2``.

    Returns
    -------
    torch.Tensor
        Weights of shape ``(n,)`` in (0, 1].
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    d2 = (x0 - x1).reshape(x0.shape[0], -1).pow(2).sum(1)
    if cost == "euclidean":
        c = d2.sqrt()
    elif cost == "sqeuclidean":
        c = d2
    else:
        raise ValueError(f"cost must be 'euclidean' or 'sqeuclidean', got {cost!r}")
    return torch.exp(-c / epsilon)


class GibbsWeightCoupling(IndependentCoupling):
    """W-CFM: independent pairs with loss weights ``w = exp(-c(x0, x1) / epsilon)``.

    Weighting the independent coupling by a Gibbs kernel gives, after normalisation,
    the entropic-OT coupling up to a tilt of its marginals, without an OT solve and with
    no dependence on the batch size (Calvo-Ordoñez et al. 2025).

    Parameters
    ----------
    epsilon
        Kernel temperature.  When ``None`` it is ``kappa * sqrt(d)`` with ``d`` the
        number of features, which keeps typical weights of order one as ``d`` grows
        (Euclidean distances grow like ``sqrt(d)``).
    kappa
        Scale of the default temperature (default 1.0).
    cost
        ``"euclidean"`` (default, as in the paper) or ``"sqeuclidean"``.
    """

    def __init__(
        self, epsilon: float | None = None, kappa: float = 1.0, cost: str = "euclidean"
    ) -> None:
        if epsilon is not None and epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if kappa <= 0:
            raise ValueError(f"kappa must be > 0, got {kappa}")
        if cost not in ("euclidean", "sqeuclidean"):
            raise ValueError(f"cost must be 'euclidean' or 'sqeuclidean', got {cost!r}")
        self.epsilon = epsilon
        self.kappa = float(kappa)
        self.cost = cost

    def temperature(self, dim: int) -> float:
        """The kernel temperature used for ``dim`` features."""
        return self.epsilon if self.epsilon is not None else self.kappa * math.sqrt(dim)

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        cb = super().pair(x0, x1, generator)
        eps = self.temperature(x0[0].numel())
        cb.weight = gibbs_weights(cb.x0, cb.x1, eps, self.cost).detach()
        return cb

    def __repr__(self) -> str:
        return (
            f"GibbsWeightCoupling(epsilon={self.epsilon}, kappa={self.kappa}, cost={self.cost!r})"
        )
