"""ODE solvers between arbitrary absolute times, forward and backward."""

from bioflow.core.solvers.ode import ODE_METHODS, ODESolver, integrate

__all__ = ["ODE_METHODS", "ODESolver", "integrate"]
from bioflow.core.solvers.simplex import project_simplex, simplex_euler  # noqa: E402

__all__ += ["project_simplex", "simplex_euler"]
from bioflow.core.solvers.discrete import categorical_draw, jump_sample  # noqa: E402

__all__ += ["categorical_draw", "jump_sample"]
