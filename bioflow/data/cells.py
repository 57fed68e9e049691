"""Minibatches of consecutive time points for the cell-dynamics models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from bioflow.core.couplings.pairing import as_pairing
from bioflow.data.anndata import cells_to_anndata, match_labels, read_adata
from bioflow.data.backed import H5adView
from bioflow.data.builtin import is_builtin
from bioflow.data.draws import RowSets
from bioflow.data.streams import SeededBatchStream, StreamDataModule
from bioflow.data.timecourse import CellTimeSeries, read_time_series


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def split_series(
    series: CellTimeSeries, fraction: float, seed: int = 0
) -> tuple[CellTimeSeries, CellTimeSeries]:
    """Hold out ``fraction`` of the cells of every kept time for validation.

    Parameters
    ----------
    series
        The cells.
    fraction
        Share of each kept time's cells held out, in ``(0, 1)``; at least one cell per time
        is held out and at least one stays.
    seed
        Seed of the split.

    Returns
    -------
    train, val
        Two :class:`~bioflow.data.CellTimeSeries` over disjoint cells.  Cells of excluded
        times go to ``val`` only (they were never trained on).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k in range(len(series.spec.labels)):
        idx = series.cells_at(k)
        if k not in series.kept:
            val.append(idx)
            continue
        if len(idx) < 2:
            raise ValueError(
                f"time {series.spec.labels[k]!r} has {len(idx)} cell(s): too few to hold out "
                "validation cells; lower validation_fraction or drop the time"
            )
        n_val = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        perm = rng.permutation(idx)
        val.append(perm[:n_val])
        train.append(perm[n_val:])

    def sub(rows):
        rows = np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=int)
        return CellTimeSeries(
            series.x[rows],
            series.time_index[rows],
            series.spec,
            series.use_rep,
            list(series.kept),
            series.var_names,
            None if series.growth is None else series.growth[rows],
            series.growth_key,
        )

    return sub(train), sub(val)


