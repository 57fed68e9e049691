"""Conditional flow matching for time-series cells: I-CFM, OT-CFM, SB-CFM, W-CFM, SF2M."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from bioflow.core.couplings import (
    Coupling,
    ExactOTCoupling,
    GibbsWeightCoupling,
    GlobalCoupling,
    IndependentCoupling,
    SinkhornCoupling,
)
from bioflow.core.couplings.pairing import (
    BatchPairing,
    BridgePairing,
    ChainPairing,
    GrowthPairing,
    IntervalPairing,
)
from bioflow.core.couplings.unbalanced import UnbalancedSinkhornCoupling
from bioflow.core.losses import flow_matching_loss, velocity_mse
from bioflow.core.paths import BrownianBridgePath, LinearPath, ProbabilityPath
from bioflow.core.paths.bridge import DiffusionBridgePath
from bioflow.core.paths.spline import SplinePath
from bioflow.core.solvers import integrate
from bioflow.core.solvers.sde import sde_integrate
from bioflow.metrics import wasserstein
from bioflow.models.base import FlowMatchingModule, LossOutput, batch_generators, plain_spec
from bioflow.nn import MLPVectorField
from bioflow.nn.growth import ScalarField

CFM_METHODS = ("i-cfm", "ot-cfm", "sb-cfm", "w-cfm", "sf2m")
INTERPOLANTS = ("linear", "spline")
GROWTH = (None, "given", "unbalanced")
_DEFAULT_SIGMA = {"i-cfm": 0.1, "ot-cfm": 0.1, "sb-cfm": 0.5, "w-cfm": 0.1, "sf2m": 0.3}


def cfm_components(
    method: str,
    sigma: float | None = None,
    sinkhorn_reg: float | None = None,
    wcfm_epsilon: float | None = None,
    wcfm_kappa: float = 1.0,
    wcfm_cost: str = "euclidean",
) -> tuple[ProbabilityPath, Coupling]:
    """The path and coupling of a CFM variant.

    Parameters
    ----------
    method
        ``"i-cfm"`` (independent pairs), ``"ot-cfm"`` (exact OT pairs), ``"sb-cfm"``
        (entropic OT pairs, Brownian bridge), ``"w-cfm"`` (independent pairs with Gibbs
        weights) or ``"sf2m"`` (entropic OT pairs, Brownian bridge with a diffusion per
        unit of absolute time; the coupling's ``reg`` is reset per interval to
        ``2 sigma**2 dt``).
    sigma
        Path noise; defaults 0.1, 0.5 for ``sb-cfm``, 0.3 for ``sf2m`` (its diffusion
        ``g``).
    sinkhorn_reg
        Entropic regularisation of ``sb-cfm``; default ``2 * sigma**2``.
    wcfm_epsilon, wcfm_kappa, wcfm_cost
        W-CFM kernel: temperature (default ``kappa * sqrt(d)``) and cost.

    Returns
    -------
    (ProbabilityPath, Coupling)
    """
    if method not in CFM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {CFM_METHODS}")
    sigma = _DEFAULT_SIGMA[method] if sigma is None else float(sigma)
    if not (sigma >= 0 and sigma < float("inf")):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if method == "sf2m":
        path = DiffusionBridgePath(sigma)
        return path, SinkhornCoupling(reg=2 * sigma**2 if sinkhorn_reg is None else sinkhorn_reg)
    if method == "sb-cfm":
        reg = 2 * sigma**2 if sinkhorn_reg is None else sinkhorn_reg
        return BrownianBridgePath(sigma), SinkhornCoupling(reg=reg)
    path = LinearPath(sigma)
    if method == "ot-cfm":
        return path, ExactOTCoupling()
    if method == "w-cfm":
        return path, GibbsWeightCoupling(epsilon=wcfm_epsilon, kappa=wcfm_kappa, cost=wcfm_cost)
    return path, IndependentCoupling()


class CellFlowMatching(FlowMatchingModule):
    """Flow matching between consecutive time points of single-cell data.

    Wires a path and a coupling (chosen by ``method``), an MLP vector field and the
    weighted velocity loss.  The field sees absolute time on the data's internal clock
    (first time 0, mean interval 1; see ``TimeSpec`` in the data layer), so a single ODE
    carries cells across all observed times.

    Two options act across the whole time course:

    - ``interpolant="spline"``: each minibatch is drawn as whole trajectories by chaining
      the interval couplings (:func:`~bioflow.core.couplings.trajectory.chain_couplings`)
      and the path is the natural cubic spline through each chain
      (:class:`~bioflow.core.paths.spline.SplinePath`); the target is the spline's
      derivative.  The flow then sees curved, continuous paths instead of straight
      segments that kink at every observed time.
    - ``method="sf2m"`` (simulation-free score and flow matching, Tong et al. 2024): a
      score head ``s(t, x)`` is trained beside the velocity on the Brownian bridge, with
      the loss ``||v - u||^2 + ||std_t s + eps||^2`` (the score term weighted by
      ``lambda(t)^2 = std_t^2``), so the bridge can be sampled as an SDE
      (:func:`~bioflow.core.solvers.sde.sde_integrate`) as well as by its ODE.

    Parameters
    ----------
    dim
        Number of features (e.g. PCs); taken from ``data_spec["dim"]`` when ``None`` (as
        the CLI links it from the DataModule).
    method
        ``"i-cfm"``, ``"ot-cfm"``, ``"sb-cfm"``, ``"w-cfm"`` or ``"sf2m"``.
    sigma, sinkhorn_reg, wcfm_epsilon, wcfm_kappa, wcfm_cost
        See :func:`~bioflow.models.dynamics.cfm_components`.  For ``"sf2m"`` ``sigma`` is
        the diffusion ``g`` per unit of the internal clock.
    interpolant
        ``"linear"`` (interval by interval) or ``"spline"`` (chained trajectories; not for
        ``"sf2m"``, whose bridge is pinned at each time).  ``None`` (default) picks
        ``"spline"`` for ``"ot-cfm"`` without growth and ``"linear"`` otherwise (chaining
        independent or entropic pairs gives no coherent trajectories).  In the sweep
        (``benchmarks/results/dynamics_sweep.json``) the spline beats the McCann
        interpolant at held-out times on both simulations, the interval-wise path only
        ties it (it *is* McCann's straight OT path across a held-out time); the
        interval-wise path puts more cells pushed over the whole time course on the data.
    growth
        ``None`` (balanced: every cell has one descendant), ``"given"`` (per-cell growth
        rates in the batches, from ``growth_key`` of the data: sources are re-sampled in
        proportion to ``exp(g dt)`` before the coupling) or ``"unbalanced"`` (pairs from a
        semi-relaxed unbalanced entropic OT plan,
        :class:`~bioflow.core.couplings.unbalanced.UnbalancedSinkhornCoupling`, which
        estimates the growth).  Either way a growth head ``g(t, x)`` is trained and
        :meth:`push_with_growth` returns each pushed cell's weight ``exp(int g dt)``.
        Linear interpolant only.
    growth_reg, growth_reg_m
        Entropic and marginal regularisation of the unbalanced coupling (relative to the
        mean cost).
    hidden
        Hidden widths of the MLP field (and of the score head).
    activation
        Activation of the MLP.
    time_dim
        Size of the time embedding.
    time_max_period
        Longest period of the time embedding (about twice the data's time span).
    lr, weight_decay, lr_schedule
        Optimiser settings.  The defaults (Adam at ``3e-3`` decayed to 0 by a cosine over
        the fit's steps) were chosen by the sweep in
        ``benchmarks/results/dynamics_sweep.json``: without the decay the field keeps the
        optimiser's noise and pushed cells drift off the data.
    solver, solver_steps
        ODE solver used for validation and by default for prediction.
    data_spec
        Description of the training data (time labels, clock, representation); set by
        :func:`bioflow.tl.fit_dynamics` and the CLI so a saved model can be applied to new
        AnnData.
    global_coupling
        Under DDP, couple the union of all ranks' minibatches
        (:class:`~bioflow.core.couplings.distributed.GlobalCoupling`) instead of each
        rank's own; the coupling then runs in the training step.

    Examples
    --------
    >>> import torch
    >>> from bioflow.models import CellFlowMatching
    >>> model = CellFlowMatching(dim=2, method="ot-cfm", hidden=(32, 32))
    >>> batch = {"x0": torch.randn(1, 64, 2), "x1": torch.randn(1, 64, 2) + 3,
    ...          "t0": torch.tensor([0.0]), "t1": torch.tensor([1.0])}
    >>> model.compute_loss(batch).loss.ndim
    0
    """

    def __init__(
        self,
        dim: int | None = None,
        method: str = "ot-cfm",
        sigma: float | None = None,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "selu",
        time_dim: int = 16,
        time_max_period: float = 10.0,
        sinkhorn_reg: float | None = None,
        wcfm_epsilon: float | None = None,
        wcfm_kappa: float = 1.0,
        wcfm_cost: str = "euclidean",
        interpolant: str | None = None,
        growth: str | None = None,
        growth_reg: float = 0.05,
        growth_reg_m: float = 1.0,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "cosine",
        solver: str = "rk4",
        solver_steps: int = 20,
        data_spec: dict | None = None,
        global_coupling: bool = False,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule)
        data_spec = plain_spec(data_spec)
        if dim is None:
            if not data_spec or "dim" not in data_spec:
                raise ValueError("CellFlowMatching needs `dim` (or a data_spec with 'dim')")
            dim = int(data_spec["dim"])
        if interpolant is None:
            interpolant = "spline" if method == "ot-cfm" and growth is None else "linear"
        if interpolant not in INTERPOLANTS:
            raise ValueError(f"unknown interpolant {interpolant!r}; choose one of {INTERPOLANTS}")
        if interpolant == "spline" and method == "sf2m":
            raise ValueError(
                "interpolant='spline' is for the linear-path methods; method='sf2m' uses the "
                "Brownian bridge pinned at each observed time"
            )
        if growth not in GROWTH:
            raise ValueError(f"unknown growth {growth!r}; choose one of {GROWTH}")
        if growth is not None and (interpolant != "linear" or method == "sf2m"):
            raise ValueError(
                f"growth={growth!r} needs interpolant='linear' and a linear-path method, got "
                f"interpolant={interpolant!r}, method={method!r}"
            )
        self.save_hyperparameters()
        self.hparams["dim"] = dim
        self.hparams["interpolant"] = interpolant
        self.path, self.coupling = cfm_components(
            method, sigma, sinkhorn_reg, wcfm_epsilon, wcfm_kappa, wcfm_cost
        )
        if global_coupling:
            self.coupling = GlobalCoupling(self.coupling)
        self.method = method
        self.interpolant = interpolant
        self.net = MLPVectorField(
            dim,
            hidden=tuple(hidden),
            time_dim=time_dim,
            activation=activation,
            time_max_period=time_max_period,
        )
        self.score_net = (
            MLPVectorField(
                dim,
                hidden=tuple(hidden),
                time_dim=time_dim,
                activation=activation,
                time_max_period=time_max_period,
            )
            if method == "sf2m"
            else None
        )
        self.growth = growth
        self.growth_net = (
            None
            if growth is None
            else ScalarField(
                dim,
                hidden=tuple(hidden)[:2] or (64,),
                time_dim=time_dim,
                activation=activation,
                time_max_period=time_max_period,
            )
        )
        if growth == "unbalanced":
            self.coupling = UnbalancedSinkhornCoupling(reg=growth_reg, reg_m=growth_reg_m)
        self.solver, self.solver_steps = solver, solver_steps
        self.data_spec = data_spec

    @property
    def stochastic_capable(self) -> bool:
        """Whether the model has a score head (``method="sf2m"``) and can sample its SDE."""
        return self.score_net is not None

    @property
    def diffusion(self) -> float:
        """Diffusion ``g`` per unit of the internal clock (``sf2m``), else 0."""
        return float(self.path.g) if isinstance(self.path, DiffusionBridgePath) else 0.0

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Velocity ``(n, dim)`` at absolute time ``t`` (scalar or ``(n,)``) and cells ``x``."""
        return self.net(t, x)

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """The field as an ODE right-hand side ``f(t, x)``."""
        return self.net(t, x)

    def score(self, t: Tensor, x: Tensor) -> Tensor:
        """Score ``grad_x log p_t(x)`` ``(n, dim)`` of the bridge's marginals (``sf2m`` only)."""
        if self.score_net is None:
            raise ValueError(f"method={self.method!r} has no score head; fit method='sf2m'")
        return self.score_net(t, x)

    @functools.cached_property
    def pairing(self) -> BatchPairing:
        """How a training batch is paired (a :class:`~bioflow.core.couplings.pairing.BatchPairing`).

        Chains of interval plans for ``interpolant="spline"``, per-interval bridge pairs
        for ``sf2m``, pairs with growth targets with ``growth``, else each interval paired
        with the model's coupling.  Its draws are seeded by ``batch["seed"]``, so a batch
        is paired alike in the loader or in the step.  Built once (the coupling is fixed at
        construction), not on every training step.
        """
        if self.interpolant == "spline":
            return ChainPairing(self.coupling)
        if self.method == "sf2m":
            inner = getattr(self.coupling, "coupling", self.coupling)
            return BridgePairing(
                self.path.g, self.hparams.sinkhorn_reg, getattr(inner, "num_iter", 1000)
            )
        if self.growth is not None:
            return GrowthPairing(self.coupling, given=self.growth == "given")
        return IntervalPairing(self.coupling)

    @property
    def loader_pairing(self) -> BatchPairing | None:
        """The pairing the data loader may run ahead of the step (``None``: the step pairs).

        ``None`` for a collective coupling (``global_coupling=True``), whose calls must be
        made by every DDP rank in step.
        """
        return None if getattr(self.coupling, "collective", False) else self.pairing

    def compute_loss(self, batch: dict) -> LossOutput:
        _, dev_gen = batch_generators(batch, batch["x0"].device)
        # no-op on a batch the loader already paired
        batch = self.pairing(batch)
        if self.interpolant == "spline":
            return self._spline_loss(batch, dev_gen)
        if self.method == "sf2m":
            return self._sf2m_loss(batch, dev_gen)
        if self.growth is not None:
            return self._growth_loss(batch, dev_gen)
        x0, x1 = batch["x0"], batch["x1"]
        n_int, bsz, d = x0.shape
        t0 = batch["t0"].to(x0).repeat_interleave(bsz)
        t1 = batch["t1"].to(x0).repeat_interleave(bsz)
        w = batch.get("weight")
        w = None if w is None else w.reshape(-1).to(x0)
        loss = flow_matching_loss(
            self.path,
            self.net,
            x0.reshape(-1, d),
            x1.reshape(-1, d),
            t0=t0,
            t1=t1,
            weight=w,
            generator=dev_gen,
        )
        return LossOutput(loss, batch_size=n_int * bsz)

    def _spline_loss(self, batch: dict, dev_gen) -> LossOutput:
        # The chains pass the first interval's sources, then every interval's targets
        # (consecutive intervals share their middle time).
        traj = batch["traj"]
        knots = torch.cat([batch["t0"][:1], batch["t1"]]).to(traj)
        ps = SplinePath(self.path.sigma).sample(traj, knots, generator=dev_gen)
        loss = velocity_mse(self.net(ps.t, ps.x_t), ps.u_t, batch.get("traj_weight"))
        return LossOutput(loss, batch_size=traj.shape[1])

    def _growth_loss(self, batch: dict, dev_gen) -> LossOutput:
        # paired rows with their growth-rate targets (GrowthPairing)
        x0, x1 = batch["x0"], batch["x1"]
        n_int, bsz, d = x0.shape
        ps = self.path.sample(
            x0.reshape(-1, d),
            x1.reshape(-1, d),
            t0=batch["t0"].to(x0).repeat_interleave(bsz),
            t1=batch["t1"].to(x0).repeat_interleave(bsz),
            generator=dev_gen,
        )
        flow = velocity_mse(self.net(ps.t, ps.x_t), ps.u_t)
        g_target = (1 - ps.s) * batch["rate0"].reshape(-1) + ps.s * batch["rate1"].reshape(-1)
        growth = (self.growth_net(ps.t, ps.x_t) - g_target).pow(2).mean()
        return LossOutput(
            flow + growth,
            logs={"flow_loss": flow.detach(), "growth_loss": growth.detach()},
            batch_size=n_int * bsz,
        )

    @torch.no_grad()
    def push_with_growth(
        self,
        x: Tensor,
        times: Sequence[float],
        *,
        method: str | None = None,
        steps: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Push cells and integrate their growth: ``(x_end (n, dim), log_weight (n,))``.

        ``log_weight = int g(t, x(t)) dt`` along each path (negative of it when pushing
        backwards in time); ``exp(log_weight)`` is the number of descendants (relative).
        """
        if self.growth_net is None:
            raise ValueError("this model has no growth head; fit it with growth=...")
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)

        def field(t, z):
            xs = z[:, :-1]
            return torch.cat([self.net(t, xs), self.growth_net(t, xs)[:, None]], 1)

        z0 = torch.cat([x, torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)
        z = integrate(
            field,
            z0,
            list(times),
            method=method or self.solver,
            steps=steps or self.solver_steps,
        )
        return z[:, :-1], z[:, -1]

    def _sf2m_loss(self, batch: dict, dev_gen) -> LossOutput:
        # bridge pairs of every interval (BridgePairing)
        x0, x1 = batch["x0"], batch["x1"]
        n_int, bsz, d = x0.shape
        ps = self.path.sample(
            x0.reshape(-1, d),
            x1.reshape(-1, d),
            t0=batch["t0"].to(x0).repeat_interleave(bsz),
            t1=batch["t1"].to(x0).repeat_interleave(bsz),
            generator=dev_gen,
        )
        flow = velocity_mse(self.net(ps.t, ps.x_t), ps.u_t)
        # lambda(t) = std_t: regress std_t * s(t, x_t) onto -eps (bounded near the knots).
        score = velocity_mse(ps.std[:, None] * self.score_net(ps.t, ps.x_t), -ps.noise)
        return LossOutput(
            flow + score,
            logs={"flow_loss": flow.detach(), "score_loss": score.detach()},
            batch_size=n_int * bsz,
        )

    @torch.no_grad()
    def push(
        self,
        x: Tensor,
        times: Sequence[float],
        *,
        method: str | None = None,
        steps: int | None = None,
        return_path: bool = False,
        stochastic: bool = False,
        ode_after: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Integrate cells ``x`` ``(n, dim)`` through the absolute ``times`` (either direction).

        ``times`` are on the model's internal clock.  With ``stochastic=True`` (``sf2m``
        models) the bridge SDE is sampled by Euler-Maruyama (``steps`` default 100), and
        follows the ODE after ``ode_after``; ``method`` is then ignored.

        Returns ``(n, dim)``, or ``(len(times), n, dim)`` with ``return_path=True``.
        """
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if stochastic:
            if not self.stochastic_capable:
                raise ValueError(
                    f"stochastic=True needs a score head; this model has method={self.method!r}"
                    " (fit with method='sf2m')"
                )
            return sde_integrate(
                self.velocity,
                self.score,
                x,
                list(times),
                g=self.diffusion,
                steps=steps or max(100, self.solver_steps),
                ode_after=ode_after,
                generator=generator,
                return_path=return_path,
            )
        return integrate(
            self.velocity,
            x,
            list(times),
            method=method or self.solver,
            steps=self.solver_steps if steps is None else steps,
            return_path=return_path,
        )

    def predict_step(self, batch: dict, batch_idx: int = 0) -> Tensor:
        """Push ``batch["x"]`` ``(n, dim)`` from ``batch["t0"]`` to ``batch["t1"]``."""
        return self.push(batch["x"], [float(batch["t0"]), float(batch["t1"])])

    def validation_metrics(self, batch: dict) -> dict[str, float]:
        with torch.no_grad():
            pred = self.push(batch["x0"], [batch["t0"], batch["t1"]])
        key = "w1_holdout" if batch["holdout"] else "w1"
        return {key: wasserstein(pred, batch["x1"], 1, max_points=1000)}
