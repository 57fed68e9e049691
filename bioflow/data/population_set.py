"""The population-set reader: initial and final cells of populations, for Meta Flow Matching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bioflow.data.anndata import _py, match_labels, read_representation
from bioflow.data.spec import PopulationSpec


@dataclass
class PopulationProblem:
    """One transport problem: initial cells of a population to its final cells.

    Attributes
    ----------
    population
        Population label (as a string).
    condition
        Treatment label (string) or ``None`` without a ``condition_key``.
    source, target
        Row indices (into :attr:`PopulationSet.x`) of the initial and final cells.
    population_index
        Index among the training populations (``-1`` for an excluded one).
    condition_index
        Index among the treatments (``-1`` without treatments).
    """

    population: str
    condition: str | None
    source: np.ndarray
    target: np.ndarray
    population_index: int = -1
    condition_index: int = -1


@dataclass
class PopulationSet:
    """Validated populations read from an AnnData.

    Attributes
    ----------
    x
        Cells ``(n_obs, d)`` (float32 copy of ``.X`` or ``.obsm[use_rep]``).
    problems
        Training problems (populations not excluded).
    held_out
        Problems of the excluded populations.
    populations
        Training population labels, in index order.
    conditions
        Treatment labels, in index order (empty without ``condition_key``).
    keys
        ``population_key``, ``source_key``, ``source_value``, ``condition_key``,
        ``use_rep``.
    var_names
        Feature names.
    """

    x: np.ndarray
    problems: list[PopulationProblem]
    held_out: list[PopulationProblem]
    populations: list[str]
    conditions: list[str]
    keys: dict
    var_names: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int:
        """Number of features."""
        return int(self.x.shape[1])

    def data_spec(self) -> PopulationSpec:
        """The description stored in a fitted model (a :class:`~bioflow.data.DataSpec`)."""
        everything = self.problems + self.held_out
        return PopulationSpec(
            **self.keys,
            dim=self.dim,
            populations=list(self.populations),
            conditions=list(self.conditions),
            var_names=list(self.var_names),
            min_source_cells=int(min(len(p.source) for p in everything)),
        )


def read_populations(
    adata,
    population_key: str,
    source_key: str,
    source_value: Any,
    condition_key: str | None = None,
    use_rep: str | None = None,
    exclude_populations: Sequence = (),
    min_source_cells: int = 1,
) -> PopulationSet:
    """Read populations of initial and final cells from an AnnData (not modified).

    Cells with ``obs[source_key] == source_value`` are the initial cells ``P_i^0`` of
    their population ``obs[population_key]``; the other cells of the population are its
    final cells, grouped by ``obs[condition_key]`` when given (one problem per population
    and treatment).

    Parameters
    ----------
    adata
        AnnData.
    population_key, source_key, source_value, condition_key, use_rep
        As in the tool ``fit_meta_flow``.
    exclude_populations
        Population labels kept out of :attr:`PopulationSet.problems` (they go to
        :attr:`PopulationSet.held_out`).
    min_source_cells
        Each population needs at least this many initial cells.

    Returns
    -------
    PopulationSet

    Raises
    ------
    ValueError
        For a missing key, a ``source_value`` absent from ``obs[source_key]``, an unknown
        excluded population, missing treatment labels, a population without initial or
        final cells, or one with fewer than ``min_source_cells`` initial cells.

    Examples
    --------
    >>> import bioflow
    >>> from bioflow.data.populations import read_populations
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=100)
    >>> ps = read_populations(a, "population", "state", "source", use_rep="X_coords")
    >>> len(ps.problems), ps.dim
    (4, 2)
    """
    for name, key in (
        ("population_key", population_key),
        ("source_key", source_key),
        ("condition_key", condition_key),
    ):
        if key is not None and key not in adata.obs:
            raise ValueError(
                f"{name}={key!r} is not a column of adata.obs; available: {list(adata.obs)}"
            )
    if adata.n_obs == 0:
        raise ValueError("adata has no cells")
    is_source = match_labels(adata.obs[source_key], source_value)
    if not is_source.any():
        raise ValueError(
            f"no cells with adata.obs[{source_key!r}] == {source_value!r}; values: "
            f"{list(pd.unique(adata.obs[source_key]))[:20]}"
        )
    pop_col = adata.obs[population_key]
    if pop_col.isna().any():
        raise ValueError(f"adata.obs[{population_key!r}] has missing values")
    pops_all = [str(p) for p in pd.unique(pop_col.astype(str))]
    excluded = []
    for p in exclude_populations:
        if str(p) not in pops_all:
            raise ValueError(
                f"exclude_populations: {p!r} is not a value of adata.obs[{population_key!r}]"
            )
        excluded.append(str(p))
    pop = pop_col.astype(str).to_numpy()
    target = ~is_source
    if condition_key is not None:
        cond_col = adata.obs[condition_key]
        if cond_col[target].isna().any():
            raise ValueError(f"adata.obs[{condition_key!r}] is missing for some final cells")
        cond = cond_col.astype(str).to_numpy()
        conditions = sorted(pd.unique(cond[target]).tolist())
    else:
        cond = None
        conditions = []
    x = read_representation(adata, use_rep)
    train_pops = [p for p in pops_all if p not in excluded]
    pop_index = {p: i for i, p in enumerate(train_pops)}
    cond_index = {c: i for i, c in enumerate(conditions)}
    problems, held_out = [], []
    for p in pops_all:
        in_pop = pop == p
        src = np.flatnonzero(in_pop & is_source)
        if len(src) == 0:
            raise ValueError(
                f"population {p!r} has no initial cells (adata.obs[{source_key!r}] == "
                f"{source_value!r})"
            )
        if len(src) < min_source_cells:
            raise ValueError(
                f"population {p!r} has {len(src)} initial cells; at least {min_source_cells} "
                "are needed (the encoder's kNN graph needs k + 1)"
            )
        tgt_all = in_pop & target
        if not tgt_all.any():
            raise ValueError(f"population {p!r} has no final cells (all cells are initial)")
        groups = (
            [(None, tgt_all)]
            if cond is None
            else [(c, tgt_all & (cond == c)) for c in conditions if (tgt_all & (cond == c)).any()]
        )
        for c, mask in groups:
            prob = PopulationProblem(
                p,
                c,
                src,
                np.flatnonzero(mask),
                pop_index.get(p, -1),
                cond_index[c] if c is not None else -1,
            )
            (held_out if p in excluded else problems).append(prob)
    if not problems:
        raise ValueError("no population left for training after exclude_populations")
    keys = {
        "population_key": population_key,
        "source_key": source_key,
        "source_value": _py(source_value),
        "condition_key": condition_key,
        "use_rep": use_rep,
    }
    var_names = list(map(str, adata.var_names)) if use_rep is None else []
    return PopulationSet(x, problems, held_out, train_pops, conditions, keys, var_names)
