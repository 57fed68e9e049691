"""Couplings: how minibatch pairs ``(x0, x1)`` are drawn, and with which weights.

Every coupling is one class with the same call: ``coupling(x0, x1) -> CoupledBatch``.
POT and numba load when a coupling that needs them is first used.
"""

from bioflow._lazy import attach

_REGISTRY = {
    "independent": "IndependentCoupling",
    "exact": "ExactOTCoupling",
    "sinkhorn": "SinkhornCoupling",
    "gibbs": "GibbsWeightCoupling",
    "unbalanced": "UnbalancedSinkhornCoupling",
}

__getattr__, __dir__, __all__ = attach(
    __name__,
    [
        "assignment",
        "base",
        "batched",
        "distributed",
        "gibbs",
        "intervals",
        "mccann",
        "ot",
        "pairing",
        "trajectory",
        "unbalanced",
    ],
    {
        **dict.fromkeys(["CoupledBatch", "Coupling", "IndependentCoupling"], ".base"),
        "GibbsWeightCoupling": ".gibbs",
        **dict.fromkeys(
            [
                "ExactOTCoupling",
                "SinkhornCoupling",
                "exact_ot_plan",
                "sinkhorn_plan",
                "squared_distances",
            ],
            ".ot",
        ),
        "couple_many": ".batched",
        "couple_intervals": ".intervals",
        "mccann_interpolant": ".mccann",
        "GlobalCoupling": ".distributed",
        "chain_couplings": ".trajectory",
        **dict.fromkeys(
            [
                "BatchPairing",
                "BridgePairing",
                "ChainPairing",
                "GrowthPairing",
                "IntervalPairing",
                "as_pairing",
                "pairing_generator",
            ],
            ".pairing",
        ),
        **dict.fromkeys(["UnbalancedSinkhornCoupling", "unbalanced_plan"], ".unbalanced"),
    },
)
__all__ = sorted({*__all__, "make_coupling"})


def make_coupling(name: str, **kwargs):
    """Build a coupling by name (``independent``, ``exact``, ``sinkhorn``, ``gibbs``,
    ``unbalanced``).

    Examples
    --------
    >>> from bioflow.core import make_coupling
    >>> make_coupling("sinkhorn", reg=0.5)
    SinkhornCoupling(reg=0.5, normalize_cost=False)
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown coupling {name!r}; choose one of {sorted(_REGISTRY)}")
    return __getattr__(_REGISTRY[name])(**kwargs)
