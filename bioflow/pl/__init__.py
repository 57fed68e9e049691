"""Plots that read what :mod:`bioflow.tl` wrote; matplotlib is imported lazily.

Every function accepts ``ax=``, ``show=`` and ``save=`` and returns the matplotlib axes.
"""

from bioflow.pl.dynamics import holdout, trajectories

__all__ = ["holdout", "trajectories"]
from bioflow.pl.sequence import sequence_logo  # noqa: E402

__all__ += ["sequence_logo"]

from bioflow.pl.meta import populations  # noqa: E402

__all__ += ["populations"]
