"""Batch pairings: the whole coupling step of a training batch as one callable.

A pairing turns a raw batch of consecutive time points (``{"x0": (I, B, d), "x1": (I, B,
d), "t0": (I,), "t1": (I,), "seed": int, ...}``) into what the loss needs: pairs per
interval, whole chained trajectories, bridge pairs with a per-interval regularisation or
pairs with growth targets.  The same object runs wherever the batch is paired -- in the
data loader (its prefetch thread or workers, handed over by ``tl``'s ``connect``), so the
next batch is paired while the current training step runs, or in the training step
itself -- and it draws its randomness from a generator seeded by ``batch["seed"]``
(:func:`pairing_generator`), so the paired batch is the same wherever it was made and a
resumed run pairs exactly as an uninterrupted one.

A paired batch carries ``"paired"`` set to the pairing's ``kind``; calling a pairing on a
batch it already paired returns it unchanged.
"""

from __future__ import annotations

import numbers

import torch

from bioflow.core.couplings.base import Coupling
from bioflow.core.couplings.intervals import couple_intervals
from bioflow.core.couplings.ot import SinkhornCoupling
from bioflow.core.couplings.trajectory import chain_couplings


def pairing_generator(seed: int | torch.Tensor | None) -> torch.Generator | None:
    """CPU generator of a batch's pairing, seeded from ``batch["seed"]`` (``None``: none).

    The seed is mixed (an LCG step) so the pairing's draws do not reuse the stream that
    the model seeds from the same ``batch["seed"]`` for its path noise.

    Parameters
    ----------
    seed
        The batch's seed: an integer or a one-element integer tensor, or ``None``.

    Returns
    -------
    torch.Generator or None
        A CPU generator, or ``None`` when ``seed`` is ``None``.
    """
    if seed is None:
        return None
    if isinstance(seed, torch.Tensor):
        if seed.numel() != 1 or seed.is_floating_point():
            raise ValueError(
                f"batch seed must be one integer, got a tensor of shape {tuple(seed.shape)}"
            )
        seed = seed.item()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"batch seed must be an integer, got {seed!r}")
    mixed = (int(seed) * 6364136223846793005 + 1442695040888963407) % (2**63)
    return torch.Generator().manual_seed(mixed)


def _check_batch(batch: dict) -> None:
    for key in ("x0", "x1", "t0", "t1"):
        if key not in batch:
            raise ValueError(f"a batch to pair needs {key!r}; it has {sorted(batch)}")
    if batch["x0"].dim() != 3 or batch["x1"].dim() != 3:
        raise ValueError(
            "batch['x0'] and batch['x1'] must have shape (intervals, batch, dim), got "
            f"{tuple(batch['x0'].shape)} and {tuple(batch['x1'].shape)}"
        )


