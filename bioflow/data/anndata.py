"""Read and validate what the models need from an AnnData, without modifying it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _py(v: Any) -> Any:
    """Convert numpy scalars to plain Python values (for checkpoints and ``.uns``)."""
    return v.item() if isinstance(v, np.generic) else v


def read_representation(adata, use_rep: str | None, *, rows: np.ndarray | None = None) -> np.ndarray:
    """Dense float32 matrix of ``adata.obsm[use_rep]`` (or ``adata.X`` when ``None``).

    Parameters
    ----------
    adata
        AnnData (in memory or backed).
    use_rep
        Key of ``adata.obsm``; ``None`` for ``adata.X`` (dense or sparse).
    rows
        Optional row indices to read.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_obs or len(rows), d)``; a copy, never a view of ``adata``.

    Raises
    ------
    ValueError
        If ``use_rep`` is missing, ``X`` is absent, or the values contain NaN/inf.
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
        bad_cols = [c for c in m.columns if not pd.api.types.is_numeric_dtype(m[c])
                    or pd.api.types.is_bool_dtype(m[c])]
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
    return x


def _sparse_to_dense(m, rows: np.ndarray | None) -> np.ndarray:
    """Dense float32 rows of a scipy sparse matrix: the non-zeros are cast, then one dense
    float32 array is filled (no float64 dense intermediate)."""
    m = m.tocsr() if rows is not None or not sp.isspmatrix_csr(m) else m
    if rows is not None:
        m = m[rows]
    m = m.astype(np.float32, copy=m.dtype == np.float32)
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


@dataclass
class TimeSpec:
    """How a time column maps labels to the numeric clock the model uses.

    Attributes
    ----------
    key
        Column of ``adata.obs``.
    labels
        Observed time labels in increasing order.
    values
        Numeric time of each label (the label itself for numeric columns, the category
        position for ordered categoricals).
    kind
        ``"numeric"`` or ``"ordered"``.
    """

    key: str
    labels: list
    values: list[float]
    kind: str

    def value_of(self, label: Any) -> float:
        """Numeric time of a label; numbers are accepted as times for numeric columns.

        Raises
        ------
        ValueError
            For a NaN or infinite time, or a label that is not one of the times.
        """
        if isinstance(label, float | np.floating) and not np.isfinite(label):
            raise ValueError(f"time {label!r} is not a finite number (NaN and inf are refused)")
        for lab, val in zip(self.labels, self.values, strict=True):
            if lab == label or str(lab) == str(label):
                return float(val)
        if self.kind == "numeric" and isinstance(label, int | float | np.number):
            return float(label)
        raise ValueError(
            f"time {label!r} is not one of the times of {self.key!r}: {self.labels}"
        )

    def to_dict(self) -> dict:
        return {"key": self.key, "labels": self.labels, "values": self.values, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> TimeSpec:
        return cls(d["key"], list(d["labels"]), [float(v) for v in d["values"]], d["kind"])


def resolve_time(adata, time_key: str) -> tuple[TimeSpec, np.ndarray]:
    """Validate ``adata.obs[time_key]`` and give its :class:`TimeSpec` and each cell's time index.

    Returns
    -------
    spec
        The time specification.
    index
        Integer array ``(n_obs,)``: position of each cell's time in ``spec.labels``.

    Raises
    ------
    ValueError
        Missing key, missing values, a column that is neither numeric nor ordered, or fewer
        than two distinct times.
    """
    if time_key not in adata.obs:
        raise ValueError(
            f"time_key={time_key!r} is not a column of adata.obs; available: {list(adata.obs)}"
        )
    col = adata.obs[time_key]
    if col.isna().any():
        raise ValueError(f"adata.obs[{time_key!r}] has {int(col.isna().sum())} missing values")
    if isinstance(col.dtype, pd.CategoricalDtype):
        if not col.cat.ordered:
            raise ValueError(
                f"adata.obs[{time_key!r}] is an unordered categorical; make it ordered "
                "(pd.Categorical(values, categories=[...], ordered=True)) or numeric"
            )
        cats = list(col.cat.categories)
        codes = col.cat.codes.to_numpy()
        present = np.unique(codes)
        labels = [_py(cats[c]) for c in present]
        values = [float(c) for c in present]
        index = np.searchsorted(present, codes)
        kind = "ordered"
    elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        v = col.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"adata.obs[{time_key!r}] contains infinite values")
        uniq = np.unique(v)
        labels = [_py(x) for x in np.unique(col.to_numpy())]
        values = [float(x) for x in uniq]
        index = np.searchsorted(uniq, v)
        kind = "numeric"
    else:
        raise ValueError(
            f"adata.obs[{time_key!r}] has dtype {col.dtype}, which is neither numeric nor an "
            "ordered categorical"
        )
    if len(labels) < 2:
        raise ValueError(f"adata.obs[{time_key!r}] has {len(labels)} distinct time(s); need >= 2")
    return TimeSpec(time_key, labels, values, kind), index


