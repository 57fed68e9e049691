"""Cell-dynamics tools: fit, predict, trajectories and leave-one-timepoint-out evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bioflow._docs import share_docs
from bioflow.core.couplings.mccann import mccann_interpolant
from bioflow.data.anndata import match_labels, read_representation
from bioflow.data.cells import CellDynamicsDataModule, split_series
from bioflow.data.embedding import knn_map
from bioflow.data.timecourse import CellTimeSeries, TimeSpec, read_time_series
from bioflow.models.dynamics import CFM_METHODS, CellFlowMatching
from bioflow.tl._predicted import embedding_keys, predicted_anndata
from bioflow.tl._train import check_validation, fit_model, record

# the defaults of a cell-dynamics fit (chosen by benchmarks/results/dynamics_sweep.json),
# shared by fit_dynamics, evaluate_holdout and the demo
FIT_MAX_STEPS = 8000
FIT_BATCH_SIZE = 128


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
    validation_fraction: float = 0.0,
    early_stopping: bool | int = False,
) -> CellFlowMatching:
    if method not in CFM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {CFM_METHODS}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or (batch_size < 1)
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if (
        isinstance(max_steps, bool)
        or not isinstance(max_steps, int | np.integer)
        or (max_steps < 1)
    ):
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    patience = check_validation(validation_fraction, early_stopping)
    train, val = series, None
    if validation_fraction > 0:
        train, val = split_series(series, validation_fraction, seed)
    dm = CellDynamicsDataModule(train, batch_size=batch_size, num_workers=num_workers, seed=seed)
    dm.val_series = val
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
        validate=val is not None,
        monitor="val/w1",
        patience=patience,
    )


def fit_dynamics(
    adata,
    *,
    time_key: str,
    use_rep: str | None = None,
    method: str = "ot-cfm",
    exclude_times: Sequence = (),
    time_bins: int | Sequence[float] | None = None,
    max_steps: int = FIT_MAX_STEPS,
    batch_size: int = FIT_BATCH_SIZE,
    seed: int = 0,
    num_workers: int = 0,
    growth_key: str | None = None,
    validation_fraction: float = 0.0,
    early_stopping: bool | int = False,
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
    time_bins
        Cut a continuous ``time_key`` (a pseudotime; more than 20 distinct values is
        refused without it) into time points: a number of bins holding equal numbers of
        cells, or the bin edges.  The time labels are then the bin numbers ``0, 1, ...``
        and each bin sits at the mean time of its cells.
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
    validation_fraction
        Share of each time's cells held out of training; every 100 steps their push to
        the next time is compared with the held-out cells there (``val/w1`` in
        ``model.history``).
    early_stopping
        Stop when ``val/w1`` has not improved for this many validations (``True``: 3);
        needs ``validation_fraction > 0``.
    model_kwargs
        Extra arguments of :class:`~bioflow.models.CellFlowMatching` (``sigma``,
        ``hidden``, ``lr``, ...).
    **trainer_kwargs
        Passed to :class:`lightning.Trainer` (``accelerator``, ``devices``,
        ``enable_progress_bar``, ``logger``, ...).
        ``compile=True`` compiles the networks with :func:`torch.compile` (a dict gives its
        options) and ``precision=`` sets Lightning's precision (e.g. ``"bf16-mixed"``).

    Returns
    -------
    CellFlowMatching
        The fitted model, in eval mode; ``model.history`` is a :class:`pandas.DataFrame`
        of the training loss (and validation metrics) by step.

    Raises
    ------
    ValueError
        Before any training, for a missing ``time_key`` or ``use_rep``, fewer than two
        times, NaN/inf values, an unknown ``exclude_times`` value, a time column that is
        neither numeric nor ordered, or a continuous time without ``time_bins``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=100)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=20, enable_progress_bar=False)
    >>> model.method, list(model.history.columns)
    ('ot-cfm', ['train_loss'])
    """
    series = read_time_series(adata, time_key, use_rep, exclude_times, growth_key, time_bins)
    return _fit_series(
        series,
        method=method,
        max_steps=max_steps,
        batch_size=batch_size,
        seed=seed,
        num_workers=num_workers,
        model_kwargs=dict(model_kwargs or {}),
        trainer_kwargs=trainer_kwargs,
        validation_fraction=validation_fraction,
        early_stopping=early_stopping,
    )


