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
    pair_source, pair_target
        With a ``pair_key``: rows of matched (initial, final) cells, equal length, or
        ``None``.
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
    pair_source: np.ndarray | None = None
    pair_target: np.ndarray | None = None


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
    extra
        Per-cell encoder features ``(n_obs, n_categories)`` (one-hot of
        ``obs[encoder_key]``) or ``None``.
    extra_categories
        Category of each column of :attr:`extra`.
    skipped
        Populations left out because they were too small (see ``on_small``).
    """

    x: np.ndarray
    problems: list[PopulationProblem]
    held_out: list[PopulationProblem]
    populations: list[str]
    conditions: list[str]
    keys: dict
    var_names: list[str] = field(default_factory=list)
    extra: np.ndarray | None = None
    extra_categories: list[str] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        """Whether every problem carries matched (initial, final) pairs."""
        return all(p.pair_source is not None for p in self.problems)

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
            encoder_categories=list(self.extra_categories),
        )


def check_labels(value: Any, name: str) -> list[str]:
    """``value`` as a list of labels; a bare string (iterated letter by letter) is an error."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        raise ValueError(
            f"{name} must be a list of labels, got the string {value!r}; write [{value!r}]"
        )
    try:
        return [str(v) for v in value]
    except TypeError:
        raise ValueError(f"{name} must be a list of labels, got {type(value).__name__}") from None


def holdout_populations(
    adata,
    population_key: str,
    holdout_key: str | None = None,
    holdout_value: Any = None,
    holdout_mask: Any = None,
) -> list[str]:
    """Populations held out by an obs column value or by a boolean mask over cells.

    A population is held out when its cells have ``obs[holdout_key] == holdout_value``
    (a list of values is allowed) or are ``True`` in ``holdout_mask``; the selection must
    be constant within each population.

    Examples
    --------
    >>> import bioflow
    >>> from bioflow.data.populations import holdout_populations
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=50)
    >>> holdout_populations(a, "population", "letter", "B")
    ['B_0', 'B_1']
    """
    if holdout_key is None and holdout_mask is None:
        return []
    if holdout_key is not None and holdout_mask is not None:
        raise ValueError("pass holdout_key/holdout_value or holdout_mask, not both")
    if population_key not in adata.obs:
        raise ValueError(f"population_key={population_key!r} is not a column of adata.obs")
    if holdout_mask is not None:
        mask = np.asarray(holdout_mask)
        if mask.dtype != bool or mask.shape != (adata.n_obs,):
            raise ValueError(
                f"holdout_mask must be a boolean array of shape ({adata.n_obs},), got "
                f"dtype {mask.dtype} and shape {mask.shape}"
            )
        what = "holdout_mask"
    else:
        if holdout_key not in adata.obs:
            raise ValueError(
                f"holdout_key={holdout_key!r} is not a column of adata.obs; available: "
                f"{list(adata.obs)}"
            )
        values = (
            holdout_value
            if isinstance(holdout_value, (list, tuple, set, np.ndarray))
            else [holdout_value]
        )
        col = adata.obs[holdout_key]
        mask = np.zeros(adata.n_obs, dtype=bool)
        for v in values:
            mask |= match_labels(col, v)
        if not mask.any():
            raise ValueError(
                f"no cell has adata.obs[{holdout_key!r}] == {holdout_value!r}; values: "
                f"{list(pd.unique(col.astype(str)))[:20]}"
            )
        what = f"adata.obs[{holdout_key!r}]"
    pop = adata.obs[population_key].astype(str).to_numpy()
    frame = pd.DataFrame({"p": pop, "m": mask})
    agg = frame.groupby("p", sort=False)["m"].agg(["any", "all"])
    mixed = agg.index[agg["any"] & ~agg["all"]].tolist()
    if mixed:
        raise ValueError(
            f"{what} splits populations {mixed[:10]}: a population must be held out whole"
        )
    return agg.index[agg["any"]].tolist()