class BatchPairing:
    """Base class: ``pairing(batch) -> paired batch`` (a new dict; the input is not modified).

    Parameters
    ----------
    coupling
        The :class:`~bioflow.core.Coupling` applied per interval.
    """

    kind = "pairs"

    def __init__(self, coupling: Coupling) -> None:
        if not isinstance(coupling, Coupling):
            raise ValueError(f"coupling must be a Coupling, got {type(coupling).__name__}")
        self.coupling = coupling

    @property
    def collective(self) -> bool:
        """Whether the coupling is a collective across DDP ranks (it must run in the step)."""
        return bool(getattr(self.coupling, "collective", False))

    def warmup(self) -> None:
        """Load the coupling's compiled kernel (before loader workers fork)."""
        self.coupling.warmup()

    def is_paired(self, batch: dict) -> bool:
        """Whether ``batch`` was already paired by a pairing of this kind."""
        return batch.get("paired") == self.kind

    def __call__(self, batch: dict) -> dict:
        if self.is_paired(batch):
            return batch
        _check_batch(batch)
        out = self.pair(batch, pairing_generator(batch.get("seed")))
        out["paired"] = self.kind
        return out

    def pair(self, batch: dict, generator: torch.Generator | None) -> dict:
        """The paired batch (a new dict), drawing from ``generator``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.coupling!r})"


class IntervalPairing(BatchPairing):
    """Each interval paired on its own (:func:`~bioflow.core.couplings.couple_intervals`).

    Adds ``"weight"`` ``(I, B)`` when the coupling weights pairs; ``x1`` is re-ordered into
    the partners of ``x0``.  A batch with ``"paired": True`` counts as paired.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> from bioflow.core.couplings.pairing import IntervalPairing
    >>> batch = {"x0": torch.tensor([[[0.0], [5.0]]]), "x1": torch.tensor([[[5.1], [0.1]]]),
    ...          "t0": torch.tensor([0.0]), "t1": torch.tensor([1.0]), "seed": 3}
    >>> IntervalPairing(ExactOTCoupling())(batch)["x1"].flatten().tolist()
    [0.10000000149011612, 5.099999904632568]
    """

    kind = "intervals"

    def is_paired(self, batch: dict) -> bool:
        return batch.get("paired") is True or super().is_paired(batch)

    def pair(self, batch: dict, generator: torch.Generator | None) -> dict:
        return couple_intervals(self.coupling, batch, generator)


class ChainPairing(BatchPairing):
    """Whole trajectories through every kept time (:func:`chain_couplings`).

    Adds ``"traj"`` ``(I + 1, B, d)`` (the chains at the times ``t0[0], t1[0], ...,
    t1[-1]``) and, when the coupling weights pairs, ``"traj_weight"`` ``(B,)``.

    Parameters
    ----------
    coupling
        The interval coupling.
    parallel
        Solve the interval plans in parallel threads (``None``: where it pays; see
        :func:`~bioflow.core.couplings.couple_many`).  Exact OT ignores it: its plans
        and chains are made in one compiled call
        (:meth:`~bioflow.core.ExactOTCoupling.chain_rows`).

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import ExactOTCoupling
    >>> from bioflow.core.couplings.pairing import ChainPairing
    >>> batch = {"x0": torch.tensor([[[0.0], [5.0]], [[6.0], [1.0]]]),
    ...          "x1": torch.tensor([[[6.0], [1.0]], [[2.0], [7.0]]]),
    ...          "t0": torch.tensor([0.0, 1.0]), "t1": torch.tensor([1.0, 2.0])}
    >>> ChainPairing(ExactOTCoupling())(batch)["traj"][:, :, 0].T.tolist()
    [[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]]
    """

    kind = "chains"

    def __init__(self, coupling: Coupling, parallel: bool | None = None) -> None:
        super().__init__(coupling)
        self.parallel = parallel

    def pair(self, batch: dict, generator: torch.Generator | None) -> dict:
        x0, x1 = batch["x0"], batch["x1"]
        points = [x0[0], *[x1[i] for i in range(x1.shape[0])]]
        traj, weight = chain_couplings(self.coupling, points, generator, parallel=self.parallel)
        out = dict(batch, traj=traj)
        if weight is not None:
            out["traj_weight"] = weight
        return out


class BridgePairing(BatchPairing):
    """Entropic pairs per interval with ``reg = 2 g**2 |dt|`` (SF2M's static bridge).

    Each interval gets a :class:`~bioflow.core.couplings.ot.SinkhornCoupling` whose
    regularisation matches a Brownian bridge of diffusion ``g`` over that interval (or the
    fixed ``reg``); ``x1`` is re-ordered into the partners of ``x0``.

    Parameters
    ----------
    g
        Diffusion per unit of the batch's time.
    reg
        Fixed regularisation instead of ``2 g**2 |dt|`` (``None``: per interval).
    num_iter
        Maximum Sinkhorn iterations.
    """

    kind = "bridge"

    def __init__(self, g: float, reg: float | None = None, num_iter: int = 1000) -> None:
        if not (float(g) >= 0 and float(g) < float("inf")):
            raise ValueError(f"g must be a finite number >= 0, got {g}")
        if reg is not None and not float(reg) > 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.g = float(g)
        self.reg = None if reg is None else float(reg)
        self.num_iter = int(num_iter)
        self.coupling = SinkhornCoupling(reg=1.0, num_iter=self.num_iter)

    def interval_reg(self, dt: float) -> float:
        """Regularisation of an interval of length ``dt``."""
        return self.reg if self.reg is not None else 2.0 * self.g**2 * abs(float(dt))

    def pair(self, batch: dict, generator: torch.Generator | None) -> dict:
        x0, x1 = batch["x0"], batch["x1"]
        xs0, xs1 = [], []
        for i in range(x0.shape[0]):
            reg = self.interval_reg(float(batch["t1"][i] - batch["t0"][i]))
            cb = SinkhornCoupling(reg=reg, num_iter=self.num_iter)(x0[i], x1[i], generator)
            xs0.append(cb.x0)
            xs1.append(cb.x1)
        return dict(batch, x0=torch.stack(xs0), x1=torch.stack(xs1))

    def __repr__(self) -> str:
        return f"BridgePairing(g={self.g}, reg={self.reg})"


class GrowthPairing(BatchPairing):
    """Pairs per interval with growth-rate targets, for models with a growth head.

    ``given=True``: each source stands for ``exp(g dt)`` descendants, so the sources of an
    interval are re-sampled in proportion to ``exp(g0 dt)`` (``batch["g0"]``, ``(I, B)``,
    per unit of the batch's time) before the coupling; the targets are the given rates of
    the paired cells.  ``given=False``: the coupling must report ``source_mass`` (an
    unbalanced coupling); the target of a pair is ``log(source_mass) / dt`` of its source.

    Adds ``"rate0"``, ``"rate1"`` ``(I, B)``: the growth-rate targets at the two ends of
    each pair; ``x0``, ``x1`` become the paired rows.
    """

    kind = "growth"

    def __init__(self, coupling: Coupling, given: bool) -> None:
        super().__init__(coupling)
        self.given = bool(given)

    def pair(self, batch: dict, generator: torch.Generator | None) -> dict:
        if self.given and ("g0" not in batch or "g1" not in batch):
            raise ValueError(
                "growth='given' needs per-cell growth rates in the batches: fit with "
                "growth_key=<obs column> (bioflow.tl.fit_dynamics / CellDynamicsDataModule)"
            )
        x0, x1 = batch["x0"], batch["x1"]
        bsz = x0.shape[1]
        xs0, xs1, rs0, rs1 = [], [], [], []
        for i in range(x0.shape[0]):
            dt = (batch["t1"][i] - batch["t0"][i]).to(x0)
            a, b = x0[i], x1[i]
            if self.given:
                g0, g1 = batch["g0"][i].to(x0), batch["g1"][i].to(x0)
                # Each source stands for exp(g dt) descendants: re-sample in proportion.
                w = torch.exp((g0 - g0.max()) * dt)
                idx = torch.multinomial(w.cpu().double(), bsz, True, generator=generator)
                idx = idx.to(x0.device)
                cb = self.coupling(a[idx], b, generator=generator)
                r0, r1 = g0[idx][cb.index0], g1[cb.index1]
            else:
                cb = self.coupling(a, b, generator=generator)
                if cb.source_mass is None:
                    raise ValueError(f"{self.coupling!r} gives no source_mass to estimate growth")
                rate = torch.log(cb.source_mass.clamp_min(1e-6)) / dt
                r0 = r1 = rate[cb.index0]
            xs0.append(cb.x0)
            xs1.append(cb.x1)
            rs0.append(r0)
            rs1.append(r1)
        return dict(
            batch,
            x0=torch.stack(xs0),
            x1=torch.stack(xs1),
            rate0=torch.stack(rs0),
            rate1=torch.stack(rs1),
        )


def as_pairing(pairing) -> BatchPairing | None:
    """``pairing`` itself, an :class:`IntervalPairing` of a bare coupling, or ``None``.

    Parameters
    ----------
    pairing
        A :class:`BatchPairing`, a :class:`~bioflow.core.Coupling` or ``None``.
    """
    if pairing is None or isinstance(pairing, BatchPairing):
        return pairing
    if isinstance(pairing, Coupling):
        return IntervalPairing(pairing)
    raise ValueError(f"expected a BatchPairing or a Coupling, got {type(pairing).__name__}")
