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
        ``"numeric"``, ``"ordered"`` or ``"binned"`` (a continuous column cut into bins by
        ``time_bins=``: labels are the bin numbers ``0, 1, ...``, values the mean time of
        each bin's cells).
    origin, unit
        The model's internal clock: a time value ``v`` is seen by the model as
        ``(v - origin) / unit``.  ``resolve_time`` sets ``origin`` to the first time and
        ``unit`` to the mean interval, so the observed times span ``[0, n_times - 1]`` on
        the model's clock whatever the user's units (days, hours, seconds) and a fit does
        not depend on them.  A description without them (older models) uses the raw values.
    edges
        Bin edges (``"binned"`` only), increasing, ``len(labels) + 1`` of them.
    """

    key: str
    labels: list
    values: list[float]
    kind: str
    origin: float = 0.0
    unit: float = 1.0
    edges: list[float] | None = None

    def value_of(self, label: Any) -> float:
        """Numeric time of a label; numbers are accepted as times for numeric columns.

        Raises
        ------
        ValueError
            For a NaN or infinite time, or a label that is not one of the times.
        """
        if isinstance(label, float | np.floating) and not np.isfinite(label):
            raise ValueError(f"time {label!r} is not a finite number (NaN and inf are refused)")
        hit = np.flatnonzero(match_labels(self.labels, label))
        if len(hit):
            return float(self.values[hit[0]])
        if self.kind == "numeric" and isinstance(label, int | float | np.number):
            return float(label)
        if self.kind == "binned" and isinstance(label, float | np.floating):
            return float(label)  # a time on the clock (bin numbers are integers)
        raise ValueError(
            f"time {label!r} is not one of the times of {self.key!r}: {self.labels}"
            + (" (bin numbers of time_bins=)" if self.kind == "binned" else "")
        )

    def index_of(self, column) -> np.ndarray:
        """Position in :attr:`labels` of each value of a time column, ``(n,)``; -1 if none."""
        if self.kind == "binned":
            v = np.asarray(column, dtype=np.float64)
            idx = np.searchsorted(np.asarray(self.edges[1:-1]), v, side="right")
            return np.where((v >= self.edges[0]) & (v <= self.edges[-1]), idx, -1)
        col = np.asarray(column, dtype=object)
        out = np.full(len(col), -1)
        for i, lab in enumerate(self.labels):
            out[match_labels(col, lab)] = i
        return out

    def clock(self, label: Any) -> float:
        """Time of a label (or number on the user's scale) on the model's internal clock."""
        return (self.value_of(label) - self.origin) / self.unit

    @property
    def clock_values(self) -> list[float]:
        """The observed times on the model's clock, in increasing order."""
        return [(v - self.origin) / self.unit for v in self.values]

    def to_dict(self) -> dict:
        d = {
            "key": self.key,
            "labels": self.labels,
            "values": self.values,
            "kind": self.kind,
            "origin": self.origin,
            "unit": self.unit,
        }
        if self.edges is not None:
            d["edges"] = [float(e) for e in self.edges]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TimeSpec:
        edges = d.get("edges")
        return cls(
            d["key"],
            list(d["labels"]),
            [float(v) for v in d["values"]],
            d["kind"],
            float(d.get("origin", 0.0)),
            float(d.get("unit", 1.0)),
            None if edges is None else [float(e) for e in edges],
        )


MAX_TIME_POINTS = 20


def _bin_times(v: np.ndarray, time_key: str, time_bins) -> tuple[TimeSpec, np.ndarray]:
    if isinstance(time_bins, int | np.integer) and not isinstance(time_bins, bool):
        if time_bins < 2:
            raise ValueError(f"time_bins must be >= 2, got {time_bins}")
        edges = np.unique(np.quantile(v, np.linspace(0, 1, int(time_bins) + 1)))
    else:
        edges = np.asarray(time_bins, dtype=np.float64).ravel()
        if edges.size < 3 or np.any(np.diff(edges) <= 0):
            raise ValueError(
                "time_bins must be a number of bins >= 2 or >= 3 increasing bin edges, got "
                f"{time_bins!r}"
            )
    if edges.size < 3:
        raise ValueError(f"adata.obs[{time_key!r}] has too few distinct values to bin")
    spec = TimeSpec(time_key, [], [], "binned", edges=[float(e) for e in edges])
    index = spec.index_of(v)
    if (index < 0).any():
        raise ValueError(
            f"{int((index < 0).sum())} cells of adata.obs[{time_key!r}] fall outside the "
            f"time_bins edges [{edges[0]}, {edges[-1]}]"
        )
    present = np.unique(index)
    if len(present) != edges.size - 1:
        raise ValueError(
            f"time_bins leaves empty bins: {sorted(set(range(edges.size - 1)) - set(present))}"
        )
    spec.labels = list(range(edges.size - 1))
    spec.values = [float(v[index == b].mean()) for b in spec.labels]
    # Internal clock as for discrete times: first bin at 0, mean interval 1.
    spec.origin = spec.values[0]
    spec.unit = (spec.values[-1] - spec.values[0]) / (len(spec.values) - 1)
    return spec, index


def resolve_time(adata, time_key: str, time_bins=None) -> tuple[TimeSpec, np.ndarray]:
    """Validate ``adata.obs[time_key]`` and give its :class:`TimeSpec` and each cell's time index.

    A column with more than ``MAX_TIME_POINTS`` (20) distinct times is taken for a
    continuous time (a pseudotime) and refused unless ``time_bins`` cuts it into bins:
    an integer (that many bins with equal numbers of cells) or the bin edges.

    Returns
    -------
    spec
        The time specification.
    index
        Integer array ``(n_obs,)``: position of each cell's time in ``spec.labels``.

    Raises
    ------
    ValueError
        Missing key, missing values, a column that is neither numeric nor ordered, fewer
        than two distinct times, or a continuous time without ``time_bins``.
    """
    if time_key not in adata.obs:
        raise ValueError(
            f"time_key={time_key!r} is not a column of adata.obs; available: {list(adata.obs)}"
        )
    col = adata.obs[time_key]
    if col.isna().any():
        raise ValueError(f"adata.obs[{time_key!r}] has {int(col.isna().sum())} missing values")
    if time_bins is not None:
        if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            raise ValueError(f"time_bins needs a numeric adata.obs[{time_key!r}], got {col.dtype}")
        v = col.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"adata.obs[{time_key!r}] contains infinite values")
        return _bin_times(v, time_key, time_bins)
    n_distinct = col.nunique()
    if n_distinct > MAX_TIME_POINTS:
        raise ValueError(
            f"adata.obs[{time_key!r}] has {n_distinct} distinct values: it looks like a "
            "continuous time (e.g. a pseudotime), and each distinct value would become its "
            "own time point. Pass time_bins= (e.g. time_bins=8 for 8 bins with equal numbers "
            "of cells, or a list of bin edges) to cut it into time points."
        )
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
    # Internal clock: first time at 0, mean interval 1 (units do not change a fit).
    unit = (values[-1] - values[0]) / (len(values) - 1)
    return TimeSpec(time_key, labels, values, kind, float(values[0]), float(unit)), index


@dataclass
class CellTimeSeries:
    """Cells grouped by time, as the dynamics models consume them.

    Attributes
    ----------
    x
        Cell coordinates, float32 ``(n_obs, d)``: an array, or rows read on demand from an
        ``.h5ad`` file (:class:`~bioflow.data.backed.H5Rows`, indexed the same way).
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
    growth
        Per-cell growth rates ``(n_obs,)`` (per unit of the user's time) from
        ``adata.obs[growth_key]``, or ``None``.
    growth_key
        The column they came from.
    """

    x: Any
    time_index: np.ndarray
    spec: TimeSpec
    use_rep: str | None
    kept: list[int]
    var_names: list[str] | None = field(default=None)
    growth: np.ndarray | None = field(default=None)
    growth_key: str | None = field(default=None)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def cells_at(self, k: int) -> np.ndarray:
        """Row indices of the cells at time position ``k`` (increasing; grouped once)."""
        groups = self.__dict__.get("_groups")
        if groups is None:
            order = np.argsort(self.time_index, kind="stable")
            bounds = np.searchsorted(self.time_index[order], np.arange(len(self.spec.labels) + 1))
            groups = [order[bounds[j] : bounds[j + 1]] for j in range(len(self.spec.labels))]
            self.__dict__["_groups"] = groups
        return groups[k]

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
            growth_key=self.growth_key,
        )


