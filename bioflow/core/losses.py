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


#: losses of :func:`mixture_path_loss`
DISCRETE_LOSSES = ("ce", "gkl")


def mixture_path_loss(logits: Tensor, sample, path, kind: str = "ce") -> Tensor:
    """Discrete flow-matching loss of a posterior ``p_theta(x1 | x_t)`` on a mixture path.

    Parameters
    ----------
    logits
        Clean-letter logits ``(n, L, K)`` at the states ``sample.x_t``.
    sample
        A :class:`~bioflow.core.paths.DiscretePathSample`.
    path
        The :class:`~bioflow.core.paths.MixtureDiscretePath` it was drawn from.
    kind
        ``"ce"``: cross-entropy ``-log p_theta(x1 | x_t)`` over the positions that carry
        information (the masked ones for the masked source, averaged per sequence and
        then over sequences; all positions for the uniform source).
        ``"gkl"``: the generalised KL between the conditional and the model probability
        velocities, ``dkappa / (1 - kappa) [delta(x1, x_t) - p_theta(x_t | x_t)
        - (1 - delta(x1, x_t)) log p_theta(x1 | x_t)]`` per position (its minimiser is the
        same posterior; the weight grows like ``1 / (1 - t)``, so it is noisier), averaged
        over all positions.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.discrete import MixtureDiscretePath
    >>> path = MixtureDiscretePath(4, "mask")
    >>> x1 = torch.zeros(2, 3, dtype=torch.long)
    >>> ps = path.sample(path.source_sample(2, 3), x1, torch.zeros(2))
    >>> mixture_path_loss(torch.zeros(2, 3, 4), ps, path)
    tensor(1.3863)
    """
    if kind not in DISCRETE_LOSSES:
        raise ValueError(f"kind must be one of {DISCRETE_LOSSES}, got {kind!r}")
    x_t, x1 = sample.x_t, sample.x1
    if kind == "ce":
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x1, reduction="none")
        if path.mask_token is None:
            return ce.mean()
        # mean over each sequence's masked positions, then over sequences: every draw of t
        # counts the same (the ELBO's 1 / (1 - kappa) weighting, with the realised count),
        # rather than pooling positions, which lets the nearly uninformative early times
        # (most positions masked) dominate
        mask = (x_t == path.mask_token).to(ce.dtype)
        return ((ce * mask).sum(1) / mask.sum(1).clamp_min(1.0)).mean()
    logp = torch.log_softmax(logits, -1)
    sched = path.scheduler
    t = sample.t.clamp_max(1 - 1e-3)  # the weight dkappa / (1 - kappa) diverges at t = 1
    w = (sched.dkappa(t) / (1 - sched.kappa(t))).to(logits).unsqueeze(-1)
    same = (x_t == x1).to(logits)
    lp1 = logp.gather(-1, x1.unsqueeze(-1)).squeeze(-1)
    # p_theta of the current symbol; 0 on the mask token (the model never predicts it)
    on_letter = x_t < logits.shape[-1]
    p_cur = logp.exp().gather(-1, x_t.clamp_max(logits.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    p_cur = p_cur * on_letter.to(logits)
    return (w * (same - p_cur - (1 - same) * lp1)).mean()
