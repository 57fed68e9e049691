"""Velocities and fate probabilities from a fitted cell-dynamics model, stored like scVelo /
CellRank results so that embedding plots can read them."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import torch

from bioflow._docs import share_docs
from bioflow.data.embedding import embed_velocity, group_fractions, velocity_inputs
from bioflow.models.dynamics import CellFlowMatching
from bioflow.tl._train import record
from bioflow.tl.dynamics import _cell_times, _read_model_rep, _spec_of


def _basis_key(adata, basis: str) -> str:
    from bioflow.data.embedding import basis_key

    return basis_key(adata, basis)


def velocity(
    model: CellFlowMatching,
    adata,
    *,
    key_added: str | None = None,
    batch_size: int = 8192,
    copy: bool = False,
):
    """Velocity of the learned flow at every observed cell, in the model's space.

    Each cell ``x`` observed at time ``t`` gets ``v_theta(t, x)``: the direction and speed
    (per unit of the model's clock) in which the flow moves it.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.CellFlowMatching`.
    adata
        AnnData with the model's time column and representation.
    key_added
        ``.obsm`` key written; default ``"velocity_<use_rep>"`` (``"velocity_X_pca"``, or
        ``"velocity_X"`` for a model of ``.X``).  Parameters go to
        ``adata.uns["bioflow"][key_added]``.
    batch_size
        Cells evaluated at once.
    copy
        Return an annotated copy instead of writing into ``adata``.

    Returns
    -------
    None or anndata.AnnData
        ``None``, or the annotated copy when ``copy=True``.  ``.obsm[key_added]`` has
        shape ``(n_obs, d)``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.velocity(model, adata)
    >>> adata.obsm["velocity_X_pca"].shape
    (200, 10)
    """
    tspec, spec = _spec_of(model)
    x = _read_model_rep(model, adata)
    t = _cell_times(adata, tspec)
    out = np.empty_like(x)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(model.device)
            tb = torch.from_numpy(t[i : i + batch_size]).to(xb)
            out[i : i + batch_size] = model.velocity(tb, xb).cpu().numpy()
    rep = spec["use_rep"] or "X"
    key = key_added or f"velocity_{rep}"
    target = adata.copy() if copy else adata
    target.obsm[key] = out
    record(target, key, {"use_rep": spec["use_rep"], "time_key": tspec.key})
    return target if copy else None


def velocity_embedding(
    adata,
    *,
    basis: str = "umap",
    vkey: str = "velocity_X_pca",
    n_neighbors: int = 30,
    scale: float = 10.0,
    key_added: str | None = None,
    copy: bool = False,
):
    """Project the velocities of :func:`bioflow.tl.velocity` onto a 2-D embedding like scVelo.

    For each cell the transition probabilities to its ``n_neighbors`` nearest cells (in
    the velocity's space) are ``softmax(scale * cos(v_i, x_j - x_i))``; the embedded
    velocity is the expected unit displacement on the embedding under them minus its
    mean under uniform transitions (:func:`~bioflow.data.embedding.embed_velocity`).

    Parameters
    ----------
    adata
        AnnData with ``.obsm[vkey]`` and the embedding.
    basis
        Embedding (``"umap"`` or ``"X_umap"``, ...).
    vkey
        ``.obsm`` key of the velocities; their space is ``adata.uns["bioflow"][vkey]``'s
        ``use_rep``.
    n_neighbors, scale
        Neighbourhood size and sharpness of the transition probabilities.
    key_added
        Default ``f"{vkey}_{basis}"`` (``"velocity_X_pca_umap"``), scVelo's naming.
    copy
        Return an annotated copy instead.

    Returns
    -------
    None or anndata.AnnData
        ``None``, or the annotated copy; ``.obsm[key_added]`` is ``(n_obs, 2)``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.velocity(model, adata)
    >>> adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2]  # any 2-D embedding
    >>> bioflow.tl.velocity_embedding(adata, basis="umap")
    >>> adata.obsm["velocity_X_pca_umap"].shape
    (200, 2)
    """
    x_rep, v, x_emb, key = velocity_inputs(adata, basis, vkey)
    emb = embed_velocity(x_rep, v, x_emb, n_neighbors=n_neighbors, scale=scale)
    key = key_added or key
    target = adata.copy() if copy else adata
    target.obsm[key] = emb.astype(np.float32)
    record(
        target,
        key,
        {
            "basis": _basis_key(adata, basis),
            "vkey": vkey,
            "n_neighbors": n_neighbors,
            "scale": scale,
        },
    )
    return target if copy else None


def _stochastic_push(model) -> bool:
    """Whether the model's ``push`` can sample its SDE (``stochastic=True``)."""
    try:
        return "stochastic" in inspect.signature(model.push).parameters
    except (TypeError, ValueError):
        return False


@share_docs
def fate_probabilities(
    model: CellFlowMatching,
    adata,
    *,
    time_key: str,
    groupby: str,
    target_time: Any,
    n_samples: int = 10,
    n_neighbors: int = 15,
    seed: int = 0,
    method: str | None = None,
    steps: int | None = None,
    batch_size: int = 8192,
    key_added: str = "fate_probabilities",
    copy: bool = False,
):
    """Probability that each cell ends in each group observed at ``target_time``.

    In the spirit of CellRank's fate probabilities, but from the learned flow: every cell
    observed before ``target_time`` is pushed from its own time to ``target_time``; each
    endpoint is assigned to the groups (``adata.obs[groupby]``) of the cells really
    observed at ``target_time`` in proportion to its ``n_neighbors`` nearest observed cells
    there (model space).  A model whose ``push`` can sample its SDE (``stochastic=True``,
    e.g. SB-CFM with a score) is sampled ``n_samples`` times per cell and the assignments
    averaged; a deterministic flow is pushed once (``n_samples`` is then ignored and the
    probabilities come only from the neighbour votes).  Cells observed at ``target_time``
    get their own neighbourhood's composition; cells observed after it get NaN.

    Parameters
    ----------
    model
        A fitted :class:`~bioflow.models.CellFlowMatching`.
    adata
        AnnData with the model's representation.
    time_key
        Time column (the model's).
    groupby
        Categorical column of ``.obs`` naming the fates (e.g. cell types, clusters).
    target_time
        Time label at which the fates are read.
    n_samples
        Draws per cell for a stochastic model.
    n_neighbors
        Observed cells at ``target_time`` voting for an endpoint's group.
    seed
        Seed of the stochastic draws.
    {solver_settings}
    key_added
        ``.obsm[key_added]`` receives a :class:`pandas.DataFrame` (cells x groups, rows
        summing to 1); parameters go to ``adata.uns["bioflow"][key_added]``.
    copy
        Return an annotated copy instead.

    Returns
    -------
    None or anndata.AnnData
        ``None``, or the annotated copy when ``copy=True``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40)
    >>> model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca",
    ...                                 max_steps=5, enable_progress_bar=False)
    >>> bioflow.tl.fate_probabilities(model, adata, time_key="time", groupby="branch",
    ...                               target_time=4.0)
    >>> fates = adata.obsm["fate_probabilities"]
    >>> list(fates.columns), bool(abs(fates.loc[adata.obs["time"] < 4].sum(1) - 1).max() < 1e-6)
    (['upper', 'lower'], True)
    """
    tspec, spec = _spec_of(model)
    if time_key != tspec.key:
        raise ValueError(f"time_key={time_key!r} but the model was fitted on {tspec.key!r}")
    if groupby not in adata.obs:
        raise ValueError(f"groupby={groupby!r} is not a column of adata.obs: {list(adata.obs)}")
    if n_samples < 1 or n_neighbors < 1:
        raise ValueError(f"n_samples and n_neighbors must be >= 1, got {n_samples}, {n_neighbors}")
    t_star = tspec.value_of(target_time)
    times = _cell_times(adata, tspec)
    at_target = np.flatnonzero(np.isclose(times, t_star))
    if len(at_target) == 0:
        raise ValueError(f"no cells observed at target_time {target_time!r}")
    col = adata.obs[groupby]
    if col.iloc[at_target].isna().any():
        raise ValueError(f"adata.obs[{groupby!r}] is missing for cells at the target time")
    cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else None
    ref_labels = col.iloc[at_target].astype(str).to_numpy()
    groups = (
        [str(c) for c in cats if str(c) in set(ref_labels)]
        if cats is not None
        else sorted(set(ref_labels))
    )
    codes = np.array([groups.index(g) for g in ref_labels])
    x = _read_model_rep(model, adata)
    ref = x[at_target]
    probs = np.full((adata.n_obs, len(groups)), np.nan)
    stochastic = _stochastic_push(model)
    draws = n_samples if stochastic else 1
    probs[at_target] = group_fractions(ref, codes, len(groups), ref, k=n_neighbors)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for t_c in np.unique(times[times < t_star - 1e-12]):
            rows = np.flatnonzero(times == t_c)
            acc = np.zeros((len(rows), len(groups)))
            for _ in range(draws):
                ends = []
                for i in range(0, len(rows), batch_size):
                    xb = torch.from_numpy(x[rows[i : i + batch_size]])
                    kw = {"stochastic": True} if stochastic else {}
                    ends.append(
                        model.push(xb, [float(t_c), t_star], method=method, steps=steps, **kw)
                        .cpu()
                        .numpy()
                    )
                acc += group_fractions(ref, codes, len(groups), np.concatenate(ends), k=n_neighbors)
            probs[rows] = acc / draws
    target = adata.copy() if copy else adata
    target.obsm[key_added] = pd.DataFrame(probs, index=adata.obs_names.copy(), columns=groups)
    record(
        target,
        key_added,
        {
            "time_key": time_key,
            "groupby": groupby,
            "target_time": target_time,
            "groups": groups,
            "n_samples": draws,
            "stochastic": stochastic,
            "n_neighbors": n_neighbors,
            "use_rep": spec["use_rep"],
        },
    )
    return target if copy else None
