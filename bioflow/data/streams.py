"""Seeded, rank-sharded batch streams shared by every DataModule.

A training batch is a pure function of ``(seed, rank, global index)``.  Two things follow:
a run resumed from a checkpoint draws exactly the batches an uninterrupted run would
(the model seeds its own per-step randomness from ``batch["seed"]``), and under DDP every
rank draws from its own disjoint shard of the data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of ``torch.distributed``, ``(0, 1)`` outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SeededBatchStream(IterableDataset):
    """Base of the endless training streams: subclasses say how to shard and draw a batch.

    Batch ``index`` on ``rank`` is drawn with a generator seeded by
    :meth:`batch_seed`; ``start_index`` (set by the model at the start of every epoch to
    the global step) continues the stream where a resumed run stands.  With loader
    workers, worker ``w`` of ``W`` makes batches ``w, w + W, ...``, which the loader
    yields in turn, so the stream does not depend on the number of workers.

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

    def batch_seed(self, index: int, rank: int = 0) -> int:
        """Seed of global batch ``index`` on ``rank``."""
        return (self.seed * 1_000_003 + rank * 7919 + index * 15485863) % (2**62)

    def shard(self, rank: int, world: int) -> Any:
        """The part of the data ``rank`` of ``world`` draws from (disjoint across ranks)."""
        raise NotImplementedError

    def make_batch(self, shard: Any, generator: torch.Generator) -> dict:
        """One batch drawn from ``shard`` with ``generator``."""
        raise NotImplementedError

    def __iter__(self):
        rank, world = rank_and_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        shard = self.shard(rank, world)
        for local in range(wid, self.steps_per_epoch, nw):
            seed = self.batch_seed(self.start_index + local, rank)
            batch = self.make_batch(shard, torch.Generator().manual_seed(seed))
            batch["seed"] = seed
            yield batch


def draw_rows(rows: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` entries of ``rows`` ``(m,)``: without replacement when ``m >= n``, else with."""
    m = len(rows)
    if m >= n:
        return rows[torch.randperm(m, generator=generator)[:n]]
    return rows[torch.randint(m, (n,), generator=generator)]


def identity_collate(batch):
    """Collate function of loaders whose items are already whole batches."""
    return batch
