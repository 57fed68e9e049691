"""Shared plumbing for the plotting functions."""

from __future__ import annotations

import os


def get_axes(ax=None, figsize=(5.0, 4.0)):
    """Return ``ax``, or new axes on a new figure."""
    import matplotlib

    if os.environ.get("MPLBACKEND") is None and not _interactive():
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _interactive() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None
    except ImportError:
        return False


def finish(ax, show: bool | None, save: str | os.PathLike | None):
    """Save and/or show the figure of ``ax``; return ``ax``."""
    import matplotlib.pyplot as plt

    fig = ax.figure
    if save is not None:
        from bioflow.core.files import write_atomic

        fmt = os.path.splitext(os.fspath(save))[1].lstrip(".").lower() or None
        write_atomic(save, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
    if show:
        plt.show()
    return ax
