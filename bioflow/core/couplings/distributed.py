"""One coupling across all ranks of a ``torch.distributed`` job (global minibatch OT).

Under data parallelism each rank draws its own minibatch; coupling per rank solves
``world`` small OT problems, so adding GPUs shrinks the OT batch and adds minibatch bias.
:class:`GlobalCoupling` all-gathers the ranks' minibatches, solves one coupling of the
union on every rank (same inputs, same seed, hence the same plan), and each rank keeps
the partners of its own rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bioflow.core.couplings.base import CoupledBatch, Coupling


def _dist():
    d = torch.distributed
    if d.is_available() and d.is_initialized() and d.get_world_size() > 1:
        return d
    return None


def _gather(d, x: Tensor, group) -> Tensor:
    parts = [torch.empty_like(x) for _ in range(d.get_world_size(group))]
    d.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts)


class GlobalCoupling(Coupling):
    """Couple the union of every rank's minibatch; each rank keeps its own rows' partners.

    Outside a process group (or with one process) it is the wrapped coupling itself.
    Every rank must call it at the same point with batches of equal shape (a collective
    call), so it runs in the training step, never in loader workers or threads
    (``collective = True`` tells the DataModule hand-off so).

    Parameters
    ----------
    coupling
        The coupling solved on the union (e.g. exact or entropic OT).
    group
        Process group (default: the world).

    Notes
    -----
    The seed of a sampling coupling (Sinkhorn rows, unequal sizes) is drawn from rank 0's
    generator and broadcast, so the sampled pairs agree across ranks.  ``index1`` of the
    result indexes the gathered ``x1`` (rank-major: rank ``r`` holds rows
    ``r * m ... (r + 1) * m - 1``).

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> from bioflow.core.couplings.distributed import GlobalCoupling
    >>> cb = GlobalCoupling(ExactOTCoupling())(torch.zeros(4, 2), torch.ones(4, 2))
    >>> cb.x1.shape  # one process: the wrapped coupling
    torch.Size([4, 2])
    """

    collective = True

    def __init__(self, coupling: Coupling, group=None) -> None:
        if not isinstance(coupling, Coupling):
            raise ValueError(f"coupling must be a Coupling, got {type(coupling).__name__}")
        self.coupling, self.group = coupling, group

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        d = _dist()
        if d is None:
            return self.coupling(x0, x1, generator=generator)
        rank = d.get_rank(self.group)
        shape = torch.tensor([x0.shape[0], x1.shape[0]], device=x0.device)
        shapes = _gather(d, shape[None], self.group)
        if bool((shapes != shapes[0]).any()):
            raise ValueError(
                f"GlobalCoupling needs equal batch shapes on every rank, got {shapes.tolist()}"
            )
        g0, g1 = _gather(d, x0.detach(), self.group), _gather(d, x1.detach(), self.group)
        seed = (
            torch.randint(2**62, (1,), generator=generator)
            if generator is not None
            else (torch.randint(2**62, (1,)))
        )
        seed = seed.to(x0.device)
        d.broadcast(
            seed, src=d.get_global_rank(self.group, 0) if self.group else 0, group=self.group
        )
        shared = torch.Generator().manual_seed(int(seed.item()))
        cb = self.coupling(g0, g1, generator=shared)
        n = x0.shape[0]
        rows = slice(rank * n, (rank + 1) * n)
        j = cb.index1[rows] if cb.index1 is not None else None
        return CoupledBatch(
            x0=x0,
            x1=cb.x1[rows],
            weight=None if cb.weight is None else cb.weight[rows],
            index0=torch.arange(n, device=x0.device),
            index1=j,
        )

    def __repr__(self) -> str:
        return f"GlobalCoupling({self.coupling!r})"
