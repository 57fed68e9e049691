"""Batches of populations (initial and final cells, optional treatment) for Meta Flow Matching.

The reader is :mod:`bioflow.data.population_set`; its names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from bioflow.data.anndata import (
    cells_to_anndata,
    read_adata,
)
from bioflow.data.population_set import (
    PopulationProblem,
    PopulationSet,
    check_labels,
    holdout_populations,
    read_populations,
)
from bioflow.data.streams import SeededBatchStream, StreamDataModule, draw_rows


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


__all__ = [
    "PopulationBatchDataset",
    "PopulationDataModule",
    "PopulationProblem",
    "PopulationSet",
    "check_labels",
    "holdout_populations",
    "read_populations",
]


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


class PopulationDataModule(StreamDataModule):
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
        As in the tool ``fit_meta_flow``.
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
        As in ``read_populations`` (``bioflow.data.population_set``).

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
        from bioflow.data.builtin import input_paths

        for name, value in (
            ("populations_per_step", populations_per_step),
            ("cells_per_population", cells_per_population),
            ("embed_cells", embed_cells),
            ("steps_per_epoch", steps_per_epoch),
            ("val_cells", val_cells),
            ("val_populations", val_populations),
        ):
            _check_count(name, value)
        self.input_paths = input_paths(adata)
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
        """The data description, a plain dict (:class:`~bioflow.data.DataSpec`)."""
        return self.pset.data_spec().to_dict()

    def make_stream(self) -> PopulationBatchDataset:
        return PopulationBatchDataset(
            self.pset,
            self.populations_per_step,
            self.cells_per_population,
            self.embed_cells,
            self.steps_per_epoch,
            self.seed,
            knn_k=self.knn_k,
            embed_draws=self.embed_draws,
        )

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
        probs = getattr(self, "val_problems", None)  # set by tl.fit_meta_flow's split
        probs = probs or self.pset.held_out or self.pset.problems[: self.val_populations]
        batches = self._problem_batches(probs, self.seed + 1)
        return self.batches_loader(batches)

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
        return self.batches_loader(batches)

    def write_predictions(
        self, predictions: list, path: str | None = None, *, overwrite: bool = False
    ) -> str:
        """Write predicted final cells (one ``(n_i, d)`` tensor per problem) to ``.h5ad``.

        The file is written atomically; an input file of this DataModule is never
        replaced, an existing file only with ``overwrite=True``.
        """
        from bioflow.core.files import check_output_path, write_atomic

        path = path or self.predict_output
        if path is None:
            raise ValueError("set data.predict_output to the .h5ad path to write")
        check_output_path(path, overwrite=overwrite, inputs=self.input_paths)
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
        out = cells_to_anndata(x, obs, keys["use_rep"], self.pset.var_names)
        write_atomic(path, out.write_h5ad, overwrite=overwrite, inputs=self.input_paths)
        return path
