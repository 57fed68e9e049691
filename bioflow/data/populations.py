"""Populations of cells (initial and final cells, optional treatment) for Meta Flow Matching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from bioflow.data.anndata import _py, read_representation
from bioflow.data.builtin import read_adata
from bioflow.data.streams import SeededBatchStream, draw_rows
from bioflow.data.streams import identity_collate as _identity


def match_value(col: pd.Series, value: Any) -> np.ndarray:
    """Boolean mask of ``col == value``, falling back to comparing as strings."""
    try:
        mask = np.asarray(col == value, dtype=bool)
    except (TypeError, ValueError):
        mask = np.zeros(len(col), dtype=bool)
    if not mask.any():
        mask = (col.astype(str) == str(value)).to_numpy()
    return mask


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

    def data_spec(self) -> dict:
        """Plain description stored in a fitted model."""
        return {
            **self.keys,
            "dim": self.dim,
            "populations": list(self.populations),
            "conditions": list(self.conditions),
            "var_names": list(self.var_names),
            "encoder_categories": list(self.extra_categories),
        }


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
            mask |= match_value(col, v)
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
        See :func:`bioflow.tl.fit_meta_flow`.
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
    is_source = match_value(adata.obs[source_key], source_value)
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
        raise ValueError("no population left for training after exclude_populations")
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


class PopulationBatchDataset(SeededBatchStream):
    """Endless batches of several populations x many cells.

    Each batch is a dict: ``"x0"`` ``(P, n, d)`` initial cells, ``"x1"`` ``(P, n, d)``
    final cells (independent draws, or matched pairs when the populations carry a
    ``pair_key``: then ``"paired"`` is ``True``), ``"src"`` a list of ``P`` tensors of up
    to ``embed_cells`` initial cells each (for the encoder), ``"src_nbrs"`` their kNN
    neighbour indices (with ``knn_k``), ``"src_extra"`` their encoder features (with an
    ``encoder_key``), ``"pop"`` ``(P,)`` and ``"cond"`` ``(P,)`` indices, ``"rows"`` the
    cells drawn and ``"seed"``.

    The encoder's subsamples come from a pool of ``embed_draws`` subsamples per population
    drawn once (seeded), whose kNN graphs are computed once: no graph is built during
    training.  Populations (with all their treatments) are sharded over
    ``torch.distributed`` ranks, so ranks never share a cell; batch ``k`` is a pure
    function of ``(seed, rank, k)``.
    """

    def __init__(
        self,
        pset: PopulationSet,
        populations_per_step: int,
        cells_per_population: int,
        embed_cells: int,
        steps_per_epoch: int,
        seed: int,
        knn_k: int | None = None,
        embed_draws: int = 8,
    ) -> None:
        super().__init__(steps_per_epoch, seed)
        if embed_draws < 1:
            raise ValueError(f"embed_draws must be >= 1, got {embed_draws}")
        self.pset, self.P, self.n = pset, populations_per_step, cells_per_population
        self.embed_cells, self.knn_k, self.embed_draws = embed_cells, knn_k, embed_draws
        self.x = torch.from_numpy(pset.x)
        self.extra = None if pset.extra is None else torch.from_numpy(pset.extra)
        self._pool: dict[str, list] | None = None

    def embed_pool(self) -> dict[str, list]:
        """Per population: ``embed_draws`` tuples ``(rows, neighbours or None)``."""
        if self._pool is None:
            from bioflow.nn.population import KNNGraph, knn_indices

            g = torch.Generator().manual_seed(self.seed + 7)
            pool: dict[str, list] = {}
            for pr in self.pset.problems:
                if pr.population in pool:
                    continue
                s_rows = torch.from_numpy(pr.source)
                m = min(len(s_rows), self.embed_cells)
                draws = 1 if m == len(s_rows) else self.embed_draws
                entries = []
                for _ in range(draws):
                    rows = draw_rows(s_rows, m, g)
                    nb = None
                    if self.knn_k is not None and m > self.knn_k:
                        nb = KNNGraph(knn_indices(self.x[rows], self.knn_k))
                    entries.append((rows, nb))
                pool[pr.population] = entries
            self._pool = pool
        return self._pool

    def shard(self, rank: int, world: int) -> list[PopulationProblem]:
        """The problems of the populations of one rank (all when there are fewer than ranks)."""
        labels = sorted({p.population for p in self.pset.problems})
        mine = set(labels[rank::world])
        probs = [p for p in self.pset.problems if p.population in mine]
        return probs if probs else list(self.pset.problems)

    def make_batch(self, shard: list[PopulationProblem], generator: torch.Generator) -> dict:
        pool = self.embed_pool()
        n_prob = len(shard)
        if n_prob >= self.P:
            pick = torch.randperm(n_prob, generator=generator)[: self.P]
        else:
            pick = torch.randint(n_prob, (self.P,), generator=generator)
        paired = all(shard[j].pair_source is not None for j in pick.tolist())
        x0, x1, src, nbrs, extra, rows = [], [], [], [], [], []
        for j in pick.tolist():
            pr = shard[j]
            if paired:
                ps_, pt_ = torch.from_numpy(pr.pair_source), torch.from_numpy(pr.pair_target)
                k = torch.randint(len(ps_), (self.n,), generator=generator)
                r0, r1 = ps_[k], pt_[k]
            else:
                s_rows, t_rows = torch.from_numpy(pr.source), torch.from_numpy(pr.target)
                r0 = s_rows[torch.randint(len(s_rows), (self.n,), generator=generator)]
                r1 = t_rows[torch.randint(len(t_rows), (self.n,), generator=generator)]
            entries = pool[pr.population]
            re, nb = entries[int(torch.randint(len(entries), (1,), generator=generator))]
            x0.append(self.x[r0])
            x1.append(self.x[r1])
            src.append(self.x[re])
            nbrs.append(nb)
            if self.extra is not None:
                extra.append(self.extra[re])
            rows += [r0, r1]
        probs = [shard[j] for j in pick.tolist()]
        return {
            "x0": torch.stack(x0),
            "x1": torch.stack(x1),
            "paired": paired,
            "src": src,
            "src_nbrs": nbrs if all(nb is not None for nb in nbrs) else None,
            "src_extra": extra if self.extra is not None else None,
            "pop": torch.tensor([p.population_index for p in probs]),
            "cond": torch.tensor([p.condition_index for p in probs])
            if self.pset.conditions
            else None,
            "rows": torch.cat(rows),
        }


class PopulationDataModule(L.LightningDataModule):
    """Lightning DataModule over populations of initial and final cells.

    Training batches hold ``populations_per_step`` populations (sharded across DDP ranks)
    x ``cells_per_population`` cell pairs.  Validation pushes the initial cells of each
    held-out population (``exclude_populations``; without any, of up to
    ``val_populations`` training populations) and compares them with the final cells.
    ``predict`` does the same for the held-out populations (or ``predict_populations``)
    and writes the predicted cells to the ``.h5ad`` path ``predict_output``.

    Parameters
    ----------
    adata
        AnnData, a path to an ``.h5ad`` file, ``"builtin:letters"`` /
        ``"builtin:population_response"``, or an already read :class:`~bioflow.data.PopulationSet`
        (the key arguments are then ignored).
    population_key, source_key, source_value, condition_key, use_rep
        See :func:`bioflow.tl.fit_meta_flow`.
    exclude_populations
        Populations kept out of training (validated and predicted).
    min_source_cells
        Every population needs this many initial cells (``k + 1`` for the encoder).
    populations_per_step
        Populations per batch.
    cells_per_population
        Cell pairs drawn per population per batch.
    embed_cells
        Initial cells per population handed to the encoder.
    steps_per_epoch
        Batches per (virtual) epoch.
    val_cells
        At most this many cells of each side in validation and prediction inputs.
    val_populations
        Training populations validated when none is held out.
    num_workers
        Data-loader workers.
    seed
        Sampling seed.
    dataset_kwargs
        Arguments of the generator when ``adata`` is ``"builtin:<name>"``.
    backed
        Open an ``.h5ad`` path in backed mode.
    predict_populations, predict_output
        What ``predict`` pushes (default: the excluded populations) and where it writes.
    knn_k, embed_draws
        With ``knn_k``, the encoder's kNN graphs are computed once for a pool of
        ``embed_draws`` subsamples per population and sent with each batch.
    pair_key, encoder_key, on_small
        See :func:`read_populations`.

    Examples
    --------
    >>> import bioflow
    >>> from bioflow.data.populations import PopulationDataModule, read_populations
    >>> a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=100)
    >>> ps = read_populations(a, "population", "state", "source", use_rep="X_coords")
    >>> batch = next(iter(PopulationDataModule(ps, populations_per_step=3,
    ...                                        cells_per_population=32).train_dataloader()))
    >>> tuple(batch["x0"].shape)
    (3, 32, 2)
    """

    def __init__(
        self,
        adata: Any,
        population_key: str = "population",
        source_key: str = "state",
        source_value: Any = "source",
        condition_key: str | None = None,
        use_rep: str | None = None,
        exclude_populations: Sequence = (),
        min_source_cells: int = 1,
        populations_per_step: int = 8,
        cells_per_population: int = 256,
        embed_cells: int = 512,
        steps_per_epoch: int = 100,
        val_cells: int = 1000,
        val_populations: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        dataset_kwargs: dict | None = None,
        backed: bool = False,
        predict_populations: Sequence | None = None,
        predict_output: str | None = None,
        knn_k: int | None = None,
        embed_draws: int = 8,
        pair_key: str | None = None,
        encoder_key: str | None = None,
        on_small: str = "skip",
    ) -> None:
        super().__init__()
        if populations_per_step < 1 or cells_per_population < 1:
            raise ValueError("populations_per_step and cells_per_population must be >= 1")
        if isinstance(adata, PopulationSet):
            pset = adata
        else:
            adata = read_adata(adata, "populations", dataset_kwargs, backed)
            pset = read_populations(
                adata,
                population_key,
                source_key,
                source_value,
                condition_key,
                use_rep,
                exclude_populations,
                min_source_cells,
                pair_key=pair_key,
                encoder_key=encoder_key,
                on_small=on_small,
            )
        self.pset = pset
        self.populations_per_step = populations_per_step
        self.cells_per_population = cells_per_population
        self.embed_cells = embed_cells
        self.steps_per_epoch = steps_per_epoch
        self.val_cells, self.val_populations = val_cells, val_populations
        self.num_workers = num_workers
        self.seed = seed
        self.predict_populations = (
            None
            if predict_populations is None
            else check_labels(predict_populations, "predict_populations")
        )
        self.predict_output = predict_output
        self.knn_k, self.embed_draws = knn_k, embed_draws

    @property
    def data_spec(self) -> dict:
        """Description of the data stored in a fitted model (dim, labels, keys)."""
        spec = self.pset.data_spec()
        everything = self.pset.problems + self.pset.held_out
        spec["min_source_cells"] = int(min(len(p.source) for p in everything))
        return spec

    def train_dataloader(self) -> DataLoader:
        ds = PopulationBatchDataset(
            self.pset,
            self.populations_per_step,
            self.cells_per_population,
            self.embed_cells,
            self.steps_per_epoch,
            self.seed,
            knn_k=self.knn_k,
            embed_draws=self.embed_draws,
        )
        if self.trainer is not None:
            ds.start_index = self.trainer.global_step
        return DataLoader(ds, batch_size=None, num_workers=self.num_workers)

    def _problem_batches(self, problems: list[PopulationProblem], seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)

        def cells(rows):
            if len(rows) > self.val_cells:
                rows = np.sort(rng.choice(rows, self.val_cells, replace=False))
            return rows

        out = []
        for pr in problems:
            src, tgt = cells(pr.source), cells(pr.target)
            out.append(
                {
                    "x0": torch.from_numpy(self.pset.x[src]),
                    "x1": torch.from_numpy(self.pset.x[tgt]),
                    "pop": torch.tensor([pr.population_index]),
                    "cond": torch.tensor([pr.condition_index]) if self.pset.conditions else None,
                    "rows": torch.from_numpy(src),
                    "src_extra": None
                    if self.pset.extra is None
                    else torch.from_numpy(self.pset.extra[src]),
                    "population": pr.population,
                    "condition": pr.condition,
                    "name": pr.population
                    if pr.condition is None
                    else f"{pr.population}/{pr.condition}",
                }
            )
        return out

    def val_dataloader(self) -> DataLoader:
        probs = self.pset.held_out or self.pset.problems[: self.val_populations]
        batches = self._problem_batches(probs, self.seed + 1)
        return DataLoader(batches, batch_size=None, collate_fn=_identity)

    def _predict_problems(self) -> list[PopulationProblem]:
        if self.predict_populations is None:
            if not self.pset.held_out:
                raise ValueError(
                    "nothing to predict: set data.predict_populations or data.exclude_populations"
                )
            return self.pset.held_out
        wanted = [str(p) for p in self.predict_populations]
        allp = self.pset.problems + self.pset.held_out
        known = {p.population for p in allp}
        missing = [p for p in wanted if p not in known]
        if missing:
            raise ValueError(f"predict_populations {missing} are not populations of the data")
        return [p for p in allp if p.population in wanted]

    def predict_dataloader(self) -> DataLoader:
        batches = self._problem_batches(self._predict_problems(), self.seed + 2)
        for b in batches:
            b.pop("x1")  # prediction needs only the initial cells
        return DataLoader(batches, batch_size=None, collate_fn=_identity)

    def write_predictions(self, predictions: list, path: str | None = None) -> str:
        """Write predicted final cells (one ``(n_i, d)`` tensor per problem) to ``.h5ad``."""
        import anndata as ad

        path = path or self.predict_output
        if path is None:
            raise ValueError("set data.predict_output to the .h5ad path to write")
        batches = self._problem_batches(self._predict_problems(), self.seed + 2)
        keys = self.pset.keys
        x = torch.cat([p.detach().cpu() for p in predictions]).numpy()
        obs = pd.DataFrame(
            {
                keys["population_key"]: np.concatenate(
                    [[str(b["population"])] * len(b["rows"]) for b in batches]
                ),
                "bioflow_source_row": np.concatenate([b["rows"].numpy() for b in batches]),
            }
        )
        if keys["condition_key"] is not None:
            obs[keys["condition_key"]] = np.concatenate(
                [[self.pset.conditions[int(b["cond"])]] * len(b["rows"]) for b in batches]
            )
        obs.index = obs.index.astype(str)
        if keys["use_rep"] is None:
            out = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=self.pset.var_names or None))
        else:
            out = ad.AnnData(obs=obs)
            out.obsm[keys["use_rep"]] = x
        out.write_h5ad(path)
        return path
