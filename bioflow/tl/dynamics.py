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
    clock = series.spec.clock_values
    span = max(clock) - min(clock)
    kwargs = dict(time_max_period=max(2.0 * span, 1.0))
    if series.growth is not None:
        kwargs["growth"] = "given"
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
    growth_key: str | None = None,
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
    growth_key
        Column of ``adata.obs`` with per-cell growth rates (per unit of ``time_key``); the
        model then uses ``growth="given"`` (see :class:`~bioflow.models.CellFlowMatching`)
        and :func:`predict_cells` reports each pushed cell's relative weight.  Use it (or
        ``model_kwargs={"growth": "unbalanced"}`` when no rates are known) when cells
        divide or die at different rates in different states, so that a state's share
        changes over time for reasons other than cells moving; balanced transport would
        then force cells across branches to match the shares.
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
    series = read_time_series(adata, time_key, use_rep, exclude_times, growth_key)
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


def _clock(tspec: TimeSpec, label: Any, name: str) -> float:
    """``label`` on the model's clock; refuse NaN and times far outside the observed range."""
    if isinstance(label, float | np.floating) and not np.isfinite(label):
        raise ValueError(f"{name} must be a finite time, got {label!r}")
    value = tspec.clock(label)
    lo, hi = tspec.clock_values[0], tspec.clock_values[-1]
    span = hi - lo
    if not lo - span <= value <= hi + span:
        user_lo = tspec.values[0] - (tspec.values[-1] - tspec.values[0])
        user_hi = tspec.values[-1] + (tspec.values[-1] - tspec.values[0])
        raise ValueError(
            f"{name}={label!r} is too far outside the observed times of {tspec.key!r} "
            f"({tspec.values[0]:g} to {tspec.values[-1]:g}); the flow is only defined near "
            f"them: use a time in [{user_lo:g}, {user_hi:g}]"
        )
    return value


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
    stochastic: bool = False,
    ode_after: float | None = None,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    outs = []
    for i in range(0, x.shape[0], batch_size):
        out = model.push(
            torch.from_numpy(x[i : i + batch_size]),
            times,
            method=method,
            steps=steps,
            return_path=return_path,
            stochastic=stochastic,
            ode_after=ode_after,
            generator=generator,
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
    stochastic: bool = False,
    n_samples: int = 1,
    ode_after: Any = None,
    seed: int = 0,
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
        A time label known to the model, or a number in the units of ``time_key``; earlier
        times integrate backwards.  Times more than one observed span outside the observed
        range are refused (``ValueError``).
    method, steps
        ODE solver and steps (default: the model's; ``stochastic`` uses Euler-Maruyama with
        ``steps`` default 100).
    batch_size
        Cells integrated at once.
    stochastic
        Sample the Schrödinger-bridge SDE instead of the ODE (models fitted with
        ``method="sf2m"``): cells from one progenitor state can end in different fates.
    n_samples
        Draws per source cell (``stochastic=True`` only).
    ode_after
        Time (label or number, as ``target_time``) after which the stochastic sampler
        follows the ODE without noise; ``None`` keeps the SDE to the end.
    seed
        Seed of the stochastic draws.

    Returns
    -------
    anndata.AnnData
        ``n_samples`` predicted cells per source cell: coordinates in ``.obsm[use_rep]``
        (in ``.X`` when the model was fitted on ``X``), ``.obs`` copied from the source
        cells with ``.obs[time_key]`` set to ``target_time``,
        ``.obs["bioflow_source_time"]`` and, with ``n_samples > 1``,
        ``.obs["bioflow_draw"]`` (names get a ``-<draw>`` suffix).  Models fitted with
        growth add ``.obs["bioflow_growth_weight"]``: each cell's relative number of
        descendants ``exp(int g dt)`` (mean 1); weight the predicted cells by it when
        computing proportions.

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
    _check_sampling(model, stochastic, n_samples, steps, batch_size)
    rows = _cells_at(adata, tspec.key, source_time)
    t0 = _clock(tspec, source_time, "source_time")
    t1 = _clock(tspec, target_time, "target_time")
    t_switch = None if ode_after is None else _clock(tspec, ode_after, "ode_after")
    x = _read_model_rep(model, adata, rows)
    gen = torch.Generator().manual_seed(seed) if stochastic else None
    weights = None
    if getattr(model, "growth_net", None) is not None and not stochastic and t0 != t1:
        x_end, logw = model.push_with_growth(
            torch.from_numpy(x), [t0, t1], method=method, steps=steps
        )
        logw = logw.cpu().numpy().astype(np.float64)
        weights = np.exp(logw - logw.max())
        weights = weights / weights.mean()
    draws = []
    for _ in range(n_samples if weights is None else 0):
        draws.append(
            x
            if t0 == t1
            else _push_batched(
                model,
                x,
                [t0, t1],
                method,
                steps,
                batch_size,
                stochastic=stochastic,
                ode_after=t_switch,
                generator=gen,
            )
        )
    if weights is not None:
        draws = [x_end.cpu().numpy()]
    pred = np.concatenate(draws) if n_samples > 1 else draws[0]
    obs = adata.obs.iloc[rows].copy()
    obs["bioflow_source_time"] = obs[tspec.key].astype(str)
    if weights is not None:
        obs["bioflow_growth_weight"] = weights
    if n_samples > 1:
        base = obs
        obs = pd.concat([base] * n_samples)
        obs.index = [f"{name}-{j}" for j in range(n_samples) for name in base.index]
        obs["bioflow_draw"] = np.repeat(np.arange(n_samples), len(rows))
        rows = np.tile(rows, n_samples)
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
            "method": "euler-maruyama" if stochastic else (method or model.solver),
            "steps": steps or model.solver_steps,
            "stochastic": stochastic,
            "n_samples": n_samples,
        },
    )
    return out


