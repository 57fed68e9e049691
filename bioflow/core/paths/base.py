"""The one path interface shared by continuous and simplex / discrete paths.

A conditional probability path says, for a pair of endpoints ``(x0, x1)`` and a time
``t`` in ``[0, 1]``, where the point ``x_t`` lies (a draw, when the path is noisy) and
what the model regresses there (the target ``u_t``).  Every path implements one method,

    ``path.sample(x0, x1, t=None, *, generator=None, **options) -> PathSample``

with ``t`` drawn from ``U(0, 1)`` when ``None``.  What the endpoints are depends on the
space: points ``(n, *dims)`` for the affine paths in ``R^d``
(:mod:`bioflow.core.paths.affine`); for the Gumbel-softmax path on the simplex
(:mod:`bioflow.core.paths.simplex`) ``x1`` holds the clean letters ``(n, L)`` and ``x0``
the source noise (Gumbel draws, ``None`` to draw them).  Options particular to a family
(the absolute interval ``t0, t1`` of the affine paths, the alphabet size ``K`` of the
simplex path) are keyword-only.  Losses and samplers depend on this interface only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PathSample:
    """A draw from a conditional path.

    Attributes
    ----------
    x_t
        Points on the path, shape ``(n, *dims)``.
    u_t
        Regression target at ``x_t`` (the conditional velocity), shape ``(n, *dims)``.
    t
        Time of each point, shape ``(n,)`` (absolute time for the affine paths).
    s
        Fraction of the interval ``[t0, t1]`` (affine paths), shape ``(n,)``, else ``None``.
    noise
        The noise used (standard normal for the affine paths), or ``None``.
    score
        Score ``grad log p_t(x_t | x0, x1)`` of the conditional path where it is defined
        (Brownian bridge), else ``None``.
    """

    x_t: Tensor
    u_t: Tensor
    t: Tensor
    s: Tensor | None = None
    noise: Tensor | None = None
    score: Tensor | None = None


class ProbabilityPath(ABC):
    """Abstract conditional path: ``sample(x0, x1, t) -> PathSample``.

    Subclasses: :class:`~bioflow.core.paths.affine.AffinePath` (``LinearPath``,
    ``BrownianBridgePath``), :class:`~bioflow.core.paths.simplex.GumbelSoftmaxPath` and
    :class:`~bioflow.core.paths.MixtureDiscretePath` (letters ``(n, L)`` at both
    ends; no regression target, ``u_t`` is ``None``).
    """

    @abstractmethod
    def sample(
        self,
        x0: Tensor | None,
        x1: Tensor,
        t: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> PathSample:
        """Draw ``x_t`` and its target for endpoints ``(x0, x1)`` at times ``t``.

        Parameters
        ----------
        x0
            Source endpoints (or source noise; ``None`` where the path draws it).
        x1
            Target endpoints, first axis ``n`` (the batch).
        t
            Times in ``[0, 1]``, shape ``(n,)`` (a scalar where a subclass allows it);
            ``U(0, 1)`` draws when ``None``.
        generator
            Torch generator of every random draw.
        **options
            Keyword-only options of the path family.

        Returns
        -------
        PathSample
        """
