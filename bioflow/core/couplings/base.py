"""Coupling interface and the independent coupling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class CoupledBatch:
    """Paired minibatch.

    Attributes
    ----------
    x0, x1
        Paired points, shape ``(n, *dims)``: row ``i`` of ``x0`` goes with row ``i`` of ``x1``.
    weight
        Per-pair loss weights, shape ``(n,)``, or ``None`` for uniform weights.
    index0, index1
        Rows of the input batches that were paired, shape ``(n,)``.
    source_mass
        Unbalanced couplings: the relative mass each input source row carries in the plan
        (row sum over its mean; > 1 for cells that grow), shape ``(n_input,)``, else
        ``None``.
    """

    x0: Tensor
    x1: Tensor
    weight: Tensor | None = None
    index0: Tensor | None = None
    index1: Tensor | None = None
    source_mass: Tensor | None = None


def check_batches(x0: Tensor, x1: Tensor) -> None:
    """Raise ``ValueError`` unless ``x0``, ``x1`` are non-empty batches of equal feature shape."""
    if x0.dim() < 2 or x1.dim() < 2:
        raise ValueError(
            f"x0 and x1 must have shape (n, d...), got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x0 and x1 must have the same feature shape, got {tuple(x0.shape[1:])} "
            f"and {tuple(x1.shape[1:])}"
        )
    if x0.shape[0] == 0 or x1.shape[0] == 0:
        raise ValueError("cannot couple an empty batch")


class Coupling:
    """Base class: ``coupling(x0, x1, generator=None) -> CoupledBatch``.

    ``x0`` has shape ``(n, *dims)`` and ``x1`` shape ``(m, *dims)``; the result has ``n``
    pairs (each source point is used once) unless the subclass says otherwise.

    A subclass sets ``permutation_pairs = True`` when, for batches of equal size, its
    pairs are a permutation (``index0 = arange(n)``, ``index1`` a permutation of
    ``range(n)``) and the plan is equivariant under a re-ordering of the sources; then
    the plans of a chain of time points can be solved independently and composed
    (:func:`~bioflow.core.couplings.trajectory.chain_couplings`).
    """

    permutation_pairs: bool = False

    def __call__(
        self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None
    ) -> CoupledBatch:
        check_batches(x0, x1)
        return self.pair(x0, x1, generator)

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        raise NotImplementedError

    def warmup(self) -> None:
        """Load or compile what the first call would (e.g. a numba kernel); default none.

        Called once in the main process before loader workers fork, so they inherit it.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IndependentCoupling(Coupling):
    """Independent pairs (I-CFM): ``x0[i]`` with a uniformly drawn ``x1[j]``.

    With equal batch sizes the rows of ``x1`` are permuted (each used once); otherwise
    ``n`` rows of ``x1`` are drawn with replacement.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import IndependentCoupling
    >>> cb = IndependentCoupling()(torch.zeros(8, 2), torch.ones(8, 2))
    >>> cb.x1.shape
    torch.Size([8, 2])
    """

    permutation_pairs = True

    def pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> CoupledBatch:
        n, m = x0.shape[0], x1.shape[0]
        if n == m:
            j = torch.randperm(m, generator=generator).to(x1.device)
        else:
            j = torch.randint(m, (n,), generator=generator).to(x1.device)
        i = torch.arange(n, device=x0.device)
        return CoupledBatch(x0=x0, x1=x1[j], index0=i, index1=j)
