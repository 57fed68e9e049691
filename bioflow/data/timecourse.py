"""The time-course reader: cells of an AnnData grouped by an ordered time column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bioflow.data.anndata import _py, match_labels, read_representation
from bioflow.data.spec import TimeCourseSpec


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
        """Numeric time of a label; numbers are accepted as times for numeric columns."""
        hit = np.flatnonzero(match_labels(self.labels, label))
        if len(hit):
            return float(self.values[hit[0]])
        if self.kind == "numeric" and isinstance(label, int | float | np.number):
            return float(label)
        raise ValueError(f"time {label!r} is not one of the times of {self.key!r}: {self.labels}")

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

    def data_spec(self) -> TimeCourseSpec:
        """The description stored in a fitted model (a :class:`~bioflow.data.DataSpec`)."""
        return TimeCourseSpec(
            time=self.spec.to_dict(),
            use_rep=self.use_rep,
            dim=self.dim,
            var_names=None if self.var_names is None else list(self.var_names),
            kept=[int(k) for k in self.kept],
        )


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
        matches = np.flatnonzero(match_labels(spec.labels, t)).tolist()
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
