"""Cell-dynamics tools: fit, predict, trajectories and leave-one-timepoint-out evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bioflow.core.couplings.mccann import mccann_interpolant
from bioflow.data.anndata import cells_to_anndata, match_labels, read_representation
from bioflow.data.cells import CellDynamicsDataModule
from bioflow.data.timecourse import CellTimeSeries, TimeSpec, read_time_series
from bioflow.models.dynamics import CFM_METHODS, CellFlowMatching
from bioflow.tl._train import fit_model, record


def _fit_series(
    series: CellTimeSeries,
    *,
    method: str,
    max_steps: int,
    batch_size: int,
    seed: int,
    num_workers: int,
    model_kwargs: dict,
    trainer_kwargs: dict,
) -> CellFlowMatching:
    if method not in CFM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {CFM_METHODS}")
    dm = CellDynamicsDataModule(series, batch_size=batch_size, num_workers=num_workers, seed=seed)
    values = series.spec.values
    span = max(values) - min(values)
    kwargs = dict(time_max_period=max(2.0 * span, 1.0))
    kwargs.update(model_kwargs)
    return fit_model(
        lambda: CellFlowMatching(
            dim=series.dim, method=method, data_spec=series.data_spec().to_dict(), **kwargs
        ),
        dm,
        max_steps=max_steps,
        seed=seed,
        trainer_kwargs=trainer_kwargs,
    )


def fit_dynamics(
    adata,
    *,
    time_key: str,
    use_rep: str | None = None,
    method: str = "ot-cfm",
    exclude_times: Sequence = (),
    max_steps: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
    num_workers: int = 0,
    model_kwargs: dict | None = None,
    **trainer_kwargs: Any,
) -> CellFlowMatching:
    """Fit a flow-matching model of cell dynamics to a time course.

    Parameters
    ----------
    adata
        AnnData with times in ``.obs[time_key]``; not modified.
    time_key
        Column of ``.obs`` with numeric or ordered-categorical times.
    use_rep
        Key of ``.obsm`` to model (e.g. ``"X_pca"``); ``None`` models ``.X`` (dense or sparse).
    method
        ``"ot-cfm"`` (exact minibatch OT), ``"i-cfm"``, ``"sb-cfm"`` or ``"w-cfm"``.
    exclude_times
        Time labels left out of training (e.g. for leave-one-timepoint-out).
    max_steps
        Optimiser steps.
    batch_size
        Cells per time point per step.
    seed
        Seed of initialisation and sampling.
    num_workers
        Data-loader workers; the coupling then runs inside them.
    model_kwargs
        Extra arguments of :class:`~bioflow.models.CellFlowMatching` (``sigma``,
        ``hidden``, ``lr``, ...).
    **trainer_kwargs
        Passed to :class:`lightning.Trainer` (``accelerator``, ``devices``,
        ``enable_progress_bar``, ``logger``, ...).

    Returns
    -------
    CellFlowMatching
        The fitted model, in eval mode.

    Raises
    ------
    ValueError
        Before any training, for a missing ``time_key`` or ``use_rep``, fewer than two
        times, NaN/inf values, an unknown ``exclude_times`` value or a time column that is
        neither numeric nor ordered.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=100)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=20, enable_progress_bar=False)
    >>> model.method
    'ot-cfm'
    """
    series = read_time_series(adata, time_key, use_rep, exclude_times)
    return _fit_series(
        series,
        method=method,
        max_steps=max_steps,
        batch_size=batch_size,
        seed=seed,
        num_workers=num_workers,
        model_kwargs=dict(model_kwargs or {}),
        trainer_kwargs=trainer_kwargs,
    )


def _spec_of(model: CellFlowMatching) -> tuple[TimeSpec, dict]:
    spec = getattr(model, "data_spec", None)
    if not spec:
        raise ValueError(
            "this model carries no data description; fit it with bioflow.tl.fit_dynamics or "
            "pass data_spec when building it"
        )
    return TimeSpec.from_dict(spec["time"]), spec


def _cells_at(adata, key: str, label: Any) -> np.ndarray:
    if key not in adata.obs:
        raise ValueError(f"time_key {key!r} (from the model) is not a column of adata.obs")
    col = adata.obs[key]
    mask = match_labels(col, label)
    if not mask.any():
        raise ValueError(
            f"no cells with adata.obs[{key!r}] == {label!r}; present: {list(pd.unique(col))}"
        )
    return np.flatnonzero(mask)


def _read_model_rep(model, adata, rows=None) -> np.ndarray:
    _, spec = _spec_of(model)
    return read_representation(adata, spec["use_rep"], rows=rows, dim=spec["dim"])


def _push_batched(
    model,
    x: np.ndarray,
    times: Sequence[float],
    method,
    steps,
    batch_size: int,
    return_path: bool = False,
) -> np.ndarray:
    outs = []
    for i in range(0, x.shape[0], batch_size):
        out = model.push(
            torch.from_numpy(x[i : i + batch_size]),
            times,
            method=method,
            steps=steps,
            return_path=return_path,
        )
        outs.append(out.cpu().numpy())
    return np.concatenate(outs, axis=1 if return_path else 0)


def predict_cells(
    model: CellFlowMatching,
    adata,
    *,
    source_time: Any,
    target_time: Any,
    method: str | None = None,
    steps: int | None = None,
    batch_size: int = 8192,
):
    """Push the cells observed at ``source_time`` to ``target_time`` with the learned flow.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.CellFlowMatching`.
    adata
        AnnData with the model's time column and representation.
    source_time
        Time label of the cells to push (as in ``adata.obs[time_key]``).
    target_time
        A time label known to the model, or a number on its clock; earlier times integrate
        backwards.
    method, steps
        ODE solver and steps (default: the model's).
    batch_size
        Cells integrated at once.

    Returns
    -------
    anndata.AnnData
        One predicted cell per source cell: coordinates in ``.obsm[use_rep]`` (in ``.X``
        when the model was fitted on ``X``), ``.obs`` copied from the source cells with
        ``.obs[time_key]`` set to ``target_time`` and ``.obs["bioflow_source_time"]``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> pred = bioflow.tl.predict_cells(model, adata, source_time=1.0, target_time=2.0)
    >>> pred.obsm["X_pca"].shape, float(pred.obs["time"].iloc[0])
    ((50, 10), 2.0)
    """
    tspec, spec = _spec_of(model)
    rows = _cells_at(adata, tspec.key, source_time)
    t0, t1 = tspec.value_of(source_time), tspec.value_of(target_time)
    x = _read_model_rep(model, adata, rows)
    pred = x if t0 == t1 else _push_batched(model, x, [t0, t1], method, steps, batch_size)
    obs = adata.obs.iloc[rows].copy()
    obs["bioflow_source_time"] = obs[tspec.key].astype(str)
    if tspec.kind == "ordered":
        obs[tspec.key] = pd.Categorical(
            [target_time] * len(rows), categories=tspec.labels, ordered=True
        )
    else:
        obs[tspec.key] = target_time
    out = cells_to_anndata(pred, obs, spec["use_rep"], spec["var_names"])
    record(
        out,
        "predict_cells",
        {
            "source_time": source_time,
            "target_time": target_time,
            "method": method or model.solver,
            "steps": steps or model.solver_steps,
        },
    )
    return out


def trajectories(
    model: CellFlowMatching,
    adata,
    *,
    times: Sequence,
    key_added: str = "bioflow_trajectory",
    method: str | None = None,
    steps: int | None = None,
    batch_size: int = 8192,
    copy: bool = False,
):
    """Integrate every cell from its own observed time through ``times``.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.CellFlowMatching`.
    adata
        AnnData with the model's time column and representation.
    times
        Time labels or numbers on the model's clock (any order; before or after a cell's
        own time).
    key_added
        ``adata.obsm[key_added]`` receives an array of shape ``(n_obs, len(times), d)``;
        parameters go to ``adata.uns["bioflow"][key_added]``.
    method, steps, batch_size
        ODE solver settings.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    None or anndata.AnnData
        ``None`` (``adata`` is annotated in place), or the annotated copy when
        ``copy=True``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.trajectories(model, adata, times=[0, 1, 2, 3, 4])
    >>> adata.obsm["bioflow_trajectory"].shape
    (250, 5, 10)
    >>> adata.uns["bioflow"]["bioflow_trajectory"]["times"]
    [0, 1, 2, 3, 4]
    """
    tspec, spec = _spec_of(model)
    if len(times) == 0:
        raise ValueError("`times` is empty")
    targets = np.array([tspec.value_of(t) for t in times], dtype=np.float64)
    if tspec.key not in adata.obs:
        raise ValueError(f"time_key {tspec.key!r} (from the model) is not a column of adata.obs")
    x = _read_model_rep(model, adata)
    starts = np.array([tspec.value_of(v) for v in adata.obs[tspec.key].to_numpy()])
    out = np.empty((x.shape[0], len(times), x.shape[1]), dtype=np.float32)
    for t_c in np.unique(starts):
        rows = np.flatnonzero(starts == t_c)
        xc = x[rows]
        for sel in (targets > t_c, targets < t_c):
            idx = np.flatnonzero(sel)
            if len(idx) == 0:
                continue
            order = idx[np.argsort(targets[idx])]
            if targets[order[0]] < t_c:
                order = order[::-1]
            path = _push_batched(
                model, xc, [t_c, *targets[order]], method, steps, batch_size, return_path=True
            )
            out[rows[:, None], order[None, :]] = path[1:].transpose(1, 0, 2)
        same = np.flatnonzero(targets == t_c)
        out[rows[:, None], same[None, :]] = xc[:, None, :]
    target = adata.copy() if copy else adata
    target.obsm[key_added] = out
    record(
        target,
        key_added,
        {
            "times": list(times),
            "time_values": targets.tolist(),
            "time_key": tspec.key,
            "use_rep": spec["use_rep"],
            "method": method or model.solver,
            "steps": steps or model.solver_steps,
        },
    )
    return target if copy else None


def evaluate_holdout(
    adata,
    *,
    time_key: str,
    use_rep: str | None = None,
    methods: Sequence[str] = ("ot-cfm",),
    seeds: Sequence[int] = (0,),
    holdout_times: Sequence | None = None,
    baselines: bool = True,
    max_points: int = 5000,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    """Leave-one-timepoint-out evaluation for every interior time.

    For each interior time ``t_k``: fit without it, push all cells of ``t_{k-1}`` to
    ``t_k`` and compare with the observed cells of ``t_k`` (W1, W2, RBF-MMD).  Baselines
    beside the models: ``"no-motion"`` (the cells of ``t_{k-1}`` themselves) and
    ``"mccann"`` (the OT displacement interpolant between ``t_{k-1}`` and ``t_{k+1}`` at
    the time fraction of ``t_k``).

    Parameters
    ----------
    adata
        AnnData time course with at least three times; not modified.
    time_key, use_rep
        As in :func:`fit_dynamics`.
    methods
        CFM variants to evaluate.
    seeds
        One fit per seed and method.
    holdout_times
        Interior time labels to hold out (default: all interior times).
    baselines
        Add the no-motion and McCann rows.
    max_points
        Point clouds larger than this are subsampled for the metrics.
    **fit_kwargs
        Passed to :func:`fit_dynamics` (``max_steps``, ``batch_size``, trainer options...).

    Returns
    -------
    pandas.DataFrame
        Columns ``held_out``, ``method``, ``seed``, ``w1``, ``w2``, ``mmd``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50, n_times=3)
    >>> df = bioflow.tl.evaluate_holdout(adata, time_key="time", use_rep="X_pca",
    ...                                  methods=("ot-cfm",), max_steps=5,
    ...                                  enable_progress_bar=False)
    >>> df["method"].tolist()
    ['no-motion', 'mccann', 'ot-cfm']
    """
    from bioflow.metrics import compare_distributions

    series = read_time_series(adata, time_key, use_rep)
    labels, values = series.spec.labels, series.spec.values
    if len(labels) < 3:
        raise ValueError(
            f"evaluate_holdout needs >= 3 times, adata.obs[{time_key!r}] has {len(labels)}"
        )
    for m in methods:
        if m not in CFM_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {CFM_METHODS}")
    interior = list(range(1, len(labels) - 1))
    if holdout_times is not None:
        chosen = []
        for t in holdout_times:
            ks = [k for k in interior if match_labels(labels, t)[k]]
            if not ks:
                raise ValueError(
                    f"holdout time {t!r} is not an interior time of "
                    f"{time_key!r}: {[labels[k] for k in interior]}"
                )
            chosen += ks
        interior = chosen
    fit_args = {
        k: fit_kwargs.pop(k) for k in ("max_steps", "batch_size", "num_workers") if k in fit_kwargs
    }
    model_kwargs = dict(fit_kwargs.pop("model_kwargs", None) or {})
    rows = []
    for k in interior:
        x_prev, x_true = series.x[series.cells_at(k - 1)], series.x[series.cells_at(k)]
        sub = CellTimeSeries(
            series.x,
            series.time_index,
            series.spec,
            use_rep,
            [j for j in range(len(labels)) if j != k],
            series.var_names,
        )
        if baselines:
            m = compare_distributions(x_prev, x_true, max_points=max_points)
            rows.append({"held_out": labels[k], "method": "no-motion", "seed": 0, **m})
            frac = (values[k] - values[k - 1]) / (values[k + 1] - values[k - 1])
            pts, w = mccann_interpolant(x_prev, series.x[series.cells_at(k + 1)], fraction=frac)
            m = compare_distributions(
                pts,
                x_true,
                pred_weights=w,
                max_points=None if len(pts) <= max_points else max_points,
            )
            rows.append({"held_out": labels[k], "method": "mccann", "seed": 0, **m})
        for method in methods:
            for seed in seeds:
                model = _fit_series(
                    sub,
                    method=method,
                    max_steps=fit_args.get("max_steps", 2000),
                    batch_size=fit_args.get("batch_size", 256),
                    seed=seed,
                    num_workers=fit_args.get("num_workers", 0),
                    model_kwargs=model_kwargs,
                    trainer_kwargs=dict(fit_kwargs),
                )
                pred = _push_batched(model, x_prev, [values[k - 1], values[k]], None, None, 8192)
                m = compare_distributions(pred, x_true, max_points=max_points, seed=seed)
                rows.append({"held_out": labels[k], "method": method, "seed": seed, **m})
    return pd.DataFrame(rows, columns=["held_out", "method", "seed", "w1", "w2", "mmd"])
