"""Parameter documentation written once and shared by many docstrings.

A docstring names a fragment on a line of its own, ``{plot_ax_show_save}``, where the
parameters would go; :func:`share_docs` replaces it with the fragment, indented like the
placeholder.  The rendered ``__doc__`` (what ``help()``, Sphinx and the convention tests
read) is an ordinary numpy-style docstring.

Examples
--------
>>> @share_docs
... def f(*, ax=None, show=None, save=None):
...     '''Draw.
...
...     Parameters
...     ----------
...     {plot_ax_show_save}
...     '''
>>> "scanpy.settings.autoshow" in f.__doc__
True
"""

from __future__ import annotations

import re
import textwrap

FRAGMENTS: dict[str, str] = {
    "plot_ax_show_save": """\
ax
    Axes to draw into (default: a new figure).
show
    Show the figure; ``None`` follows ``scanpy.settings.autoshow`` (scanpy's
    convention).  Nothing is returned when the figure is shown.
save
    Path to save the figure to (any format matplotlib writes).""",
    "plot_show_save": """\
show
    Show the figure; ``None`` follows ``scanpy.settings.autoshow`` (scanpy's
    convention).  Nothing is returned when the figure is shown.
save
    Path to save the figure to (any format matplotlib writes).""",
    "plot_returns_axes": """\
matplotlib.axes.Axes or None
    The axes when the figure is not shown (``show=False``), else ``None``.""",
    "solver_settings": """\
method, steps
    ODE solver and number of steps (default: the model's ``solver`` and
    ``solver_steps``).
batch_size
    Cells integrated at once.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>[a-z_]+)\}[ \t]*$", re.M)


def share_docs(func):
    """Replace ``{fragment}`` lines of ``func.__doc__`` by the fragments of :data:`FRAGMENTS`.

    Raises
    ------
    KeyError
        For a placeholder naming no fragment (caught at import, not in the docs).
    """
    doc = func.__doc__
    if doc:

        def fill(m: re.Match) -> str:
            return textwrap.indent(FRAGMENTS[m.group("name")], m.group("indent"))

        func.__doc__ = _PLACEHOLDER.sub(fill, doc)
    return func
