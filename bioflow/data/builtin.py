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


def read_adata(adata: Any, family: str, dataset_kwargs: dict | None, backed: bool = False):
    """An AnnData from an AnnData, an ``.h5ad`` path or a ``"builtin:<name>"`` string.

    Parameters
    ----------
    adata
        AnnData (returned as is), a path to an ``.h5ad`` file, or ``"builtin:<name>"``.
    family
        The model family (see :func:`load_builtin`).
    dataset_kwargs
        Arguments of a built-in generator.
    backed
        Open a path in backed (read-only, on-disk) mode.

    Raises
    ------
    ValueError
        For a path that does not exist or an unknown built-in name.
    """
    import os

    if is_builtin(adata):
        return load_builtin(adata, family, dataset_kwargs)
    if isinstance(adata, str | bytes) or hasattr(adata, "__fspath__"):
        import anndata as ad

        if not os.path.exists(adata):
            raise ValueError(f"no .h5ad file at {os.fspath(adata)!r}")
        return ad.read_h5ad(adata, backed="r" if backed else None)
    return adata