def read_time_series(
    adata,
    time_key: str,
    use_rep: str | None = None,
    exclude_times: Sequence = (),
    growth_key: str | None = None,
    time_bins=None,
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
    growth_key
        Column of ``adata.obs`` with per-cell growth rates (net division minus death per
        unit of the time column's units; e.g. from a proliferation score), or ``None``.
    time_bins
        Cut a continuous time into bins: a number of bins (equal numbers of cells) or the
        bin edges; see ``resolve_time``.

    Returns
    -------
    CellTimeSeries

    Raises
    ------
    ValueError
        For a missing key, bad values, an unknown excluded time, or fewer than two kept times.
    """
    spec, index = resolve_time(adata, time_key, time_bins)
    if getattr(adata, "can_stream", None) is not None and adata.can_stream(use_rep):
        x = adata.rows(use_rep)  # an H5adView: rows stay on disk, read per batch
    else:
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
    growth = None
    if growth_key is not None:
        if growth_key not in adata.obs:
            raise ValueError(
                f"growth_key={growth_key!r} is not a column of adata.obs; available: "
                f"{list(adata.obs)}"
            )
        col = adata.obs[growth_key]
        if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            raise ValueError(f"adata.obs[{growth_key!r}] must be numeric, got {col.dtype}")
        growth = col.to_numpy(dtype=np.float64)
        if not np.isfinite(growth).all():
            raise ValueError(f"adata.obs[{growth_key!r}] contains NaN or infinite values")
        growth = growth.astype(np.float32)
    return CellTimeSeries(x, index, spec, use_rep, kept, var_names, growth, growth_key)
