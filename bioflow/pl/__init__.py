"""Plots that read what :mod:`bioflow.tl` wrote; matplotlib is imported lazily.

Every function accepts ``ax=``, ``show=`` and ``save=`` and returns the matplotlib axes.
"""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        "holdout": ".dynamics",
        "trajectories": ".dynamics",
        "sequence_logo": ".sequence",
        "populations": ".meta",
    },
)
