"""Meta Flow Matching tools: fit on populations, predict unseen ones, evaluate held-out ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bioflow.data.anndata import match_labels, read_representation
from bioflow.data.populations import (
    PopulationDataModule,
    check_labels,
    holdout_populations,
    read_populations,
)
from bioflow.models.meta import META_METHODS, MetaFlowMatching
from bioflow.tl._predicted import predicted_anndata
from bioflow.tl._train import check_validation, fit_model, record


def fit_meta_flow(
    adata,
    *,
    population_key: str,
    source_key: str,
    source_value: Any,
    condition_key: str | None = None,
    use_rep: str | None = None,
    method: str = "mfm",
    exclude_populations: Sequence = (),
    holdout_key: str | None = None,
    holdout_value: Any = None,
    holdout_mask: Any = None,
    coupling: str | None = None,
    pair_key: str | None = None,
    encoder_key: str | None = None,
    on_small: str = "skip",
    max_steps: int = 2000,
    populations_per_step: int = 8,
    cells_per_population: int = 256,
    seed: int = 0,
    num_workers: int = 0,
    validation_fraction: float = 0.0,
    early_stopping: bool | int = False,
    model_kwargs: dict | None = None,
    **trainer_kwargs: Any,
) -> MetaFlowMatching:
    """Fit (Meta) Flow Matching from each population's initial cells to its final cells.

    Parameters
    ----------
    adata
        AnnData; not modified.
    population_key
        Column of ``.obs`` naming each cell's population (patient, replicate, ...).
    source_key, source_value
        Cells with ``.obs[source_key] == source_value`` are the initial cells (e.g.
        ``"treatment"``, ``"control"``); the other cells of a population are its final cells.
    condition_key
        Optional column of ``.obs`` with the treatment of the final cells (may equal
        ``source_key``); one problem per population and treatment.
    use_rep
        Key of ``.obsm`` to model; ``None`` models ``.X``.
    method
        ``"mfm"`` (population embedding, Meta Flow Matching), ``"fm"`` (treatment only) or
        ``"cgfm"`` (one-hot of the training population).
    exclude_populations
        Populations left out of training (held out for evaluation); a list of labels.
    holdout_key, holdout_value, holdout_mask
        Hold out, in addition, the populations whose cells have
        ``obs[holdout_key] == holdout_value`` (a value or a list), or those selected by a
        boolean mask over the cells; either must select whole populations.
    coupling
        Pairs of initial and final cells within a population: ``"independent"``,
        ``"paired"`` (by ``pair_key``) or ``"exact"`` (minibatch exact OT).  Default:
        ``"paired"`` when a ``pair_key`` is given, else ``"exact"`` (measured: on letters
        paired 0.254 < exact 0.258 < independent 0.307 test W1, on the response task exact
        1.00 < independent 1.46; exact costs about 2-3x the fit time on CPU;
        ``benchmarks/results/meta_choices.json``).
    pair_key
        Column of ``.obs`` with pair ids linking an initial to a final cell.
    encoder_key
        Categorical column of ``.obs`` (e.g. cell type) given one-hot to the encoder.
    on_small
        Populations with fewer than ``k + 1`` initial cells (``"mfm"``; 1 otherwise) or
        without final cells: ``"skip"`` (one warning names them) or ``"raise"``.
    max_steps
        Optimiser steps.
    populations_per_step, cells_per_population
        Batch: this many populations x this many cell pairs each.
    seed
        Seed of initialisation and sampling.
    num_workers
        Data-loader workers.
    validation_fraction
        Share of the training populations (at least one) held out of training and
        predicted every 100 steps (``val/w1``, ``val/mmd`` in ``model.history``).
    early_stopping
        Stop when ``val/w1`` has not improved for this many validations (``True``: 3);
        needs ``validation_fraction > 0``.
    model_kwargs
        Extra arguments of :class:`~bioflow.models.MetaFlowMatching` (``k``,
        ``embed_dim``, ``width``, ``lr``, ...).
    **trainer_kwargs
        Passed to :class:`lightning.Trainer`.
        ``compile=True`` compiles the networks with :func:`torch.compile` (a dict gives its
        options) and ``precision=`` sets Lightning's precision (e.g. ``"bf16-mixed"``).

    Returns
    -------
    MetaFlowMatching
        The fitted model, in eval mode, with the data description in ``model.data_spec``.

    Raises
    ------
    ValueError
        Before training: unknown ``method``, missing keys, a population without initial
        (or final) cells, fewer initial cells than ``k + 1`` for ``"mfm"``, an unknown
        excluded population.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=100)
    >>> model = bioflow.tl.fit_meta_flow(
    ...     adata, population_key="population", source_key="state", source_value="source",
    ...     use_rep="X_coords", max_steps=5, model_kwargs={"k": 10, "width": 32},
    ...     enable_progress_bar=False)
    >>> model.method
    'mfm'
    """
    if method not in META_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {META_METHODS}")
    patience = check_validation(validation_fraction, early_stopping)
    kwargs = dict(model_kwargs or {})
    if coupling is None:
        coupling = kwargs.get("coupling") or ("paired" if pair_key is not None else "exact")
    if "coupling" in kwargs and kwargs["coupling"] != coupling:
        raise ValueError("pass the coupling once: coupling= or model_kwargs['coupling']")
    kwargs["coupling"] = coupling
    if coupling == "paired" and pair_key is None:
        raise ValueError("coupling='paired' needs pair_key (an obs column of pair ids)")
    k = kwargs.get("k", 50)
    exclude = check_labels(exclude_populations, "exclude_populations")
    for p in holdout_populations(adata, population_key, holdout_key, holdout_value, holdout_mask):
        if p not in exclude:
            exclude.append(p)
    val_pops: list[str] = []
    if validation_fraction > 0 and population_key in adata.obs:
        excluded = set(exclude)
        pops = [p for p in pd.unique(adata.obs[population_key].astype(str)) if p not in excluded]
        n_val = max(1, int(round(validation_fraction * len(pops))))
        if n_val >= len(pops):
            raise ValueError(
                f"validation_fraction={validation_fraction} leaves no training population "
                f"({len(pops)} available)"
            )
        val_pops = sorted(np.random.default_rng(seed).choice(pops, n_val, replace=False))
    dm = PopulationDataModule(
        adata,
        population_key=population_key,
        source_key=source_key,
        source_value=source_value,
        condition_key=condition_key,
        use_rep=use_rep,
        exclude_populations=[*exclude, *val_pops],
        min_source_cells=k + 1 if method == "mfm" else 1,
        populations_per_step=populations_per_step,
        cells_per_population=cells_per_population,
        # the encoder embeds as many initial cells as the field sees per population (the
        # reference embeds the field's own batch), which keeps an MFM step near an FM step
        embed_cells=kwargs.setdefault("embed_cells", max(cells_per_population, k + 1)),
        num_workers=num_workers,
        seed=seed,
        knn_k=k if method == "mfm" else None,
        pair_key=pair_key,
        encoder_key=encoder_key,
        on_small=on_small,
    )
    pset = dm.pset
    if val_pops:
        dm.val_problems = [pr for pr in pset.held_out if pr.population in set(val_pops)]
    return fit_model(
        lambda: MetaFlowMatching(
            dim=pset.dim,
            method=method,
            n_conditions=len(pset.conditions),
            n_populations=len(pset.populations),
            data_spec=dm.data_spec,
            **kwargs,
        ),
        dm,
        max_steps=max_steps,
        seed=seed,
        trainer_kwargs=trainer_kwargs,
        validate=bool(val_pops),
        monitor="val/w1",
        patience=patience,
    )


def _spec(model: MetaFlowMatching, fn: str = "this tool") -> dict:
    if not isinstance(model, MetaFlowMatching):
        raise ValueError(
            f"{fn} needs a MetaFlowMatching model (from bioflow.tl.fit_meta_flow), got a "
            f"{type(model).__name__}"
        )
    spec = getattr(model, "data_spec", None)
    if not spec:
        raise ValueError(
            "this model carries no data description; fit it with "
            "bioflow.tl.fit_meta_flow or pass data_spec when building it"
        )
    return spec


def _condition_index(spec: dict, condition: Any) -> int | None:
    conds = spec["conditions"]
    if not conds:
        if condition is not None:
            raise ValueError(
                f"condition={condition!r} given but the model was fitted without a condition_key"
            )
        return None
    if condition is None:
        if len(conds) == 1:
            return 0
        raise ValueError(f"pass condition=, one of {conds}")
    if str(condition) not in conds:
        raise ValueError(f"unknown condition {condition!r}; the model knows {conds}")
    return conds.index(str(condition))


def _population_index(spec: dict, label: Any) -> int | None:
    if label is None:
        return None
    pops = spec["populations"]
    return pops.index(str(label)) if str(label) in pops else None


def _encoder_extra(spec: dict, adata, rows: np.ndarray) -> np.ndarray | None:
    """One-hot encoder features of ``rows`` from ``obs[encoder_key]`` (or ``None``)."""
    key = spec.get("encoder_key")
    cats = spec.get("encoder_categories") or []
    if key is None or not cats:
        return None
    if key not in adata.obs:
        raise ValueError(
            f"the model's encoder reads adata.obs[{key!r}] (encoder_key); it is missing"
        )
    lab = adata.obs[key].astype(str).to_numpy()[rows]
    unknown = sorted(set(lab) - set(cats))
    if unknown:
        raise ValueError(
            f"adata.obs[{key!r}] has values {unknown[:10]} unseen in training; known: {cats}"
        )
    return (lab[:, None] == np.asarray(cats)[None, :]).astype(np.float32)


def _predict_cells(model, spec, x0, label, cidx, method=None, steps=None, extra=None) -> np.ndarray:
    if model.method == "mfm" and x0.shape[0] < model.encoder.k + 1:
        raise ValueError(
            f"population {label!r} has {x0.shape[0]} initial cells; the model's "
            f"encoder needs at least k + 1 = {model.encoder.k + 1}"
        )
    out = model.predict(
        torch.from_numpy(x0),
        condition=cidx,
        population=_population_index(spec, label),
        embed_extra=None if extra is None else torch.from_numpy(extra),
        method=method,
        steps=steps,
    )
    return out.cpu().numpy()


def predict_population(
    model: MetaFlowMatching,
    adata,
    *,
    condition: Any = None,
    method: str | None = None,
    steps: int | None = None,
):
    """Predict the final cells of populations from their initial cells.

    Each population (``adata.obs[population_key]`` when present, else all cells as
    one population) is embedded from its own initial cells and pushed through the flow.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.MetaFlowMatching`.
    adata
        AnnData of initial cells (when it has the model's ``source_key`` column, only the
        rows with ``source_value`` are used), with the model's representation; not
        modified.
    condition
        Treatment to predict (one of the model's; may be omitted if it knows only one).
    method, steps
        ODE solver and steps (default: the model's).

    Returns
    -------
    anndata.AnnData
        One predicted cell per initial cell: ``.obsm[use_rep]`` holds the predictions,
        ``.X`` the genes (the model's own features when fitted on ``.X``; a PCA
        reconstruction ``mean + X_pca @ PCs.T`` when ``use_rep`` is the PCA of ``.X`` made
        by ``sc.pp.pca``; empty, with a warning saying how to get genes, otherwise), ``.var``
        copied, embeddings of ``adata`` (``X_umap``...) with the predicted cells placed by
        nearest-neighbour regression, ``.obs`` copied from the initial cells with
        ``.obs[condition_key]`` set to ``condition``, ``.obs["bioflow_predicted"] = True``
        and names suffixed ``"-pred"`` (unique next to ``adata``).  See
        :func:`predict_cells`.

    Raises
    ------
    ValueError
        Unknown condition (one the model was not trained on), no initial cells, a
        population smaller than the encoder's ``k + 1``, or a representation of the wrong
        width.

    Notes
    -----
    Predicted cells are named ``"<initial cell>-pred"`` (``"-pred-<condition>"`` with
    treatments), so they concatenate with the observed cells and with predictions for
    other treatments without clashes; ``obs["bioflow_source_cell"]`` keeps the initial
    cell's name, and categorical ``.obs`` columns stay categorical.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=60)
    >>> model = bioflow.tl.fit_meta_flow(
    ...     adata, population_key="population", source_key="state", source_value="source",
    ...     use_rep="X_coords", exclude_populations=["C_0"], max_steps=5,
    ...     model_kwargs={"k": 10, "width": 32}, enable_progress_bar=False)
    >>> pred = bioflow.tl.predict_population(model, adata[adata.obs["population"] == "C_0"])
    >>> pred.obsm["X_coords"].shape
    (60, 2)
    """
    spec = _spec(model, "predict_population")
    cidx = _condition_index(spec, condition)
    src_key = spec["source_key"]
    if src_key in adata.obs:
        rows = np.flatnonzero(match_labels(adata.obs[src_key], spec["source_value"]))
        if len(rows) == 0:
            raise ValueError(
                f"adata has no initial cells (obs[{src_key!r}] == {spec['source_value']!r})"
            )
    else:
        rows = np.arange(adata.n_obs)
        if len(rows) == 0:
            raise ValueError("adata has no cells")
    x = read_representation(adata, spec["use_rep"], rows=rows, dim=spec["dim"])
    pkey = spec["population_key"]
    labels = (
        adata.obs[pkey].astype(str).to_numpy()[rows]
        if pkey in adata.obs
        else np.full(len(rows), None, dtype=object)
    )
    extra = _encoder_extra(spec, adata, rows)
    pred = np.empty_like(x)
    for label in pd.unique(labels):
        sel = labels == label
        pred[sel] = _predict_cells(
            model,
            spec,
            x[sel],
            label,
            cidx,
            method,
            steps,
            None if extra is None else extra[sel],
        )
    obs = adata.obs.iloc[rows].copy()
    ckey = spec["condition_key"]
    if ckey is not None and cidx is not None:
        value = spec["conditions"][cidx]
        if ckey in obs and isinstance(obs[ckey].dtype, pd.CategoricalDtype):
            cats = list(obs[ckey].cat.categories)
            cats = cats if value in cats else [*cats, value]
            obs[ckey] = pd.Categorical([value] * len(obs), categories=cats)
        else:
            obs[ckey] = pd.Categorical([value] * len(obs))
    obs["bioflow_predicted"] = True
    tag = "pred" if ckey is None or cidx is None else f"pred-{spec['conditions'][cidx]}"
    src = adata[rows] if len(rows) != adata.n_obs else adata
    out = predicted_anndata(
        src,
        np.arange(len(rows)),
        pred,
        obs,
        use_rep=spec["use_rep"],
        var_names=spec["var_names"],
        suffix=f"-{tag}",
        tool="predict_population",
    )
    record(
        out,
        "predict_population",
        {"condition": condition, "method": model.method, "solver": method or model.solver},
    )
    return out


def evaluate_populations(
    model: MetaFlowMatching,
    adata,
    *,
    populations: Sequence,
    baseline: bool = True,
    max_points: int | None = 2000,
    seed: int = 0,
    steps: int | None = None,
) -> pd.DataFrame:
    """Compare predicted and observed final cells of (held-out) populations.

    For every population in ``populations`` and each of its treatments: push its initial
    cells with the model and compare with its observed final cells -- W1, W2 (exact OT),
    RBF-MMD and the Pearson ``r`` of pairwise feature correlations (NaN with fewer than
    three features).  A ``"no-motion"`` baseline (the initial cells themselves) sits beside
    the model, and a ``population == "mean"`` row averages each method.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.MetaFlowMatching`.
    adata
        AnnData holding the populations (initial and final cells), with the model's keys.
    populations
        Population labels to evaluate.
    baseline
        Add the no-motion rows.
    max_points, seed
        Subsampling for the metrics.
    steps
        ODE steps (default: the model's).

    Returns
    -------
    pandas.DataFrame
        Columns ``population``, ``condition``, ``method``, ``n_source`` / ``n_target``
        (cells), ``w1``, ``w2``, ``mmd``, ``r`` and the mean-shift errors ``mean_mse``,
        ``mean_l2``, ``mean_l1`` (:func:`bioflow.metrics.mean_shift_errors`).  Per method,
        a ``"mean"`` row averages the (population, treatment) rows plainly and a
        ``"weighted_mean"`` row weights them by their observed final cells.

    Raises
    ------
    ValueError
        An unknown population, a treatment unseen in training, or a string where a list
        of populations is expected.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=60)
    >>> model = bioflow.tl.fit_meta_flow(
    ...     adata, population_key="population", source_key="state", source_value="source",
    ...     use_rep="X_coords", exclude_populations=["C_0", "C_1"], max_steps=5,
    ...     model_kwargs={"k": 10, "width": 32}, enable_progress_bar=False)
    >>> df = bioflow.tl.evaluate_populations(model, adata, populations=["C_0", "C_1"])
    >>> df[["population", "method"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['C_0', 'mfm'], ['C_0', 'no-motion'], ['C_1', 'mfm'], ['C_1', 'no-motion'],
     ['mean', 'mfm'], ['mean', 'no-motion'], ['weighted_mean', 'mfm'],
     ['weighted_mean', 'no-motion']]
    """
    from bioflow.metrics import compare_distributions, mean_shift_errors
    from bioflow.metrics.distribution import check_max_points

    spec = _spec(model, "evaluate_populations")
    check_max_points(max_points)
    if isinstance(populations, str):  # one label
        populations = [populations]
    wanted = check_labels(populations, "populations")
    if not wanted:
        raise ValueError("`populations` is empty")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pset = read_populations(
            adata,
            spec["population_key"],
            spec["source_key"],
            spec["source_value"],
            spec["condition_key"],
            spec["use_rep"],
        )
    for p in wanted:
        if p in pset.skipped:
            raise ValueError(f"population {p!r} cannot be evaluated: it has {pset.skipped[p]}")
    if pset.dim != spec["dim"]:
        raise ValueError(f"the data has {pset.dim} features; the model was fitted on {spec['dim']}")
    known = {pr.population for pr in pset.problems}
    for p in wanted:
        if p not in known:
            raise ValueError(f"population {p!r} is not in adata.obs[{spec['population_key']!r}]")
    problems = [pr for pr in pset.problems if pr.population in wanted]
    unseen = sorted(
        {pr.condition for pr in problems if pr.condition is not None} - set(spec["conditions"])
    )
    if unseen:
        raise ValueError(
            f"treatments {unseen} of these populations were not seen in training; the model "
            f"knows {spec['conditions']}"
        )
    extra_all = _encoder_extra(spec, adata, np.arange(adata.n_obs))
    corr = pset.dim >= 3
    metrics = ["w1", "w2", "mmd", "r", "mean_mse", "mean_l2", "mean_l1"]
    rows = []
    for pr in problems:
        cidx = _condition_index(spec, pr.condition)
        x0, x1 = pset.x[pr.source], pset.x[pr.target]
        pred = _predict_cells(
            model,
            spec,
            x0,
            pr.population,
            cidx,
            steps=steps,
            extra=None if extra_all is None else extra_all[pr.source],
        )
        cands = [(model.method, pred)] + ([("no-motion", x0)] if baseline else [])
        for name, pts in cands:
            m = compare_distributions(pts, x1, max_points=max_points, seed=seed, correlation=corr)
            if not corr:
                m["r"] = float("nan")
            m.update(mean_shift_errors(pts, x1))
            rows.append(
                {
                    "population": pr.population,
                    "condition": pr.condition,
                    "method": name,
                    "n_source": len(pr.source),
                    "n_target": len(pr.target),
                    **m,
                }
            )
    cols = ["population", "condition", "method", "n_source", "n_target", *metrics]
    df = pd.DataFrame(rows, columns=cols)
    means = df.groupby("method", sort=False)[metrics].mean().reset_index()
    means["population"], means["condition"] = "mean", None
    means["n_source"] = df.groupby("method", sort=False)["n_source"].sum().to_numpy()
    means["n_target"] = df.groupby("method", sort=False)["n_target"].sum().to_numpy()

    def _weighted(g: pd.DataFrame) -> pd.Series:
        w = g["n_target"].to_numpy(float)
        return pd.Series(
            {
                c: float(np.nansum(g[c] * w) / w[g[c].notna()].sum())
                if g[c].notna().any()
                else float("nan")
                for c in metrics
            }
        )

    wmeans = pd.DataFrame(
        [{"method": m, **_weighted(g)} for m, g in df.groupby("method", sort=False)]
    )
    wmeans["population"], wmeans["condition"] = "weighted_mean", None
    wmeans["n_source"], wmeans["n_target"] = means["n_source"], means["n_target"]
    return pd.concat([df, means[cols], wmeans[cols]], ignore_index=True)
