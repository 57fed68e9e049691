"""Couplings across a whole time course: chain interval plans into trajectories."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bioflow.core.couplings.base import Coupling
from bioflow.core.couplings.batched import couple_many


def chain_couplings(
    coupling: Coupling,
    points: Sequence[Tensor],
    generator: torch.Generator | None = None,
    parallel: bool | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Draw whole trajectories by chaining the plans of consecutive time points.

    Row ``i`` starts at ``points[0][i]``; its partner at time ``k + 1`` is drawn from the
    plan between the batch at time ``k`` *as already re-ordered along the chains* and the
    batch at ``k + 1``, so each cell's partner at ``t_{k+1}`` is conditioned on its partner
    at ``t_k`` (a Markov chain of interval plans).  With exact OT and equal batch sizes each
    plan is a permutation and every cell of every batch is used exactly once.

    When the coupling's pairs are a permutation (``coupling.permutation_pairs``, e.g.
    exact OT) and all batches have the same size, the chained plan between the re-ordered
    batch at ``k`` and the batch at ``k + 1`` is the plan between the batches as drawn,
    re-ordered: the interval plans are then solved independently and composed along the
    chains -- by exact OT all in one compiled call
    (:meth:`~bioflow.core.ExactOTCoupling.chain_rows`), by other couplings in parallel
    threads where :func:`~bioflow.core.couplings.couple_many` finds it worthwhile.
    Otherwise they are solved one after another.

    Parameters
    ----------
    coupling
        Any :class:`~bioflow.core.Coupling` (exact OT, Sinkhorn, ...).
    points
        ``K >= 2`` batches ``(B, d)`` (the first fixes ``B``; later ones may differ in size).
    generator
        Torch generator for couplings that sample.
    parallel
        Passed to :func:`~bioflow.core.couplings.couple_many` for the independent
        interval plans of a coupling without ``chain_rows`` (``None``: its default rule).

    Returns
    -------
    trajectories, weight
        ``(K, B, d)`` positions of the ``B`` trajectories at the ``K`` times, and the
        product of the pair weights along each chain ``(B,)`` (``None`` when the coupling
        gives no weights).

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> from bioflow.core.couplings.trajectory import chain_couplings
    >>> pts = [torch.tensor([[0.0], [5.0]]), torch.tensor([[6.0], [1.0]]),
    ...        torch.tensor([[2.0], [7.0]])]
    >>> traj, _ = chain_couplings(ExactOTCoupling(), pts)
    >>> traj[:, :, 0].T.tolist()
    [[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]]
    """
    if len(points) < 2:
        raise ValueError(f"chain_couplings needs at least two time points, got {len(points)}")
    n = points[0].shape[0]
    composable = getattr(coupling, "permutation_pairs", False) and not getattr(
        coupling, "collective", False
    )
    if composable and all(p.shape[0] == n for p in points):
        return _composed_chains(coupling, points, generator, parallel)
    chain = [points[0]]
    weight = None
    for nxt in points[1:]:
        cb = coupling(chain[-1], nxt, generator=generator)
        if cb.x0.shape[0] != chain[-1].shape[0]:
            raise ValueError(
                f"{coupling!r} returned {cb.x0.shape[0]} pairs for {chain[-1].shape[0]} sources;"
                " chaining needs one partner per source"
            )
        chain.append(cb.x1)
        if cb.weight is not None:
            weight = cb.weight if weight is None else weight * cb.weight
    return torch.stack(chain), weight


def _composed_chains(coupling, points, generator, parallel):
    # Plan k pairs row r of points[k] with row index1[r] of points[k + 1]; the chain that
    # sits on row rows[i] of points[k] moves on to row index1[rows[i]].
    chain_rows = getattr(coupling, "chain_rows", None)
    if chain_rows is not None:  # exact OT: every plan in one compiled call
        stacked = torch.stack(list(points))
        rows = chain_rows(stacked)
        steps = torch.arange(len(points), device=rows.device)[:, None]
        return stacked[steps, rows], None
    plans = couple_many(coupling, points[:-1], points[1:], generator, parallel=parallel)
    rows = torch.arange(points[0].shape[0], device=points[0].device)
    chain, weight = [points[0]], None
    for nxt, cb in zip(points[1:], plans, strict=True):
        if cb.index1 is None or cb.x0.shape[0] != nxt.shape[0]:
            raise ValueError(f"{coupling!r} claims permutation pairs but returned none")
        w = None if cb.weight is None else cb.weight[rows]
        rows = cb.index1.to(rows.device)[rows]
        chain.append(nxt[rows])
        if w is not None:
            weight = w if weight is None else weight * w
    return torch.stack(chain), weight