@dataclass
class CellTimeSeries:
    """Cells grouped by time, as the dynamics models consume them.

    Attributes
    ----------
    x
        Cell coordinates, float32 ``(n_obs, d)``.
    time_index
        Position of each cell's time in ``spec.labels``, ``(n_obs,)``.
    spec
        The :class:`TimeSpec`.
    use_rep
        ``adata.obsm`` key the coordinates came from (``None`` for ``X``).
    kept
        Positions (in ``spec.labels``) of the times used for training, increasing.
    var_names
        Feature names when read from ``X``.
    """

    x: np.ndarray
    time_index: np.ndarray
    spec: TimeSpec
    use_rep: str | None
    kept: list[int]
    var_names: list[str] | None = field(default=None)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def cells_at(self, k: int) -> np.ndarray:
        """Row indices of the cells at time position ``k``."""
        return np.flatnonzero(self.time_index == k)

    def intervals(self) -> list[tuple[int, int]]:
        """Consecutive pairs of kept time positions."""
        return list(zip(self.kept[:-1], self.kept[1:], strict=True))

    def data_spec(self) -> dict:
        """Serializable description stored in a fitted model."""
        return {
            "time": self.spec.to_dict(),
            "use_rep": self.use_rep,
            "dim": self.dim,
            "var_names": self.var_names,
            "kept": [int(k) for k in self.kept],
        }


def read_time_series(
    adata,
    time_key: str,
    use_rep: str | None = None,
    exclude_times: Sequence = (),
) -> CellTimeSeries:
    """Validate an AnnData time course and read it into a :class:`CellTimeSeries`.

    Parameters
    ----------
    adata
        AnnData with a time column in ``.obs``; left unchanged.
    time_key
        Column of ``adata.obs`` with numeric or ordered-categorical times.
    use_rep
        Key of ``adata.obsm`` to use; ``None`` for ``adata.X`` (dense or sparse).
    exclude_times
        Time labels to leave out of training (for leave-one-timepoint-out).

    Returns
    -------
    CellTimeSeries

    Raises
    ------
    ValueError
        For a missing key, bad values, an unknown excluded time, or fewer than two kept times.
    """
    spec, index = resolve_time(adata, time_key)
    x = read_representation(adata, use_rep)
    if isinstance(exclude_times, str | int | float):
        exclude_times = (exclude_times,)
    excluded = set()
    for t in exclude_times:
        matches = [i for i, lab in enumerate(spec.labels) if lab == t or str(lab) == str(t)]
        if not matches:
            raise ValueError(
                f"exclude_times value {t!r} is not a time of adata.obs[{time_key!r}]; "
                f"times present: {spec.labels}"
            )
        excluded.update(matches)
    kept = [k for k in range(len(spec.labels)) if k not in excluded]
    if len(kept) < 2:
        raise ValueError(
            f"need at least two times left for training, got {len(kept)} after exclude_times"
        )
    var_names = [str(v) for v in adata.var_names] if use_rep is None else None
    return CellTimeSeries(x, index, spec, use_rep, kept, var_names)
