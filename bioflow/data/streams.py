"""Seeded, rank-sharded batch streams shared by every DataModule.

A training batch is a pure function of ``(seed, rank, global index)``.  Two things follow:
a run resumed from a checkpoint draws exactly the batches an uninterrupted run would
(the model seeds its own per-step randomness from ``batch["seed"]``), and under DDP every
rank draws from its own disjoint shard of the data.
:class:`~bioflow.data.streams.StreamLoader` is how a stream learns where the run
stands: each time the trainer iterates it (every epoch, and after a resume) it asks its
``position`` callable -- the DataModule's trainer's ``global_step`` -- so no model ever
writes into the data.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of ``torch.distributed``, ``(0, 1)`` outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SeededBatchStream(IterableDataset):
    """Base of the endless training streams: subclasses say how to shard and draw a batch.

    Batch ``index`` on ``rank`` is drawn with a generator seeded by
    :meth:`batch_seed`; ``start_index`` (set by
    :class:`~bioflow.data.streams.StreamLoader` to the global step each time the stream is
    iterated) continues the stream where a resumed run stands.  With loader
    workers, worker ``w`` of ``W`` makes batches ``w, w + W, ...``, which the loader
    yields in turn, so the stream does not depend on the number of workers.

    Without loader workers the next ``prefetch`` batches are made in a background thread
    (:func:`prefetch`) while the current training step runs; with ``pin_memory`` they are
    page-locked for non-blocking copies to a GPU.  A ``pairing`` (a callable ``batch ->
    batch``, e.g. a :class:`~bioflow.core.couplings.pairing.BatchPairing`) is applied to
    each batch after its ``"seed"`` is set, in that thread or in the workers, so the
    coupling of the next batch overlaps the current step.  The shard (:meth:`shard`) is computed
    once per ``(rank, world)``, so the per-batch cost does not grow with the data.

    Parameters
    ----------
    steps_per_epoch
        Batches per (virtual) epoch and rank.
    seed
        Base seed of the shards and the draws.
    """

    def __init__(self, steps_per_epoch: int, seed: int) -> None:
        super().__init__()
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = int(seed)
        self.start_index = 0
        # batches made ahead in a thread when there are no loader workers (0: none)
        self.prefetch = 2
        # page-lock batches for fast, non-blocking host-to-GPU copies (set for a GPU run)
        self.pin_memory = False
        # callable batch -> batch run on each batch after its seed is set (None: none)
        self.pairing: Callable[[dict], dict] | None = None

    def batch_seed(self, index: int, rank: int = 0) -> int:
        """Seed of global batch ``index`` on ``rank``."""
        return (self.seed * 1_000_003 + rank * 7919 + index * 15485863) % (2**62)

    def shard(self, rank: int, world: int) -> Any:
        """The part of the data ``rank`` of ``world`` draws from (disjoint across ranks)."""
        raise NotImplementedError

    def make_batch(self, shard: Any, generator: torch.Generator) -> dict:
        """One batch drawn from ``shard`` with ``generator``."""
        raise NotImplementedError

    def cached_shard(self, rank: int, world: int) -> Any:
        """:meth:`shard`, computed once per ``(rank, world)`` (it may cost O(cells))."""
        cache = self.__dict__.setdefault("_shards", {})
        if (rank, world) not in cache:
            cache[(rank, world)] = self.shard(rank, world)
        return cache[(rank, world)]

    def batches(self, offset: int, local: range, rank: int = 0, world: int = 1):
        """Batches ``offset + i`` for ``i`` in ``local`` on ``rank`` of ``world``, one at a time."""
        shard = self.cached_shard(rank, world)
        for i in local:
            seed = self.batch_seed(offset + i, rank)
            batch = self.make_batch(shard, torch.Generator().manual_seed(seed))
            batch["seed"] = seed
            if self.pairing is not None:
                batch = self.pairing(batch)
            if self.pin_memory:
                batch = _pin(batch)
            yield batch

    def __iter__(self):
        # A generator: ``start_index`` is read at the first ``next``, after the model set it.
        rank, world = rank_and_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        it = self.batches(self.start_index, range(wid, self.steps_per_epoch, nw), rank, world)
        if info is None and self.prefetch > 0:
            # No loader workers: make the next batches (draws and, where the DataModule
            # put it here, the CPU pairing) in a thread while the current step runs.
            it = prefetch(it, self.prefetch)
        yield from it


def _pin(batch: dict) -> dict:
    return {
        k: v.pin_memory() if isinstance(v, torch.Tensor) and v.numel() else v
        for k, v in batch.items()
    }


def prefetch(iterator, depth: int = 2):
    """Run ``iterator`` in a background thread, ``depth`` items ahead of the consumer.

    The items come out in order; an exception in the thread is re-raised in the consumer.
    Closing the returned generator (or dropping it) stops the thread.

    Parameters
    ----------
    iterator
        Any iterator (e.g. of batches).
    depth
        How many items may wait, made but not yet consumed (>= 1).

    Examples
    --------
    >>> from bioflow.data.streams import prefetch
    >>> list(prefetch(iter(range(5)), depth=2))
    [0, 1, 2, 3, 4]
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as err:  # handed to the consumer
            put((False, err))

    thread = threading.Thread(target=work, name="bioflow-prefetch", daemon=True)
    thread.start()

    def consume():
        try:
            while True:
                ok, item = q.get()
                if not ok:
                    raise item
                if item is done:
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=5.0)

    return consume()


