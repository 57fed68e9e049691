"""Shared flow-matching core: paths, couplings, solvers and losses.

Only torch, numpy, scipy, POT and numba are imported here, so every model family can build
on it; members load on first use.
"""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    ["couplings", "guidance", "losses", "paths", "solvers"],
    {
        **dict.fromkeys(
            [
                "CoupledBatch",
                "Coupling",
                "ExactOTCoupling",
                "GibbsWeightCoupling",
                "IndependentCoupling",
                "SinkhornCoupling",
                "make_coupling",
            ],
            ".couplings",
        ),
        **dict.fromkeys(["flow_matching_loss", "velocity_mse"], ".losses"),
        **dict.fromkeys(
            ["BrownianBridgePath", "LinearPath", "PathSample", "ProbabilityPath"], ".paths"
        ),
        "integrate": ".solvers",
    },
)