def _check_sampling(model, stochastic, n_samples, steps, batch_size) -> None:
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if n_samples > 1 and not stochastic:
        raise ValueError("n_samples > 1 needs stochastic=True (the ODE is deterministic)")
    if stochastic and not getattr(model, "stochastic_capable", False):
        raise ValueError(
            f"stochastic=True needs a model with a score head (method='sf2m'); this one has "
            f"method={getattr(model, 'method', None)!r}"
        )


def trajectories(
    model: CellFlowMatching,
    adata,
    *,
    times: Sequence,
    key_added: str = "bioflow_trajectory",
    method: str | None = None,
    steps: int | None = None,
    batch_size: int = 8192,
    stochastic: bool = False,
    n_samples: int = 1,
    seed: int = 0,
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
    stochastic
        Sample the bridge SDE (``method="sf2m"`` models) instead of the ODE.
    n_samples
        Draws per cell with ``stochastic=True``; the first goes to ``obsm[key_added]``,
        all of them to ``obsm[key_added + "_draws"]`` ``(n_obs, n_samples, len(times), d)``.
    seed
        Seed of the stochastic draws.
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
    _check_sampling(model, stochastic, n_samples, steps, batch_size)
    if len(times) == 0:
        raise ValueError("`times` is empty")
    targets = np.array([_clock(tspec, t, "times") for t in times], dtype=np.float64)
    if tspec.key not in adata.obs:
        raise ValueError(f"time_key {tspec.key!r} (from the model) is not a column of adata.obs")
    x = _read_model_rep(model, adata)
    starts = np.array([tspec.clock(v) for v in adata.obs[tspec.key].to_numpy()])
    gen = torch.Generator().manual_seed(seed) if stochastic else None
    all_draws = np.empty((x.shape[0], n_samples, len(times), x.shape[1]), dtype=np.float32)
    for draw in range(n_samples):
        out = all_draws[:, draw]
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
                    model,
                    xc,
                    [t_c, *targets[order]],
                    method,
                    steps,
                    batch_size,
                    return_path=True,
                    stochastic=stochastic,
                    generator=gen,
                )
                out[rows[:, None], order[None, :]] = path[1:].transpose(1, 0, 2)
            same = np.flatnonzero(targets == t_c)
            out[rows[:, None], same[None, :]] = xc[:, None, :]
    out = all_draws[:, 0]
    target = adata.copy() if copy else adata
    target.obsm[key_added] = out
    if n_samples > 1:
        target.obsm[key_added + "_draws"] = all_draws
    record(
        target,
        key_added,
        {
            "times": list(times),
            "time_values": [tspec.value_of(t) for t in times],
            "time_key": tspec.key,
            "use_rep": spec["use_rep"],
            "method": "euler-maruyama" if stochastic else (method or model.solver),
            "steps": steps or model.solver_steps,
            "stochastic": stochastic,
            "n_samples": n_samples,
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
    stochastic: bool = False,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    """Leave-one-timepoint-out evaluation for every interior time.

    For each interior time ``t_k``: fit without it, push all cells of ``t_{k-1}`` to
    ``t_k`` and compare with the observed cells of ``t_k`` (W1, W2, RBF-MMD).  Baselines
    beside the models: ``"no-motion"`` (the cells of ``t_{k-1}`` themselves) and
    ``"mccann"`` (the OT displacement interpolant between ``t_{k-1}`` and ``t_{k+1}`` at
    the time fraction of ``t_k``).

    Where trajectories end is measured too: the same fitted model pushes the cells of the
    first time to the last time; ``w1_end`` is the W1 distance to the observed last-time
    cells and ``off_data`` the share of endpoints farther from every observed last-time
    cell than that population's own 95th-percentile nearest-neighbour distance
    (:func:`~bioflow.metrics.off_data_fraction`).  Baselines have NaN there.

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
    stochastic
        Push ``sf2m`` models through their SDE instead of their ODE.
    **fit_kwargs
        Passed to :func:`fit_dynamics` (``max_steps``, ``batch_size``, ``model_kwargs``,
        trainer options...).

    Returns
    -------
    pandas.DataFrame
        Columns ``held_out``, ``method``, ``seed``, ``w1``, ``w2``, ``mmd``, ``w1_end``,
        ``off_data``.

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
    from bioflow.metrics import compare_distributions, off_data_fraction, wasserstein

    if max_points is not None and max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    series = read_time_series(adata, time_key, use_rep)
    labels, values = series.spec.labels, series.spec.values
    clock = series.spec.clock_values
    x_first = series.x[series.cells_at(0)]
    x_last = series.x[series.cells_at(len(labels) - 1)]
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
                sde = stochastic and model.stochastic_capable
                gen = torch.Generator().manual_seed(seed) if sde else None
                pred = _push_batched(
                    model,
                    x_prev,
                    [clock[k - 1], clock[k]],
                    None,
                    None,
                    8192,
                    stochastic=sde,
                    generator=gen,
                )
                m = compare_distributions(pred, x_true, max_points=max_points, seed=seed)
                end = _push_batched(
                    model,
                    x_first,
                    [clock[0], clock[-1]],
                    None,
                    None,
                    8192,
                    stochastic=sde,
                    generator=gen,
                )
                m["w1_end"] = wasserstein(end, x_last, 1, max_points=max_points, seed=seed)
                m["off_data"] = off_data_fraction(end, x_last)
                rows.append({"held_out": labels[k], "method": method, "seed": seed, **m})
    return pd.DataFrame(
        rows, columns=["held_out", "method", "seed", "w1", "w2", "mmd", "w1_end", "off_data"]
    )
