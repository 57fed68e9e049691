"""Mixture probability paths for discrete flow matching (Gat et al. 2024; Campbell et al. 2024).

Every position of a sequence over ``K`` letters is, at time ``t``, either its clean letter
``x1`` (with probability ``kappa(t)``) or its source letter ``x0`` (otherwise), independently
across positions:  ``p_t(x | x0, x1) = kappa(t) delta_{x1}(x) + (1 - kappa(t)) delta_{x0}(x)``.
Two sources: ``"mask"`` (every ``x0`` is an extra mask token, index ``K``) and ``"uniform"``
(``x0`` uniform over the ``K`` letters).  A network predicts the clean-letter posterior
``p_theta(x1_i | x_t)`` per position; the marginal probability velocity of position ``i`` is
``dkappa / (1 - kappa) * (p_theta(y | x_t) - delta_{x_t,i}(y))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bioflow.core.paths.base import ProbabilityPath

DISCRETE_SOURCES = ("mask", "uniform")


def stratified_times(
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` times in ``[0, 1)``, one in each interval ``[i / n, (i + 1) / n)``, shuffled.

    ``t_i = (u + i) / n`` for a single ``u ~ U(0, 1)``, in random order: each ``t_i`` is
    ``U(0, 1)``, so a loss averaged over the batch has the same expectation as with
    independent times, and the batch covers the time axis evenly (the low-discrepancy
    sampler of Sahoo et al. 2024, MDLM), which lowers the variance of the batch loss.

    Parameters
    ----------
    n
        Number of times (>= 1).
    generator, device
        Random generator and device.

    Returns
    -------
    torch.Tensor
        Times ``(n,)`` (float32).

    Examples
    --------
    >>> import torch
    >>> t = stratified_times(4, generator=torch.Generator().manual_seed(0))
    >>> [int(v) for v in (t.sort().values * 4).floor()]
    [0, 1, 2, 3]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be >= 1 (an integer), got {n!r}")
    u = torch.rand(1, generator=generator, device=device)
    t = (u + torch.arange(n, device=device, dtype=torch.float32)) / n
    return t[torch.randperm(n, generator=generator, device=device)]


class PolynomialScheduler:
    """``kappa(t) = t ** exponent``: the probability that a position holds its clean letter.

    Parameters
    ----------
    exponent
        ``> 0``; 1 gives the linear schedule ``kappa(t) = t``.

    Examples
    --------
    >>> s = PolynomialScheduler(2.0)
    >>> float(s.kappa(0.5)), float(s.dkappa(0.5))
    (0.25, 1.0)
    """

    def __init__(self, exponent: float = 1.0):
        if not exponent > 0:
            raise ValueError(f"exponent must be > 0, got {exponent}")
        self.exponent = float(exponent)

    def __repr__(self) -> str:
        return f"PolynomialScheduler(exponent={self.exponent})"

    def kappa(self, t: Tensor | float) -> Tensor:
        """``kappa(t)``, same shape as ``t``."""
        return torch.as_tensor(t, dtype=torch.float32).clamp(0, 1) ** self.exponent

    def time_of(self, kappa: Tensor | float) -> Tensor:
        """The time ``t`` with ``kappa(t) = kappa`` (``kappa`` in ``[0, 1]``), same shape."""
        return torch.as_tensor(kappa, dtype=torch.float32).clamp(0, 1) ** (1 / self.exponent)

    def dkappa(self, t: Tensor | float) -> Tensor:
        """``d kappa / dt``, same shape as ``t``."""
        t = torch.as_tensor(t, dtype=torch.float32).clamp(0, 1)
        return self.exponent * t ** (self.exponent - 1)


@dataclass
class DiscretePathSample:
    """A draw from a mixture path (the fields of :class:`~bioflow.core.PathSample` that
    apply, plus the endpoints).

    Attributes
    ----------
    x_t
        Noisy sequences, shape ``(n, L)`` (long; the mask token is ``K``).
    u_t
        ``None``: a discrete path has no regression target; the loss is on the posterior
        (:func:`~bioflow.core.losses.mixture_path_loss`).
    t
        Times, shape ``(n,)``.
    x1
        Clean sequences, shape ``(n, L)``.
    x0
        Source sequences, shape ``(n, L)``.
    """

    x_t: Tensor
    u_t: None
    t: Tensor
    x1: Tensor | None = None
    x0: Tensor | None = None


class MixtureDiscretePath(ProbabilityPath):
    """Mixture path ``x_t = x1`` with probability ``kappa(t)``, else ``x0``, per position.

    Parameters
    ----------
    n_letters
        Alphabet size ``K``.
    source
        ``"mask"`` (``x0`` is the mask token ``K``) or ``"uniform"`` (``x0`` uniform letters).
    scheduler
        ``kappa``; default :class:`PolynomialScheduler` with exponent 1.

    Examples
    --------
    >>> import torch
    >>> path = MixtureDiscretePath(4, "mask")
    >>> x1 = torch.randint(0, 4, (2, 6))
    >>> ps = path.sample(path.source_sample(2, 6), x1, torch.tensor([0.0, 1.0]))
    >>> ps.x_t[0].tolist(), bool((ps.x_t[1] == x1[1]).all())
    ([4, 4, 4, 4, 4, 4], True)
    """

    def __init__(self, n_letters: int, source: str = "mask", scheduler=None):
        if n_letters < 2:
            raise ValueError(f"n_letters must be >= 2, got {n_letters}")
        if source not in DISCRETE_SOURCES:
            raise ValueError(f"source must be one of {DISCRETE_SOURCES}, got {source!r}")
        self.n_letters, self.source = int(n_letters), source
        self.scheduler = scheduler if scheduler is not None else PolynomialScheduler()

    def __repr__(self) -> str:
        return (
            f"MixtureDiscretePath(n_letters={self.n_letters}, source={self.source!r}, "
            f"scheduler={self.scheduler!r})"
        )

    @property
    def mask_token(self) -> int | None:
        """The index of the mask token (``K``) for the masked source, else ``None``."""
        return self.n_letters if self.source == "mask" else None

    @property
    def n_states(self) -> int:
        """The number of symbols a position can hold (``K + 1`` with the mask, else ``K``)."""
        return self.n_letters + (self.source == "mask")

    def source_sample(self, n: int, L: int, *, generator=None, device=None) -> Tensor:
        """Source sequences ``x0`` ``(n, L)``: all mask tokens, or uniform letters."""
        if self.source == "mask":
            return torch.full((n, L), self.n_letters, dtype=torch.long, device=device)
        return torch.randint(0, self.n_letters, (n, L), generator=generator, device=device)

    def sample(
        self, x0: Tensor | None, x1: Tensor, t: Tensor | None = None, *, generator=None
    ) -> DiscretePathSample:
        """Draw ``x_t`` between sources ``x0`` and clean letters ``x1`` ``(n, L)``.

        ``x0`` ``None`` draws the sources (:meth:`source_sample`); ``t`` ``(n,)`` (or a
        scalar) is drawn ``U(0, 1)`` when ``None``.
        """
        if x0 is None and x1.dim() == 2:
            x0 = self.source_sample(*x1.shape, generator=generator, device=x1.device)
        if x1.dim() != 2 or x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must both have shape (n, L), got {tuple(x0.shape)}, {tuple(x1.shape)}"
            )
        n = x1.shape[0]
        if t is None:
            t = torch.rand(n, generator=generator, device=x1.device)
        t = torch.as_tensor(t, dtype=torch.float32, device=x1.device).expand(n).contiguous()
        k = self.scheduler.kappa(t).to(x1.device).unsqueeze(-1)
        u = torch.rand(x1.shape, generator=generator, device=x1.device)
        return DiscretePathSample(torch.where(u < k, x1, x0), None, t, x1=x1, x0=x0)

    def jump_probability(self, t: Tensor | float, s: Tensor | float) -> Tensor:
        """Probability that a position still at its source at ``t`` reaches ``x1`` by ``s``.

        ``(kappa(s) - kappa(t)) / (1 - kappa(t))``: the exact transition of the conditional
        path over ``[t, s]``; it tends to ``dkappa / (1 - kappa) (s - t)`` as ``s -> t`` and
        is 1 at ``s = 1``.
        """
        kt, ks = self.scheduler.kappa(t), self.scheduler.kappa(s)
        return ((ks - kt) / (1 - kt).clamp_min(1e-12)).clamp(0, 1)

    def velocity(self, probs: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
        """Marginal probability velocity ``(n, L, S)`` from the posterior ``probs`` ``(n, L, K)``.

        ``dkappa / (1 - kappa) * (p(y) - delta_{x_t}(y))`` over the ``S = n_states`` symbols
        (the mask's entry of ``p`` is 0); each row sums to zero.
        """
        t = torch.as_tensor(t, dtype=probs.dtype, device=probs.device)
        rate = self.scheduler.dkappa(t).to(probs) / (1 - self.scheduler.kappa(t).to(probs))
        rate = rate.reshape(-1, 1, 1) if rate.dim() else rate
        p = torch.nn.functional.pad(probs, (0, self.n_states - probs.shape[-1]))
        return rate * (p - torch.nn.functional.one_hot(x_t, self.n_states).to(probs))
