"""Several independent coupling problems (e.g. the time intervals of one batch) at once.

The problems are solved in a thread pool when they are large enough to gain from it: the
exact solver's kernel releases the GIL (numba ``nogil``) and torch releases it in its own
ops, so on ``c`` cores up to ``c`` problems are solved at the same time.  Each problem gets
its own generator, seeded from the caller's, so the result does not depend on threading.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from bioflow.core.couplings.base import CoupledBatch, Coupling

# problems smaller than this (rows x columns) are solved one after another: a thread
# hand-off costs more than it saves
PARALLEL_MIN_SIZE = 128 * 128

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    # A forked child (a data-loader worker) inherits the pool object but none of its
    # threads: work submitted to it would wait forever.  The child makes its own.
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(1, min(8, os.cpu_count() or 1)),
                thread_name_prefix="bioflow-coupling",
            )
        return _POOL


def couple_many(
    coupling: Coupling,
    x0s: Tensor,
    x1s: Tensor,
    generator: torch.Generator | None = None,
    parallel: bool | None = None,
) -> list[CoupledBatch]:
    """Apply ``coupling`` to every problem ``(x0s[k], x1s[k])``.

    Parameters
    ----------
    coupling
        A :class:`~bioflow.core.Coupling`.
    x0s, x1s
        Stacked problems, shapes ``(K, n, *dims)`` and ``(K, m, *dims)`` (or sequences of
        ``K`` tensors).
    generator
        Seeds one generator per problem (drawn in order), so the pairs are a function of
        its state whether the problems run in threads or not.
    parallel
        Solve in the thread pool; default: when ``K > 1``, there is more than one CPU and
        each problem has at least ``PARALLEL_MIN_SIZE`` cost entries.  Never for a
        coupling with ``collective = True`` (its calls are collectives across ranks).

    Returns
    -------
    list of CoupledBatch
        One per problem, in order.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> from bioflow.core.couplings.batched import couple_many
    >>> out = couple_many(ExactOTCoupling(), torch.randn(3, 16, 2), torch.randn(3, 16, 2))
    >>> [cb.x1.shape[0] for cb in out]
    [16, 16, 16]
    """
    k = len(x0s)
    if len(x1s) != k:
        raise ValueError(f"x0s and x1s must hold as many problems, got {k} and {len(x1s)}")
    if generator is not None:
        seeds = torch.randint(2**62, (k,), generator=generator).tolist()
        gens = [torch.Generator().manual_seed(s) for s in seeds]
    else:
        gens = [None] * k
    if getattr(coupling, "collective", False):
        parallel = False  # collective calls must run in the same order on every rank
    elif parallel is None:
        size = x0s[0].shape[0] * x1s[0].shape[0] if k else 0
        parallel = k > 1 and (os.cpu_count() or 1) > 1 and size >= PARALLEL_MIN_SIZE
    if not parallel:
        return [coupling(x0s[i], x1s[i], generator=gens[i]) for i in range(k)]
    futures = [_pool().submit(coupling, x0s[i], x1s[i], gens[i]) for i in range(k)]
    return [f.result() for f in futures]
