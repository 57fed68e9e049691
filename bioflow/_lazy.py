"""Lazy package attributes (PEP 562): a name is imported the first time it is used.

``import bioflow`` then costs a few milliseconds; torch, lightning, anndata, POT, numba and
torch-geometric load only when a function or class that needs them is first touched.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable


def attach(
    package: str, submodules: Iterable[str] = (), attrs: dict[str, str] | None = None
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` of a package with lazy members.

    Parameters
    ----------
    package
        The package's ``__name__``.
    submodules
        Submodule names (relative), imported on first access.
    attrs
        ``{name: module}``: ``package.name`` is ``module.name`` (``module`` absolute, or
        relative to ``package`` when it starts with ``"."``).

    Returns
    -------
    (__getattr__, __dir__, __all__)

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = attach("bioflow", ["tl"], {"load_model": ".models"})
    >>> __all__
    ['load_model', 'tl']
    """
    submodules = set(submodules)
    attrs = dict(attrs or {})
    names = sorted(submodules | set(attrs))

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in attrs:
            target = attrs[name]
            module = importlib.import_module(target, package if target.startswith(".") else None)
            value = getattr(module, name)
            setattr(sys.modules[package], name, value)  # cache: later lookups are plain
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(getattr(sys.modules[package], "__all__", names))

    return __getattr__, __dir__, list(names)
