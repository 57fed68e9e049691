"""Pairing across time intervals: one coupling applied to every interval of a batch."""

from __future__ import annotations

import torch

from bioflow.core.couplings.base import Coupling
from bioflow.core.couplings.batched import couple_many


def couple_intervals(
    coupling: Coupling, batch: dict, generator: torch.Generator | None = None
) -> dict:
    """Apply ``coupling`` to every interval of a batch of consecutive time points.

    The work of :class:`~bioflow.core.couplings.pairing.IntervalPairing`, which runs in
    the cell-dynamics model's training step or in the data loader (``set_pairing``).

    Parameters
    ----------
    coupling
        A :class:`~bioflow.core.Coupling`.
    batch
        ``{"x0": (I, B, d), "x1": (I, B, d), "t0": (I,), "t1": (I,), ...}``; not modified.
    generator
        Torch generator for couplings that sample (one generator per interval is seeded
        from it; the intervals are solved in parallel threads when large enough, see
        :func:`~bioflow.core.couplings.couple_many`).

    Returns
    -------
    dict
        A new batch with ``x1`` re-ordered into pairs, ``"weight"`` ``(I, B)`` when the
        coupling weights pairs, and ``"paired": True``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.couplings import ExactOTCoupling, couple_intervals
    >>> batch = {"x0": torch.tensor([[[0.0], [5.0]]]), "x1": torch.tensor([[[5.1], [0.1]]])}
    >>> [round(v, 1) for v in couple_intervals(ExactOTCoupling(), batch)["x1"].flatten().tolist()]
    [0.1, 5.1]
    """
    if batch["x0"].dim() != 3 or batch["x1"].dim() != 3:
        raise ValueError(
            "batch['x0'] and batch['x1'] must have shape (intervals, batch, dim), got "
            f"{tuple(batch['x0'].shape)} and {tuple(batch['x1'].shape)}"
        )
    pairs = couple_many(coupling, batch["x0"], batch["x1"], generator)
    x1s = [cb.x1 for cb in pairs]
    ws = [cb.weight for cb in pairs]
    out = dict(batch, x1=torch.stack(x1s), paired=True)
    if ws[0] is not None:
        out["weight"] = torch.stack(ws)
    return out
