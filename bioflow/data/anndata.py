"""Generic AnnData helpers, written once: read an AnnData, read a representation, match a
label, and turn predicted cells into an AnnData.  None of them modifies its input."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bioflow.data.builtin import is_builtin, load_builtin


def _py(v: Any) -> Any:
    """Convert numpy scalars to plain Python values (for checkpoints and ``.uns``)."""
    return v.item() if isinstance(v, np.generic) else v


def read_representation(
    adata, use_rep: str | None, *, rows: np.ndarray | None = None, dim: int | None = None
) -> np.ndarray:
    """Dense float32 matrix of ``adata.obsm[use_rep]`` (or ``adata.X`` when ``None``).

    Parameters
    ----------
    adata
        AnnData (in memory or backed).
    use_rep
        Key of ``adata.obsm``; ``None`` for ``adata.X`` (dense or sparse).
    rows
        Optional row indices to read.
    dim
        Number of features expected (a fitted model's ``data_spec["dim"]``); ``None``
        accepts any.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_obs or len(rows), d)``; a copy, never a view of ``adata``.

    Raises
    ------
    ValueError
        If ``use_rep`` is missing, ``X`` is absent, the values contain NaN/inf, or the
        matrix does not have ``dim`` columns.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> a = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    >>> read_representation(a, None, rows=np.array([0, 2])).shape
    (2, 2)
    """
    if use_rep is None:
        if adata.X is None:
            raise ValueError("adata.X is empty; pass use_rep= naming a key of adata.obsm")
        m = adata.X
        name = "adata.X"
    else:
        if use_rep not in adata.obsm:
            raise ValueError(
                f"use_rep={use_rep!r} is not a key of adata.obsm; available: {list(adata.obsm)}"
            )
        m = adata.obsm[use_rep]
        name = f"adata.obsm[{use_rep!r}]"
    if rows is not None:
        rows = np.asarray(rows)
    if isinstance(m, pd.DataFrame):
        bad_cols = [
            c
            for c in m.columns
            if not pd.api.types.is_numeric_dtype(m[c]) or pd.api.types.is_bool_dtype(m[c])
        ]
        if bad_cols:
            raise ValueError(
                f"{name} is a DataFrame with non-numeric columns {bad_cols[:5]}; keep only "
                "numeric columns (or store a numeric array)"
            )
        m = m.to_numpy(dtype=np.float32) if rows is None else m.iloc[rows].to_numpy(np.float32)
        rows = None
    if sp.issparse(m):
        x = _sparse_to_dense(m, rows)
    elif hasattr(m, "to_memory") or type(m).__name__ in ("CSRDataset", "CSCDataset"):
        x = _backed_to_dense(m, rows, name)
    else:
        m = np.asarray(m) if rows is None else np.asarray(m)[rows]
        if m.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {m.shape}")
        if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
            raise ValueError(f"{name} must hold numbers, got dtype {m.dtype}")
        # one copy: to float32, never a view of adata
        x = m.astype(np.float32, copy=True)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        n_rows = int(bad.any(axis=1).sum())
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf values in {n_rows} cells")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} features; the model was fitted on {dim}")
    return x


def _sparse_to_dense(m, rows: np.ndarray | None) -> np.ndarray:
    """Dense float32 rows of a scipy sparse matrix: the non-zeros are cast, then one dense
    float32 array is filled (no float64 dense intermediate)."""
    m = m.tocsr() if rows is not None or not sp.isspmatrix_csr(m) else m
    if rows is not None:
        m = m[rows]
    m = m.astype(np.float32, copy=False)  # toarray() below makes the one dense copy
    out = m.toarray()
    return out if out.dtype == np.float32 else out.astype(np.float32)


def _backed_to_dense(m, rows: np.ndarray | None, name: str, chunk: int = 4096) -> np.ndarray:
    """Read a backed (on-disk) matrix into a dense float32 array, ``chunk`` rows at a time.

    Backed sparse datasets are indexed with sorted row positions; the requested order is
    restored afterwards.
    """
    n = m.shape[0]
    wanted = np.arange(n) if rows is None else np.asarray(rows)
    if wanted.dtype == bool:
        wanted = np.flatnonzero(wanted)
    wanted = wanted.astype(np.int64)
    if len(wanted) and (wanted.min() < -n or wanted.max() >= n):
        raise ValueError(f"{name}: row indices out of range for {n} rows")
    wanted = np.where(wanted < 0, wanted + n, wanted)
    order = np.argsort(wanted, kind="stable")
    sorted_rows = wanted[order]
    out = np.empty((len(wanted), m.shape[1]), dtype=np.float32)
    for start in range(0, len(sorted_rows), chunk):
        sel = sorted_rows[start : start + chunk]
        uniq, inverse = np.unique(sel, return_inverse=True)
        if len(uniq) and uniq[-1] - uniq[0] + 1 == len(uniq):
            block = m[int(uniq[0]) : int(uniq[-1]) + 1]
        else:
            block = m[uniq]
        if sp.issparse(block):
            block = _sparse_to_dense(block, None)
        else:
            block = np.asarray(block, dtype=np.float32)
        out[order[start : start + chunk]] = block[inverse]
    return out


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
    if is_builtin(adata):
        return load_builtin(adata, family, dataset_kwargs)
    if isinstance(adata, str | bytes) or hasattr(adata, "__fspath__"):
        import anndata as ad

        if not os.path.exists(adata):
            raise ValueError(f"no .h5ad file at {os.fspath(adata)!r}")
        return ad.read_h5ad(adata, backed="r" if backed else None)
    return adata


def match_labels(values, label: Any) -> np.ndarray:
    """Boolean mask of the entries of ``values`` equal to ``label``.

    A label matches as itself; when no entry does, it matches as a string (``"1"`` finds
    the time ``1``, ``2`` finds the category ``"2"``).  This is how every user-given label
    (a time, a population, a source value) is looked up.

    Parameters
    ----------
    values
        A column (``pandas.Series``, ``numpy.ndarray``) or a sequence of labels.
    label
        The label looked for.

    Returns
    -------
    numpy.ndarray
        Boolean mask ``(len(values),)``; all ``False`` when nothing matches.

    Examples
    --------
    >>> match_labels([0.0, 1.0, 2.0], "1.0").tolist()
    [False, True, False]
    >>> match_labels(["day0", "day1"], "day1").tolist()
    [False, True]
    """
    if isinstance(values, pd.Series | pd.Index | np.ndarray):
        col = pd.Series(np.asarray(values)) if isinstance(values, np.ndarray) else values
        try:
            mask = np.asarray(col == label, dtype=bool)
        except (TypeError, ValueError):
            mask = np.zeros(len(col), dtype=bool)
        if not mask.any():
            mask = np.asarray(col.astype(str) == str(label), dtype=bool)
        return mask
    vals = list(values)
    mask = np.array([_equal(v, label) for v in vals], dtype=bool)
    if not mask.any():
        mask = np.array([str(v) == str(label) for v in vals], dtype=bool)
    return mask.reshape(len(vals))


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def cells_to_anndata(
    x: np.ndarray,
    obs: pd.DataFrame,
    use_rep: str | None,
    var_names: Sequence[str] | None = None,
):
    """Predicted cells as an AnnData laid out like the data the model was fitted on.

    Parameters
    ----------
    x
        Cell coordinates ``(n, d)``.
    obs
        Annotations of the ``n`` cells (copied, index made strings).
    use_rep
        ``None``: ``x`` becomes ``.X`` (with ``var_names`` as its features); otherwise
        ``x`` goes to ``.obsm[use_rep]`` of an AnnData without ``.X``.
    var_names
        Feature names (``d`` of them) when ``use_rep`` is ``None``.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, ``obs`` has another number of rows, or ``var_names`` another
        number of features.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> out = cells_to_anndata(np.zeros((2, 3)), pd.DataFrame(index=["a", "b"]), "X_pca")
    >>> out.obsm["X_pca"].shape, out.n_vars
    ((2, 3), 0)
    """
    import anndata as ad

    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be (n_cells, n_features), got shape {x.shape}")
    if len(obs) != x.shape[0]:
        raise ValueError(f"obs has {len(obs)} rows for {x.shape[0]} cells")
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    if use_rep is None:
        var = None
        if var_names is not None and len(var_names):
            if len(var_names) != x.shape[1]:
                raise ValueError(f"{len(var_names)} var_names for {x.shape[1]} features")
            var = pd.DataFrame(index=[str(v) for v in var_names])
        return ad.AnnData(x, obs=obs, var=var)
    out = ad.AnnData(obs=obs)
    out.obsm[use_rep] = x
    return out