def _check_model(model, fn: str) -> None:
    if not isinstance(model, CellFlowMatching):
        raise ValueError(
            f"{fn} needs a CellFlowMatching model (from bioflow.tl.fit_dynamics), got a "
            f"{type(model).__name__}"
        )


def _check_solver_args(steps, batch_size) -> None:
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1
    ):
        raise ValueError(f"steps must be an integer >= 1 (or None for the model's), got {steps!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or (batch_size < 1)
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


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


def _cells_at(adata, key: str, label: Any, tspec: TimeSpec | None = None) -> np.ndarray:
    if key not in adata.obs:
        raise ValueError(f"time_key {key!r} (from the model) is not a column of adata.obs")
    col = adata.obs[key]
    if tspec is not None and tspec.kind == "binned":
        k = tspec.labels.index(label) if label in tspec.labels else None
        if k is None:
            raise ValueError(f"time {label!r} is not a bin of {key!r}: {tspec.labels}")
        rows = np.flatnonzero(tspec.index_of(col.to_numpy()) == k)
        if len(rows) == 0:
            raise ValueError(f"no cells of adata.obs[{key!r}] fall in time bin {label}")
        return rows
    mask = match_labels(col, label)
    if not mask.any():
        raise ValueError(
            f"no cells with adata.obs[{key!r}] == {label!r}; present: {list(pd.unique(col))}"
        )
    return np.flatnonzero(mask)


def _cell_times(adata, tspec: TimeSpec) -> np.ndarray:
    """Each cell's time on the model's clock, ``(n_obs,)``."""
    if tspec.key not in adata.obs:
        raise ValueError(f"time_key {tspec.key!r} (from the model) is not a column of adata.obs")
    col = adata.obs[tspec.key].to_numpy()
    if tspec.kind == "binned":
        idx = tspec.index_of(col)
        if (idx < 0).any():
            raise ValueError(f"adata.obs[{tspec.key!r}] has times outside the model's bins")
        return np.asarray(tspec.clock_values)[idx]
    return np.array([tspec.clock(v) for v in col])


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
    out = np.concatenate(outs, axis=1 if return_path else 0)
    if not np.isfinite(out).all():
        raise ValueError(
            f"the flow diverged (NaN/inf cells) integrating through times "
            f"{[float(t) for t in times]}; is a target time far outside the times the model "
            "was trained on, or the solver step too coarse (raise steps=)?"
        )
    return out


@share_docs
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
    {solver_settings}
    stochastic
        Sample the Schrödinger-bridge SDE instead of the ODE (models fitted with
        ``method="sf2m"``; Euler-Maruyama with ``steps``, default 100): cells from one
        progenitor state can end in different fates.
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
        ``n_samples`` predicted cells per source cell, ready for ``sc.pl.*``,
        ``anndata.concat`` and ``sc.tl.ingest``:

        - ``.X``: genes.  For a model fitted on ``.X`` these are its predictions; for one
          fitted on the PCA of ``.X`` (``sc.pp.pca``: ``.obsm["X_pca"]`` with loadings in
          ``.varm["PCs"]``) they are *reconstructed* as ``mean + X_pca @ PCs.T`` (see
          :class:`~bioflow.data.embedding.PCADecoder`: genes outside the PCA keep their
          mean).  Otherwise ``.X`` is empty and a warning says how to get genes.
        - ``.obsm[use_rep]``: the predictions in the model's space; every embedding of
          ``adata`` (``X_umap``, ``X_tsne``, ``X_draw_graph_*``...) holds the predicted
          cells placed by k-nearest-neighbour regression from the model space onto it
          (:func:`~bioflow.data.embedding.knn_map`, 15 neighbours).
        - ``.var`` copied from ``adata``; ``.obs`` copied from the source cells with
          ``.obs[time_key]`` set to ``target_time``, ``.obs["bioflow_source_time"]`` and
          ``.obs["bioflow_source_cell"]``; names are the source names plus
          ``"-pred<target_time>"`` (and ``-<draw>`` before it with ``n_samples > 1``, when
          ``.obs["bioflow_draw"]`` numbers the draws), so they are unique next to ``adata``.
        - Models fitted with growth add ``.obs["bioflow_growth_weight"]``: each cell's
          relative number of descendants ``exp(int g dt)`` (mean 1); weight the predicted
          cells by it when computing proportions.

    Examples
    --------
    >>> import bioflow, scanpy as sc
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> sc.pp.pca(adata, n_comps=10)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> pred = bioflow.tl.predict_cells(model, adata, source_time=1.0, target_time=2.0)
    >>> pred.shape, pred.obsm["X_pca"].shape, float(pred.obs["time"].iloc[0])
    ((50, 50), (50, 10), 2.0)
    >>> pred.obs_names[0]
    'cell50-pred2.0'
    """
    _check_model(model, "predict_cells")
    _check_solver_args(steps, batch_size)
    tspec, spec = _spec_of(model)
    _check_sampling(model, stochastic, n_samples)
    rows = _cells_at(adata, tspec.key, source_time, tspec)
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
        base_rows = rows
        rows = np.tile(rows, n_samples)
    if tspec.kind == "ordered":
        obs[tspec.key] = pd.Categorical(
            [target_time] * len(rows), categories=tspec.labels, ordered=True
        )
    elif tspec.kind == "binned":
        obs[tspec.key] = tspec.value_of(target_time)
    else:
        obs[tspec.key] = target_time
    out = predicted_anndata(
        adata,
        rows,
        pred,
        obs,
        use_rep=spec["use_rep"],
        var_names=spec["var_names"],
        suffix=f"-pred{target_time}",
        tool="predict_cells",
    )
    if n_samples > 1:  # the draw suffix is not part of the source cell's name
        out.obs["bioflow_source_cell"] = np.tile(adata.obs_names[base_rows].astype(str), n_samples)
    record(
        out,
        "predict_cells",
        {
            "source_time": source_time,
            "target_time": target_time,
            "method": "euler-maruyama" if stochastic else (method or model.solver),
            "steps": model.solver_steps if steps is None else steps,
            "stochastic": stochastic,
            "n_samples": n_samples,
        },
    )
    return out


def _check_sampling(model, stochastic, n_samples) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    if n_samples > 1 and not stochastic:
        raise ValueError("n_samples > 1 needs stochastic=True (the ODE is deterministic)")
    if stochastic and not getattr(model, "stochastic_capable", False):
        raise ValueError(
            f"stochastic=True needs a model with a score head (method='sf2m'); this one has "
            f"method={getattr(model, 'method', None)!r}"
        )


@share_docs
def trajectories(
    model: CellFlowMatching,
    adata,
    *,
    times: Sequence,
    key_added: str = "bioflow_trajectory",
    basis: str | Sequence[str] | None = None,
    n_neighbors: int = 15,
    method: str | None = None,
    steps: int | None = None,
    batch_size: int = 8192,
    stochastic: bool = False,
    n_samples: int = 1,
    seed: int = 0,
    copy: bool = False,
):
    """Integrate every cell from its own observed time through ``times``.

    The paths live in the model's space (e.g. PCA).  To draw them on a 2-D embedding of
    the observed cells (UMAP, t-SNE, force-directed...), every path point is placed on the
    embedding by k-nearest-neighbour regression: the inverse-distance weighted mean of the
    embedding coordinates of its ``n_neighbors`` nearest observed cells in the model space
    (:func:`~bioflow.data.embedding.knn_map`).  Points between cells land between them;
    nothing is extrapolated beyond the observed cells.

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
    basis
        Embeddings (keys of ``.obsm`` such as ``"X_umap"``, or ``"umap"``) to map the paths
        onto; each gets ``adata.obsm[f"{key_added}_{name}"]`` of shape
        ``(n_obs, len(times), 2)`` (``name`` without ``"X_"``).  Default: every
        embedding present (``X_umap``, ``X_tsne``, ``X_draw_graph_*``...).
    n_neighbors
        Observed cells averaged to place a path point on an embedding.
    {solver_settings}
    stochastic
        Sample the bridge SDE (``method="sf2m"`` models) instead of the ODE.
    n_samples
        Draws per cell with ``stochastic=True``; the first goes to ``obsm[key_added]`` (and
        the embeddings), all of them to ``obsm[key_added + "_draws"]``
        ``(n_obs, n_samples, len(times), d)``.
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
    >>> adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2]  # any 2-D embedding (sc.tl.umap)
    >>> bioflow.tl.trajectories(model, adata, times=[0, 4], basis="X_umap")
    >>> adata.obsm["bioflow_trajectory_umap"].shape
    (250, 2, 2)
    """
    _check_model(model, "trajectories")
    _check_solver_args(steps, batch_size)
    tspec, spec = _spec_of(model)
    _check_sampling(model, stochastic, n_samples)
    if isinstance(times, str | bytes) or not hasattr(times, "__len__"):
        raise ValueError(f"times must be a list of time labels or numbers, got {times!r}")
    if len(times) == 0:
        raise ValueError("`times` is empty")
    targets = np.array([_clock(tspec, t, "times") for t in times], dtype=np.float64)
    if tspec.key not in adata.obs:
        raise ValueError(f"time_key {tspec.key!r} (from the model) is not a column of adata.obs")
    x = _read_model_rep(model, adata)
    starts = _cell_times(adata, tspec)
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
    bases = _resolve_bases(adata, basis, spec["use_rep"])
    mapped = {b: knn_map(x, np.asarray(adata.obsm[b]), out, k=n_neighbors) for b in bases}
    target = adata.copy() if copy else adata
    target.obsm[key_added] = out
    if n_samples > 1:
        target.obsm[key_added + "_draws"] = all_draws
    for b, pts in mapped.items():
        target.obsm[f"{key_added}_{_short(b)}"] = pts.astype(np.float32)
    record(
        target,
        key_added,
        {
            "bases": list(bases),
            "n_neighbors": n_neighbors,
            "times": list(times),
            "time_values": [tspec.value_of(t) for t in times],
            "time_key": tspec.key,
            "use_rep": spec["use_rep"],
            "method": "euler-maruyama" if stochastic else (method or model.solver),
            "steps": model.solver_steps if steps is None else steps,
            "stochastic": stochastic,
            "n_samples": n_samples,
        },
    )
    return target if copy else None


def _short(basis: str) -> str:
    return basis[2:] if basis.startswith("X_") else basis


def _resolve_bases(adata, basis, use_rep) -> list[str]:
    if basis is None:
        return embedding_keys(adata, use_rep)
    out = []
    for b in [basis] if isinstance(basis, str) else list(basis):
        key = b if b in adata.obsm else f"X_{b}"
        if key not in adata.obsm:
            raise ValueError(f"basis {b!r} is not a key of adata.obsm: {list(adata.obsm)}")
        if key == use_rep:
            continue
        out.append(key)
    return out


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
    from bioflow.metrics.distribution import check_max_points

    check_max_points(max_points)
    if isinstance(methods, str):
        methods = (methods,)
    if methods and len(seeds) == 0:
        raise ValueError("seeds is empty: give at least one seed per method (e.g. seeds=(0,))")
    series = read_time_series(adata, time_key, use_rep, time_bins=fit_kwargs.pop("time_bins", None))
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
    validation = {
        k: fit_kwargs.pop(k) for k in ("validation_fraction", "early_stopping") if k in fit_kwargs
    }
    show_bar = fit_kwargs.get("enable_progress_bar", True)
    fit_kwargs["enable_progress_bar"] = False  # one bar over all fits instead
    bar = None
    if show_bar and methods and seeds:
        from bioflow.tl._progress import progress_bar

        bar = progress_bar(
            total=len(interior) * len(methods) * len(seeds), desc="evaluate_holdout", unit="fit"
        )
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
                    max_steps=fit_args.get("max_steps", FIT_MAX_STEPS),
                    batch_size=fit_args.get("batch_size", FIT_BATCH_SIZE),
                    seed=seed,
                    num_workers=fit_args.get("num_workers", 0),
                    model_kwargs=model_kwargs,
                    trainer_kwargs=dict(fit_kwargs),
                    **validation,
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
                if bar is not None:
                    bar.set_postfix(held_out=labels[k], method=method, w1=f"{m['w1']:.3f}")
                    bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(
        rows, columns=["held_out", "method", "seed", "w1", "w2", "mmd", "w1_end", "off_data"]
    )
