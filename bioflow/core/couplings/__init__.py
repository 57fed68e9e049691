"""Couplings: how minibatch pairs ``(x0, x1)`` are drawn, and with which weights.

Every coupling is one class with the same call: ``coupling(x0, x1) -> CoupledBatch``.
"""

from bioflow.core.couplings.base import CoupledBatch, Coupling, IndependentCoupling
from bioflow.core.couplings.gibbs import GibbsWeightCoupling
from bioflow.core.couplings.intervals import couple_intervals
from bioflow.core.couplings.mccann import mccann_interpolant
from bioflow.core.couplings.ot import (
    ExactOTCoupling,
    SinkhornCoupling,
    exact_ot_plan,
    sinkhorn_plan,
    squared_distances,
)

_REGISTRY = {
    "independent": IndependentCoupling,
    "exact": ExactOTCoupling,
    "sinkhorn": SinkhornCoupling,
    "gibbs": GibbsWeightCoupling,
}


def make_coupling(name: str, **kwargs) -> Coupling:
    """Build a coupling by name (``independent``, ``exact``, ``sinkhorn``, ``gibbs``).

    Examples
    --------
    >>> from bioflow.core import make_coupling
    >>> make_coupling("sinkhorn", reg=0.5)
    SinkhornCoupling(reg=0.5, normalize_cost=False)
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown coupling {name!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)


__all__ = [
    "CoupledBatch",
    "Coupling",
    "ExactOTCoupling",
    "GibbsWeightCoupling",
    "IndependentCoupling",
    "SinkhornCoupling",
    "couple_intervals",
    "exact_ot_plan",
    "make_coupling",
    "mccann_interpolant",
    "sinkhorn_plan",
    "squared_distances",
]