def sample_without_replacement(m: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` distinct integers drawn uniformly from ``range(m)``, in O(n) time and memory.

    ``n`` draws with replacement, then the repeats are drawn again until all are distinct
    (few rounds: at most ``n / 4`` repeats are expected when ``m >= 2 n``).  The process
    treats every value alike, so every ``n``-subset is equally likely.  For ``m < 2 n`` a
    permutation of ``range(m)`` (O(m) = O(n)) is cut instead.

    Parameters
    ----------
    m
        Size of the range.
    n
        Number of draws, ``0 <= n <= m``.
    generator
        Torch generator; the result is a function of its state.

    Returns
    -------
    torch.Tensor
        ``(n,)`` int64, distinct values in ``[0, m)``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.data.streams import sample_without_replacement
    >>> idx = sample_without_replacement(10**9, 5, torch.Generator().manual_seed(0))
    >>> len(set(idx.tolist()))
    5
    """
    if not 0 <= n <= m:
        raise ValueError(f"need 0 <= n <= m, got n={n}, m={m}")
    if m < 2 * n:
        return torch.randperm(m, generator=generator)[:n]
    idx = torch.randint(m, (n,), generator=generator)
    while True:
        sorted_idx, order = torch.sort(idx, stable=True)
        repeat = torch.zeros(n, dtype=torch.bool)
        repeat[order[1:]] = sorted_idx[1:] == sorted_idx[:-1]
        k = int(repeat.sum())
        if k == 0:
            return idx
        idx[repeat] = torch.randint(m, (k,), generator=generator)


def draw_rows(rows: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` entries of ``rows`` ``(m,)``: without replacement when ``m >= n``, else with.

    Costs O(n), whatever ``m`` (:func:`sample_without_replacement`).
    """
    m = len(rows)
    if m >= n:
        return rows[sample_without_replacement(m, n, generator)]
    return rows[torch.randint(m, (n,), generator=generator)]


def identity_collate(batch):
    """Collate function of loaders whose items are already whole batches."""
    return batch


class StreamLoader(DataLoader):
    """DataLoader over a :class:`SeededBatchStream` that starts it where the run stands.

    Every ``iter(loader)`` (Lightning calls it at the start of each epoch, after any
    checkpoint was restored) first sets ``dataset.start_index = position()``, then starts
    the workers, which receive the stream with that index.  Persistent workers would keep
    a stale copy, so they are refused.

    Parameters
    ----------
    dataset
        The stream.
    position
        Callable giving the global index of the next batch (the trainer's
        ``global_step``).
    num_workers
        Loader worker processes.
    **kwargs
        Other :class:`torch.utils.data.DataLoader` arguments (``batch_size`` is ``None``:
        the stream yields whole batches).

    Examples
    --------
    >>> import torch
    >>> class Count(SeededBatchStream):
    ...     def shard(self, rank, world): return None
    ...     def make_batch(self, shard, generator): return {}
    >>> step = 0
    >>> loader = StreamLoader(Count(steps_per_epoch=2, seed=0), position=lambda: step)
    >>> first = [b["seed"] for b in loader]
    >>> step = 2
    >>> second = [b["seed"] for b in loader]
    >>> second == [loader.dataset.batch_seed(i) for i in (2, 3)] and first != second
    True
    """

    def __init__(
        self,
        dataset: SeededBatchStream,
        position: Callable[[], int],
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("persistent_workers would keep a stale stream position; leave it off")
        kwargs.setdefault("batch_size", None)
        super().__init__(dataset, num_workers=num_workers, **kwargs)
        self.position = position

    def __iter__(self):
        self.dataset.start_index = int(self.position())
        return super().__iter__()


class StreamDataModule(L.LightningDataModule):
    """Base of bioflow's DataModules: training batches come from a seeded stream.

    A subclass builds its stream in :meth:`make_stream` and sets ``num_workers``; the
    training loader (:class:`~bioflow.data.streams.StreamLoader`) restarts the stream at
    the trainer's global step on every epoch and after a resume, so a resumed run draws
    exactly the batches of an uninterrupted one.
    """

    num_workers: int = 0

    def make_stream(self) -> SeededBatchStream:
        """The training stream."""
        raise NotImplementedError

    def stream_position(self) -> int:
        """Global index of the next training batch: the trainer's ``global_step`` (0 alone)."""
        trainer = self.trainer
        return int(trainer.global_step) if trainer is not None else 0

    @staticmethod
    def batches_loader(batches: list) -> DataLoader:
        """A loader that yields ``batches`` (already whole batches) as they are, in order.

        Validation and prediction batches are built up front; this serves them.
        """
        return DataLoader(batches, batch_size=None, collate_fn=identity_collate)

    def train_dataloader(self) -> StreamLoader:
        stream = self.make_stream()
        trainer = self.trainer
        # page-locked batches copy to a GPU without blocking the host
        stream.pin_memory = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return StreamLoader(stream, position=self.stream_position, num_workers=self.num_workers)
