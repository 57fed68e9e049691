"""Shared flow-matching core: paths, couplings, solvers and losses.

Only torch, numpy, scipy and POT are imported here, so every model family can build on it.
"""

from bioflow.core.couplings import (
    CoupledBatch,
    Coupling,
    ExactOTCoupling,
    GibbsWeightCoupling,
    IndependentCoupling,
    SinkhornCoupling,
    make_coupling,
)
from bioflow.core.losses import flow_matching_loss, velocity_mse
from bioflow.core.paths import BrownianBridgePath, LinearPath, PathSample, ProbabilityPath
from bioflow.core.solvers import integrate

__all__ = [
    "BrownianBridgePath",
    "CoupledBatch",
    "Coupling",
    "ExactOTCoupling",
    "GibbsWeightCoupling",
    "IndependentCoupling",
    "LinearPath",
    "PathSample",
    "ProbabilityPath",
    "SinkhornCoupling",
    "integrate",
    "make_coupling",
    "flow_matching_loss",
    "velocity_mse",
]