def read_populations(
    adata,
    population_key: str,
    source_key: str,
    source_value: Any,
    condition_key: str | None = None,
    use_rep: str | None = None,
    exclude_populations: Sequence = (),
    min_source_cells: int = 1,
    *,
    pair_key: str | None = None,
    encoder_key: str | None = None,
    on_small: str = "skip",
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
        :attr:`PopulationSet.held_out`); a list, never a bare string.
    min_source_cells
        Each population needs at least this many initial cells.
    pair_key
        Column of ``.obs`` with pair ids: the initial and the final cell of one population
        with the same id form a pair (the reference's "paired" coupling).
    encoder_key
        Categorical column of ``.obs`` (e.g. cell type) given one-hot to the population
        encoder beside the cells' features.
    on_small
        A population with fewer than ``min_source_cells`` initial cells or without final
        cells: ``"skip"`` it (one warning names all skipped populations) or ``"raise"``.

    Returns
    -------
    PopulationSet

    Raises
    ------
    ValueError
        For a missing key, a ``source_value`` absent from ``obs[source_key]``, an unknown
        excluded population, missing treatment labels, or (``on_small="raise"``) a
        population without initial or final cells or with fewer than ``min_source_cells``.

    Examples
    --------
    >>> import bioflow
    >>> from bioflow.data.populations import read_populations
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=100)
    >>> ps = read_populations(a, "population", "state", "source", use_rep="X_coords")
    >>> len(ps.problems), ps.dim
    (4, 2)
    """
    import warnings

    if on_small not in ("skip", "raise"):
        raise ValueError(f"on_small must be 'skip' or 'raise', got {on_small!r}")
    for name, key in (
        ("population_key", population_key),
        ("source_key", source_key),
        ("condition_key", condition_key),
        ("pair_key", pair_key),
        ("encoder_key", encoder_key),
    ):
        if key is not None and key not in adata.obs:
            raise ValueError(
                f"{name}={key!r} is not a column of adata.obs; available: {list(adata.obs)}"
            )
    exclude = check_labels(exclude_populations, "exclude_populations")
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
    pop = pop_col.astype(str).to_numpy()
    pops_all = [str(p) for p in pd.unique(pop)]
    known = set(pops_all)
    for p in exclude:
        if p not in known:
            raise ValueError(
                f"exclude_populations: {p!r} is not a value of adata.obs[{population_key!r}]"
            )
    excluded = set(exclude)
    target = ~is_source
    if condition_key is not None:
        cond_col = adata.obs[condition_key]
        if cond_col[target].isna().any():
            raise ValueError(f"adata.obs[{condition_key!r}] is missing for some final cells")
        cond = cond_col.astype(str).to_numpy()
    else:
        cond = None
    pair_ids = None
    if pair_key is not None:
        if adata.obs[pair_key].isna().any():
            raise ValueError(f"adata.obs[{pair_key!r}] has missing values")
        pair_ids = adata.obs[pair_key].astype(str).to_numpy()
    x = read_representation(adata, use_rep)
    # one groupby instead of a scan of all cells per population
    groups = pd.Series(np.arange(adata.n_obs)).groupby(pop, sort=False).indices
    skipped: dict[str, str] = {}
    kept = []
    for p in pops_all:
        rows = groups[p]
        src = rows[is_source[rows]]
        tgt = rows[target[rows]]
        why = None
        if len(src) == 0:
            why = f"no initial cells (adata.obs[{source_key!r}] == {source_value!r})"
        elif len(src) < min_source_cells:
            why = (
                f"{len(src)} initial cells; at least {min_source_cells} are needed "
                "(the encoder's kNN graph needs k + 1)"
            )
        elif len(tgt) == 0:
            why = "no final cells (all cells are initial)"
        if why is not None:
            if on_small == "raise":
                raise ValueError(f"population {p!r} has {why}")
            skipped[p] = why
            continue
        kept.append((p, src, tgt))
    if skipped:
        listed = "; ".join(f"{p!r}: {w}" for p, w in list(skipped.items())[:20])
        warnings.warn(
            f"skipped {len(skipped)} population(s) (on_small='skip'): {listed}"
            + (" ..." if len(skipped) > 20 else ""),
            UserWarning,
            stacklevel=2,
        )
    train_pops = [p for p, _, _ in kept if p not in excluded]
    if cond is not None:
        train_tgt = np.concatenate([t for p, _, t in kept if p not in excluded] or [[]])
        conditions = sorted(pd.unique(cond[train_tgt.astype(int)]).tolist())
        held_conds = {c for p, _, t in kept if p in excluded for c in pd.unique(cond[t]).tolist()}
        unseen = sorted(held_conds - set(conditions))
        if unseen:
            warnings.warn(
                f"treatments {unseen} occur only in held-out populations; the model "
                "cannot predict them and evaluation skips them",
                UserWarning,
                stacklevel=2,
            )
    else:
        conditions = []
    pop_index = {p: i for i, p in enumerate(train_pops)}
    cond_index = {c: i for i, c in enumerate(conditions)}
    problems, held_out = [], []
    for p, src, tgt in kept:
        if cond is None:
            parts = [(None, tgt)]
        else:
            parts = [(c, tgt[cond[tgt] == c]) for c in pd.unique(cond[tgt]).tolist()]
            parts = [(c, t) for c, t in parts if c in cond_index]
        for c, rows in parts:
            ps_, pt_ = None, None
            if pair_ids is not None:
                ps_, pt_ = _match_pairs(pair_ids, src, rows, p, pair_key)
            prob = PopulationProblem(
                p,
                c,
                src,
                rows,
                pop_index.get(p, -1),
                cond_index[c] if c is not None else -1,
                ps_,
                pt_,
            )
            (held_out if p in excluded else problems).append(prob)
    if not problems:
        why = ""
        if skipped:
            first = next(iter(skipped.items()))
            why = (
                f"; {len(skipped)} population(s) were skipped as too small, e.g. "
                f"{first[0]!r}: {first[1]} (lower the encoder's k or pass on_small='raise' "
                "to see each)"
            )
        raise ValueError(
            "no population left for training after exclude_populations and on_small" + why
        )
    extra, extra_cats = None, []
    if encoder_key is not None:
        col = adata.obs[encoder_key]
        if col.isna().any():
            raise ValueError(f"adata.obs[{encoder_key!r}] has missing values")
        lab = col.astype(str).to_numpy()
        extra_cats = sorted(pd.unique(lab).tolist())
        extra = (lab[:, None] == np.asarray(extra_cats)[None, :]).astype(np.float32)
    keys = {
        "population_key": population_key,
        "source_key": source_key,
        "source_value": _py(source_value),
        "condition_key": condition_key,
        "use_rep": use_rep,
        "encoder_key": encoder_key,
    }
    var_names = list(map(str, adata.var_names)) if use_rep is None else []
    return PopulationSet(
        x,
        problems,
        held_out,
        train_pops,
        conditions,
        keys,
        var_names,
        extra,
        extra_cats,
        skipped,
    )


def _match_pairs(
    ids: np.ndarray, src: np.ndarray, tgt: np.ndarray, pop: str, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (initial, final) cells sharing a pair id within one population."""
    s = pd.Series(src, index=ids[src])
    if s.index.has_duplicates:
        raise ValueError(f"population {pop!r}: initial cells repeat ids of adata.obs[{key!r}]")
    have = s.index.get_indexer(ids[tgt])
    if (have < 0).all():
        raise ValueError(
            f"population {pop!r}: no final cell shares an id of adata.obs[{key!r}] with an "
            "initial cell"
        )
    ok = have >= 0
    return s.to_numpy()[have[ok]], tgt[ok]
