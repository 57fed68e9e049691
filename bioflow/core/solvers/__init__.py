"""Every sampler: ODE solvers, simplex samplers (GSFM ODE, Euler, renoise), the discrete jump
sampler, categorical draws."""

from bioflow.core.solvers.categorical import sample_categorical
from bioflow.core.solvers.discrete import gibbs_moves, jump_sample
from bioflow.core.solvers.ode import ODE_METHODS, integrate
from bioflow.core.solvers.simplex import (
    gumbel_softmax_ode,
    project_simplex,
    renoise_sample,
    simplex_euler,
)

__all__ = [
    "ODE_METHODS",
    "gumbel_softmax_ode",
    "integrate",
    "gibbs_moves",
    "jump_sample",
    "project_simplex",
    "renoise_sample",
    "sample_categorical",
    "simplex_euler",
]
