"""Losses shared by the model families."""

from __future__ import annotations

import torch
from torch import Tensor


def velocity_mse(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Weighted mean squared error of velocities.

    ``sum_i w_i ||pred_i - target_i||^2 / sum_i w_i`` (uniform ``w`` gives the plain mean
    over the batch of the per-sample squared norm).  Self-normalising the weights makes the
    loss an estimate of the regression under the re-weighted coupling, whatever the
    overall scale of the weights.

    Parameters
    ----------
    pred, target
        Shape ``(n, *dims)``.
    weight
        Per-sample weights, shape ``(n,)``, or ``None``.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    err = (pred - target).pow(2).reshape(pred.shape[0], -1).sum(1)
    if weight is None:
        return err.mean()
    weight = weight.to(err.dtype)
    return (weight * err).sum() / weight.sum().clamp_min(torch.finfo(err.dtype).tiny)


def flow_matching_loss(
    path,
    field,
    x0: Tensor,
    x1: Tensor,
    *,
    t0: float | Tensor = 0.0,
    t1: float | Tensor = 1.0,
    weight: Tensor | None = None,
    cond: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Conditional flow-matching loss for paired points, shared by every family in R^d.

    Draws ``x_t`` on ``path`` between the pairs, evaluates ``field(t, x_t[, cond])`` and
    regresses the path's velocity with :func:`velocity_mse`.

    Parameters
    ----------
    path
        A :class:`~bioflow.core.ProbabilityPath`.
    field
        Vector field ``field(t, x)`` or ``field(t, x, cond)`` with ``t`` of shape ``(n,)``.
    x0, x1
        Paired points ``(n, d)``.
    t0, t1
        Absolute interval ends, scalars or ``(n,)``.
    weight
        Per-pair weights ``(n,)`` or ``None``.
    cond
        Condition rows ``(n, c)`` passed to ``field``, or ``None``.
    generator
        Torch generator for the path's randomness.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    ps = path.sample(x0, x1, t0=t0, t1=t1, generator=generator)
    pred = field(ps.t, ps.x_t) if cond is None else field(ps.t, ps.x_t, cond)
    return velocity_mse(pred, ps.u_t, weight)


def sequence_cross_entropy(logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of per-position letter logits against clean letters.

    Parameters
    ----------
    logits
        ``(n, L, K)`` unnormalised log-probabilities.
    target
        ``(n, L)`` letter indices.
    mask
        Optional ``(n, L)`` boolean mask of positions to count.

    Returns
    -------
    torch.Tensor
        Scalar loss (nats per position).

    Examples
    --------
    >>> import torch
    >>> sequence_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))
    tensor(1.3863)
    """
    if logits.shape[:2] != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match target {tuple(target.shape)}")
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    if mask is None:
        return ce.mean()
    mask = mask.to(ce.dtype)
    return (ce * mask).sum() / mask.sum().clamp_min(1.0)
