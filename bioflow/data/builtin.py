"""``"builtin:<name>"`` data arguments: the CLI's way to name a built-in dataset."""

from __future__ import annotations

from typing import Any

BUILTIN_PREFIX = "builtin:"

# which generators of bioflow.datasets each family accepts
BUILTIN_DATASETS = {
    "cells": ("simulated_differentiation",),
    "populations": ("letters", "population_response"),
    "sequences": ("motif_sequences", "markov_motif_sequences", "categorical_toy"),
}


def is_builtin(value: Any) -> bool:
    """Whether ``value`` is a ``"builtin:<name>"`` string."""
    return isinstance(value, str) and value.startswith(BUILTIN_PREFIX)


def load_builtin(value: str, family: str, kwargs: dict | None = None) -> Any:
    """Call the generator named by ``value`` (``"builtin:<name>"``) with ``kwargs``.

    Parameters
    ----------
    value
        ``"builtin:<name>"`` with ``<name>`` a generator of ``bioflow.datasets``.
    family
        ``"cells"``, ``"populations"`` or ``"sequences"``: the generators allowed.
    kwargs
        Arguments of the generator (``dataset_kwargs`` of the DataModules).

    Returns
    -------
    Whatever the generator returns (an AnnData, or sequences with labels).

    Raises
    ------
    ValueError
        For a name that is not a built-in dataset of ``family``.

    Examples
    --------
    >>> adata = load_builtin("builtin:simulated_differentiation", "cells",
    ...                      {"n_cells_per_time": 20})
    >>> adata.n_obs
    100
    """
    from bioflow import datasets

    name = value[len(BUILTIN_PREFIX) :]
    allowed = BUILTIN_DATASETS[family]
    if name not in allowed:
        raise ValueError(
            f"unknown built-in dataset {value!r} for {family}; choose one of "
            f"{[BUILTIN_PREFIX + a for a in allowed]}"
        )
    return getattr(datasets, name)(**dict(kwargs or {}))


def input_paths(value: Any) -> list[str]:
    """The file behind a data argument (a path), as a list; empty for objects and built-ins.

    DataModules keep it so that ``predict`` never writes its output over its input.
    """
    import os

    if is_builtin(value):
        return []
    if isinstance(value, str) or hasattr(value, "__fspath__"):
        return [os.fspath(value)]
    return []
