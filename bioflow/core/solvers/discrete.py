"""The jump sampler of discrete flow matching on mixture paths."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.solvers.categorical import sample_categorical

JUMP_SAMPLERS = ("jump", "stratified", "corrected")


def _categorical_draw(generator: torch.Generator | None) -> Callable[[Tensor], Tensor]:
    # the samplers' default draw: a letter per position from the softmax of the logits
    def draw(logits: Tensor) -> Tensor:
        return sample_categorical(torch.softmax(logits, -1), generator=generator)

    return draw


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

    ``"corrected"`` (masked source only): ``"stratified"`` with ``min(steps, L)`` steps, then
    the remaining ``steps - L`` network calls as single-site Gibbs corrector moves on the
    finished sequences: each move masks one uniformly chosen position of every sequence and
    redraws it from the posterior given all the other letters.  A Gibbs move leaves the
    joint law invariant when the posterior is exact; with a learned posterior it re-draws
    each letter from its full-context conditional, the best-learned one, which repairs
    letters drawn early from little context (e.g. a motif left one letter short).  Every
    sampler makes at most ``steps`` network calls.

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
        Number of steps (>= 1) on a uniform time grid (``"corrected"``: the total number
        of network calls, ``min(steps, L)`` of them on the grid).
    sampler
        ``"jump"``, ``"stratified"`` or ``"corrected"``.
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
    if sampler != "jump" and path.mask_token is None:
        raise ValueError(f"the {sampler!r} sampler needs the masked source; use 'jump'")
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape (n, L), got {tuple(x0.shape)}")
    draw = _categorical_draw(generator) if draw is None else draw
    n, L = x0.shape
    dev = x0.device
    x = x0.clone()
    n_grid = min(steps, L) if sampler == "corrected" else steps
    ts = torch.linspace(0, 1, n_grid + 1)
    for i in range(n_grid):
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
    if sampler == "corrected" and steps > n_grid:
        x = gibbs_moves(posterior, path, x, steps - n_grid, draw=draw, generator=generator)
    return x


def gibbs_moves(
    posterior: Callable[[Tensor, Tensor], Tensor],
    path,
    x: Tensor,
    moves: int,
    *,
    draw: Callable[[Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Single-site Gibbs moves on finished sequences with a masked path's posterior.

    Each move masks one uniformly chosen position per sequence and redraws it from
    ``posterior(t, x_t)`` at that position, where ``t`` is the time at which one position
    in ``L`` is still masked (``kappa(t) = (L - 1) / L``; the masked posterior depends on
    the revealed letters only, the time merely matches what the network saw in training).
    The move is the Gibbs update of the joint law, so it leaves that law invariant when the
    posterior is exact.

    Parameters
    ----------
    posterior
        ``posterior(t, x_t)`` -> clean-letter logits ``(n, L, K)``.
    path
        A :class:`~bioflow.core.paths.MixtureDiscretePath` with the masked source.
    x
        Letters ``(n, L)`` (long, no mask token).
    moves
        Number of moves (network calls), ``>= 0``.
    draw
        ``draw(logits) -> letters (n, L)`` as in :func:`jump_sample`.
    generator
        Random generator.

    Returns
    -------
    torch.Tensor
        Letters ``(n, L)`` (long); ``x`` itself is not modified.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.discrete import MixtureDiscretePath
    >>> path = MixtureDiscretePath(2, "mask")
    >>> always_one = lambda t, x: torch.tensor([-9.0, 9.0]).expand(*x.shape, 2)
    >>> gibbs_moves(always_one, path, torch.zeros(1, 3, dtype=torch.long), 60).tolist()
    [[1, 1, 1]]
    """
    if path.mask_token is None:
        raise ValueError("Gibbs moves need the masked source")
    if x.dim() != 2 or bool((x == path.mask_token).any()):
        raise ValueError(
            f"x must be finished sequences (n, L) without the mask token, got {tuple(x.shape)}"
        )
    if moves < 0:
        raise ValueError(f"moves must be >= 0, got {moves}")
    draw = _categorical_draw(generator) if draw is None else draw
    n, L = x.shape
    t = path.scheduler.time_of((L - 1) / L).expand(n).to(x.device)
    rows = torch.arange(n, device=x.device)
    x = x.clone()
    for _ in range(moves):
        pos = torch.randint(0, L, (n,), generator=generator, device=x.device)
        x_t = x.clone()
        x_t[rows, pos] = path.mask_token
        x[rows, pos] = draw(posterior(t, x_t))[rows, pos]
    return x
