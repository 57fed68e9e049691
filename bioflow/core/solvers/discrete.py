"""The jump sampler of discrete flow matching on mixture paths."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.solvers.categorical import sample_categorical

JUMP_SAMPLERS = ("jump", "stratified")


def jump_sample(
    posterior: Callable[[Tensor, Tensor], Tensor],
    path,
    x0: Tensor,
    *,
    steps: int = 100,
    sampler: str = "jump",
    draw: Callable[[Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Integrate a mixture path from sources ``x0`` at ``t = 0`` to clean letters at ``t = 1``.

    At each step ``t -> s`` the posterior ``p_theta(x1 | x_t)`` is evaluated once and a letter
    is drawn from it at every position; positions then take their drawn letter ("jump") as
    follows.

    ``"jump"``: each position jumps independently with probability
    ``(kappa(s) - kappa(t)) / (1 - kappa(t))`` (the Euler step of the probability velocity
    ``dkappa / (1 - kappa) (p_theta - delta_{x_t})``, taken in its exact-in-time form so that
    every position is clean at ``s = 1``); with the masked source only masked positions move.
    It is the sampler of both sources.

    ``"stratified"`` (masked source only): the same schedule with the number of positions
    that unmask in each step fixed at its expected value, ``round(L kappa(s))`` clean
    positions after the step, chosen uniformly among the masked ones.  Because the masked
    posterior does not depend on which positions are masked beyond their content, this
    draws from the same path; fixing the counts removes the binomial spread of simultaneous
    unmaskings, and with ``steps >= L`` it unmasks one position at a time, an exact
    any-order autoregressive draw of the joint law when the posterior is exact.

    Parameters
    ----------
    posterior
        ``posterior(t, x_t)`` -> clean-letter logits ``(n, L, K)`` for times ``t`` ``(n,)``
        and states ``x_t`` ``(n, L)``.
    path
        A :class:`~bioflow.core.paths.MixtureDiscretePath`.
    x0
        Source sequences ``(n, L)`` (``path.source_sample``).
    steps
        Number of steps (>= 1) on a uniform time grid.
    sampler
        ``"jump"`` or ``"stratified"``.
    draw
        ``draw(logits) -> letters (n, L)``; default: a categorical draw from the softmax
        (:func:`~bioflow.core.solvers.sample_categorical`).  Guidance passes
        a draw from the reward-tilted posterior here
        (:meth:`~bioflow.core.guidance.STGuidance.draw`).
    generator
        Random generator.

    Returns
    -------
    torch.Tensor
        Letters ``(n, L)`` (long) at ``t = 1``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.discrete import MixtureDiscretePath
    >>> path = MixtureDiscretePath(4, "mask")
    >>> x = jump_sample(lambda t, x: torch.zeros(*x.shape, 4), path, path.source_sample(3, 5),
    ...                 steps=4, sampler="stratified")
    >>> x.shape, bool((x < 4).all())
    (torch.Size([3, 5]), True)
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if sampler not in JUMP_SAMPLERS:
        raise ValueError(f"sampler must be one of {JUMP_SAMPLERS}, got {sampler!r}")
    if sampler == "stratified" and path.mask_token is None:
        raise ValueError("the 'stratified' sampler needs the masked source; use 'jump'")
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape (n, L), got {tuple(x0.shape)}")
    if draw is None:

        def draw(logits):
            return sample_categorical(torch.softmax(logits, -1), generator=generator)

    n, L = x0.shape
    dev = x0.device
    x = x0.clone()
    ts = torch.linspace(0, 1, steps + 1)
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        masked = x == path.mask_token if path.mask_token is not None else None
        if masked is not None and not masked.any():
            break
        if sampler == "jump":
            p = float(path.jump_probability(t, s))
            move = torch.rand((n, L), generator=generator, device=dev) < p
            if masked is not None:
                move &= masked
        else:
            want = int(round(L * float(path.scheduler.kappa(s))))
            n_new = (want - (L - masked.sum(1))).clamp_min(0)  # (n,)
            if not n_new.any():  # nothing is revealed in this step: no network call
                continue
            score = torch.rand((n, L), generator=generator, device=dev).masked_fill(~masked, 2.0)
            rank = score.argsort(1).argsort(1)  # masked positions first, in random order
            move = masked & (rank < n_new.unsqueeze(1))
        letters = draw(posterior(t.expand(n).to(dev), x))
        x = torch.where(move, letters, x)
    return x