class CellPairDataset(SeededBatchStream):
    """Endless stream of batches, one minibatch per consecutive pair of kept times.

    Each batch is ``{"x0": (I, B, d), "x1": (I, B, d), "t0": (I,), "t1": (I,), "seed": int,
    "rows": (2 I B,)}`` with ``I`` the number of intervals and ``rows`` the cells drawn.
    Under DDP every rank draws from its own disjoint shard of the cells of each time, so
    ranks see different cells.  Batch ``k`` is a pure function of ``(seed, rank, k)``
    (:class:`~bioflow.data.streams.SeededBatchStream`).

    Parameters
    ----------
    series
        The cells, from :func:`~bioflow.data.read_time_series`.
    batch_size
        Cells per time point per batch.
    steps_per_epoch
        Batches per epoch (per rank).
    seed
        Base seed; the shard and draws depend on it, the rank and the worker.
    pairing
        Optional :class:`~bioflow.core.couplings.pairing.BatchPairing` (or a bare
        :class:`~bioflow.core.Coupling`, applied per interval) run on every batch here
        (in the loader workers or prefetch thread, overlapping the training step) instead
        of in the model.
    """

    def __init__(
        self,
        series: CellTimeSeries,
        batch_size: int = 256,
        steps_per_epoch: int = 100,
        seed: int = 0,
        pairing=None,
    ) -> None:
        super().__init__(steps_per_epoch, seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.series = series
        self.x = torch.from_numpy(series.x) if isinstance(series.x, np.ndarray) else series.x
        self.growth = (
            None
            if series.growth is None
            else torch.from_numpy(series.growth * np.float32(series.spec.unit))
        )
        self.batch_size = batch_size
        self.pairing = as_pairing(pairing)
        intervals = series.intervals()
        values = series.spec.clock_values
        self._t0 = torch.tensor([values[a] for a, _ in intervals], dtype=torch.float32)
        self._t1 = torch.tensor([values[b] for _, b in intervals], dtype=torch.float32)
        self._row_sets_cache: tuple[dict, RowSets, np.ndarray] | None = None

    def shard(self, rank: int, world: int) -> dict[int, torch.Tensor]:
        """Cells of each kept time assigned to ``rank`` of ``world`` (disjoint across ranks)."""
        rng = np.random.default_rng(self.seed)
        out = {}
        for k in self.series.kept:
            if world == 1:
                out[k] = torch.as_tensor(self.series.cells_at(k))
                continue
            idx = rng.permutation(self.series.cells_at(k))
            part = idx[rank::world]
            out[k] = torch.as_tensor(part if len(part) else idx)  # too few cells: share
        return out

    def _row_sets(self, shard: dict[int, torch.Tensor]) -> tuple[RowSets, np.ndarray]:
        # The shard's row sets and which of them each batch draws from (the sources of
        # every interval, then the targets), built once per shard (O(cells)); each draw
        # then costs O(batch).
        if self._row_sets_cache is None or self._row_sets_cache[0] is not shard:
            index = {k: i for i, k in enumerate(shard)}
            intervals = self.series.intervals()
            which = np.array([index[a] for a, _ in intervals] + [index[b] for _, b in intervals])
            self._row_sets_cache = (shard, RowSets(list(shard.values())), which)
        return self._row_sets_cache[1], self._row_sets_cache[2]

    def _rows(self, rows: torch.Tensor) -> torch.Tensor:
        if isinstance(self.x, torch.Tensor):
            return self.x[rows]
        flat = self.x[rows.reshape(-1).numpy()]  # rows of a file, read on demand
        return torch.from_numpy(flat).reshape(*rows.shape, flat.shape[-1])

    def make_batch(self, shard: dict[int, torch.Tensor], generator: torch.Generator) -> dict:
        sets, which = self._row_sets(shard)
        # every draw in one compiled call: this runs in the loader thread beside the step
        rows = sets.draw(which, self.batch_size, generator)
        x = self._rows(rows)
        n_int = len(which) // 2
        rows0, rows1 = rows[:n_int], rows[n_int:]
        batch = {
            "x0": x[:n_int],
            "x1": x[n_int:],
            "t0": self._t0,
            "t1": self._t1,
            "rows": rows.reshape(-1),
        }
        if self.growth is not None:
            # Growth rates per unit of the model's clock.
            batch["g0"], batch["g1"] = self.growth[rows0], self.growth[rows1]
        return batch


class CellDynamicsDataModule(StreamDataModule):
    """LightningDataModule over a time-series AnnData (in memory or an ``.h5ad`` path).

    Training batches hold one minibatch per consecutive pair of kept times.  Validation
    pushes up to ``val_cells`` cells of each kept time to the next kept time, and from the
    last kept time before each excluded time to that time (the held-out check).

    Parameters
    ----------
    adata
        AnnData, a path to an ``.h5ad`` file, ``"builtin:simulated_differentiation"``, or
        an already read :class:`~bioflow.data.CellTimeSeries` (``time_key``, ``use_rep``,
        ``exclude_times``, ``backed`` and ``dataset_kwargs`` are then ignored, and
        ``predict`` cannot write ``.obs``: pass the AnnData to predict).
    time_key
        Column of ``.obs`` with numeric or ordered-categorical times.
    use_rep
        Key of ``.obsm`` to model; ``None`` for ``.X`` (dense or sparse).
    exclude_times
        Time labels to hold out of training.
    batch_size
        Cells per time point per step.
    steps_per_epoch
        Training batches per epoch.
    val_cells
        Cells per time in validation.
    num_workers
        Loader workers (they run the pairing handed over by ``set_pairing``); without
        workers a background thread makes and pairs the next batches.
    seed
        Seed of the draws.
    backed
        Leave an ``.h5ad`` path on disk: a dense ``X`` or ``obsm[use_rep]`` is read row by
        row as batches need it (memory-mapped when stored contiguous), so a step costs the
        same at 10 thousand or 10 million cells; ``.obs`` is read to memory.  A sparse
        ``X`` is opened in anndata's backed mode and read to memory.
    predict_source_time, predict_target_time, predict_output
        ``predict`` pushes the cells of ``predict_source_time`` to ``predict_target_time``
        and writes them to the ``.h5ad`` path ``predict_output``.
    dataset_kwargs
        Arguments of the generator when ``adata`` is ``"builtin:<name>"``.
    growth_key
        Column of ``.obs`` with per-cell growth rates; batches then carry ``"g0"`` and
        ``"g1"`` ``(I, B)`` (rates per unit of the model's clock) for the growth models.
    time_bins
        Cut a continuous ``time_key`` into bins (a number of bins or the edges); see
        ``bioflow.data.resolve_time``.

    Examples
    --------
    >>> import bioflow
    >>> adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=50)
    >>> dm = bioflow.data.CellDynamicsDataModule(adata, time_key="time", use_rep="X_pca")
    >>> dm.dim
    10
    """

    def __init__(
        self,
        adata: Any,
        time_key: str = "time",
        use_rep: str | None = None,
        exclude_times: Sequence = (),
        batch_size: int = 256,
        steps_per_epoch: int = 100,
        val_cells: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        backed: bool = False,
        predict_source_time: Any = None,
        predict_target_time: Any = None,
        predict_output: str | None = None,
        dataset_kwargs: dict | None = None,
        growth_key: str | None = None,
        time_bins: int | list[float] | None = None,
    ) -> None:
        super().__init__()
        from bioflow.data.builtin import input_paths

        for name, value in (
            ("batch_size", batch_size),
            ("steps_per_epoch", steps_per_epoch),
            ("val_cells", val_cells),
        ):
            _check_count(name, value)
        self.input_paths = [] if isinstance(adata, CellTimeSeries) else input_paths(adata)
        if isinstance(adata, CellTimeSeries):
            self.series, self._obs = adata, None
        else:
            if (
                backed
                and (isinstance(adata, str) or hasattr(adata, "__fspath__"))
                and not is_builtin(adata)
            ):
                view = H5adView(adata)  # .obs in memory, the matrix read per batch if dense
                adata = view if view.can_stream(use_rep) else read_adata(adata, "cells", None, True)
            else:
                adata = read_adata(adata, "cells", dataset_kwargs, backed)
            self.series = read_time_series(
                adata, time_key, use_rep, exclude_times, growth_key, time_bins
            )
            self._obs = adata.obs.copy()
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.val_cells = val_cells
        self.num_workers = num_workers
        self.seed = seed
        self.pairing = None  # see set_pairing
        self.val_series = None  # held-out cells for validation (split_series); else series
        self.predict_source_time = predict_source_time
        self.predict_target_time = predict_target_time
        self.predict_output = predict_output

    def _predict_rows(self) -> np.ndarray:
        if self.predict_source_time is None or self.predict_target_time is None:
            raise ValueError("set data.predict_source_time and data.predict_target_time to predict")
        spec = self.series.spec
        k = np.flatnonzero(match_labels(spec.labels, self.predict_source_time))
        if not len(k):
            raise ValueError(
                f"predict_source_time {self.predict_source_time!r} is not one of {spec.labels}"
            )
        return self.series.cells_at(k[0])

    def predict_dataloader(self) -> DataLoader:
        rows = self._predict_rows()
        spec = self.series.spec
        t0 = spec.clock(self.predict_source_time)
        t1 = spec.clock(self.predict_target_time)
        chunks = [
            {"x": torch.from_numpy(self.series.x[rows[i : i + 4096]]), "t0": t0, "t1": t1}
            for i in range(0, len(rows), 4096)
        ]
        return self.batches_loader(chunks)

    def write_predictions(
        self, predictions: list, path: str | None = None, *, overwrite: bool = False
    ) -> str:
        """Write pushed cells (a list of ``(n_i, d)`` tensors) to an ``.h5ad`` file.

        The file is written atomically; an input file of this DataModule is never
        replaced, an existing file only with ``overwrite=True``.
        """
        from bioflow.core.files import check_output_path, write_atomic

        path = path or self.predict_output
        if path is None:
            raise ValueError("set data.predict_output to the .h5ad path to write")
        if self._obs is None:
            raise ValueError(
                "this DataModule was built from a CellTimeSeries, without the cells' .obs; "
                "build it from the AnnData to write predictions"
            )
        check_output_path(path, overwrite=overwrite, inputs=self.input_paths)
        rows = self._predict_rows()
        x = torch.cat([p.detach().cpu() for p in predictions]).numpy()
        obs = self._obs.iloc[rows].copy()
        key = self.series.spec.key
        obs["bioflow_source_time"] = obs[key].astype(str)
        obs[key] = (
            str(self.predict_target_time)
            if self.series.spec.kind == "ordered"
            else (self.predict_target_time)
        )
        out = cells_to_anndata(x, obs, self.series.use_rep, self.series.var_names)
        write_atomic(path, out.write_h5ad, overwrite=overwrite, inputs=self.input_paths)
        return path

    @property
    def dim(self) -> int:
        """Number of features modelled."""
        return self.series.dim

    @property
    def data_spec(self) -> dict:
        """The data description, a plain dict (:class:`~bioflow.data.DataSpec`)."""
        return self.series.data_spec().to_dict()

    def set_pairing(self, pairing) -> None:
        """Pair every training batch with ``pairing`` in the loader (``None``: don't).

        ``tl.fit_dynamics`` and the CLI call it with the model's ``loader_pairing`` (a
        :class:`~bioflow.core.couplings.pairing.BatchPairing`), so the (CPU) coupling runs
        in the loader (its workers, or its prefetch thread without workers) and overlaps
        the training step; batches then arrive with ``"paired"`` set to the pairing's kind
        and the model does not pair them again.
        """
        self.pairing = as_pairing(pairing)

    def set_coupling(self, coupling) -> None:
        """Couple each interval of every training batch with ``coupling`` in the loader.

        Shorthand for ``set_pairing(IntervalPairing(coupling))`` (``None``: don't).
        """
        self.set_pairing(coupling)

    @property
    def coupling(self):
        """The coupling of the loader's pairing (``None`` without one)."""
        return None if self.pairing is None else self.pairing.coupling

    def make_stream(self) -> CellPairDataset:
        return CellPairDataset(
            self.series, self.batch_size, self.steps_per_epoch, self.seed, self.pairing
        )

    def val_batches(self) -> list[dict]:
        """Validation problems: ``{"x0", "x1", "t0", "t1", "name"}`` with full cell sets.

        Drawn from ``val_series`` (cells held out of training) when set.
        """
        s = self.val_series if self.val_series is not None else self.series
        rng = np.random.default_rng(self.seed + 1)

        def cells(k):
            idx = s.cells_at(k)
            if len(idx) > self.val_cells:
                idx = rng.choice(idx, self.val_cells, replace=False)
            return torch.from_numpy(s.x[idx])

        pairs = [(a, b, f"{s.spec.labels[a]}->{s.spec.labels[b]}", False) for a, b in s.intervals()]
        for h in sorted(set(range(len(s.spec.labels))) - set(s.kept)):
            prev = [k for k in s.kept if k < h]
            if prev:
                pairs.append((prev[-1], h, f"holdout_{s.spec.labels[h]}", True))
        return [
            {
                "x0": cells(a),
                "x1": cells(b),
                "t0": s.spec.clock_values[a],
                "t1": s.spec.clock_values[b],
                "name": name,
                "holdout": holdout,
            }
            for a, b, name, holdout in pairs
        ]

    def val_dataloader(self) -> DataLoader:
        return self.batches_loader(self.val_batches())
