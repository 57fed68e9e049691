"""Row draws for training batches in one compiled call (no GIL held while drawing).

The training streams draw each batch in the loader's prefetch thread while the training
step runs in the main thread.  Every tensor operation there releases Python's GIL and
must take it back from the busy main thread, so a draw made of many small operations
runs several times slower beside a step than alone.  :class:`RowSets` draws the rows of
all time points of a batch in one numba call that holds the GIL for none of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, nogil=True)
def _next(state: np.ndarray) -> np.uint64:
    # splitmix64 (Steele, Lea & Flood 2014): a 64-bit counter through an invertible mix
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _draw(flat, starts, which, n, seed):
    state = np.empty(1, np.uint64)
    state[0] = np.uint64(seed)
    k_sets = which.shape[0]
    out = np.empty((k_sets, n), np.int64)
    cap = 1
    while cap < 4 * n:
        cap *= 2
    mask = cap - 1
    table = np.empty(cap, np.int64)
    for k in range(k_sets):
        lo = starts[which[k]]
        m = starts[which[k] + 1] - lo
        if m < n:  # too few rows: with replacement
            for i in range(n):
                out[k, i] = flat[lo + np.int64(_next(state) % np.uint64(m))]
            continue
        # distinct draws: redraw a value already taken (an open-addressing hash set), so
        # every ordered n-tuple of distinct values is equally likely
        table[:] = -1
        for i in range(n):
            while True:
                t = np.int64(_next(state) % np.uint64(m))
                h = t & mask
                while table[h] != -1 and table[h] != t:
                    h = (h + 1) & mask
                if table[h] == -1:
                    table[h] = t
                    break
            out[k, i] = flat[lo + t]
    return out


class RowSets:
    """Several sets of row indices (e.g. the cells of each time point), drawn from at once.

    Parameters
    ----------
    sets
        One-dimensional integer tensors or arrays of row indices, one per set (non-empty).

    Examples
    --------
    >>> import torch
    >>> from bioflow.data.draws import RowSets
    >>> sets = RowSets([torch.arange(100), torch.arange(500, 600)])
    >>> out = sets.draw([1, 0, 1], 4, torch.Generator().manual_seed(0))
    >>> tuple(out.shape), bool((out[0] >= 500).all()), len(set(out[1].tolist()))
    ((3, 4), True, 4)
    """

    def __init__(self, sets: Sequence[torch.Tensor | np.ndarray]) -> None:
        arrays = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sets]
        sizes = [a.size for a in arrays]
        if not arrays or min(sizes) == 0:
            raise ValueError(f"every row set needs at least one row, got sizes {sizes}")
        self.flat = np.concatenate(arrays)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.sizes = sizes

    def draw(self, which: Sequence[int], n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` rows from each set in ``which``: ``(len(which), n)`` int64.

        Without replacement from a set of at least ``n`` rows (every ordered ``n``-tuple
        of distinct rows equally likely), with replacement from a smaller one.  O(n) per
        set whatever its size; the result is a function of ``generator``'s state (one
        64-bit seed is drawn from it).

        Parameters
        ----------
        which
            Indices of the sets to draw from (repeats allowed).
        n
            Rows per drawn set (>= 0).
        generator
            Torch CPU generator.
        """
        which = np.asarray(which, dtype=np.int64).reshape(-1)
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be >= 0 (an integer), got {n!r}")
        if which.size and (which.min() < 0 or which.max() >= len(self.sizes)):
            raise ValueError(f"set indices must lie in [0, {len(self.sizes)}), got {which}")
        seed = int(torch.randint(2**62, (1,), generator=generator))
        return torch.from_numpy(_draw(self.flat, self.starts, which, int(n), seed))
