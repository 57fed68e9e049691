"""Conditional flow matching for time-series cells: I-CFM, OT-CFM, SB-CFM, W-CFM."""

from __future__ import annotations

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
    couple_intervals,
)
from bioflow.core.losses import flow_matching_loss
from bioflow.core.paths import BrownianBridgePath, LinearPath, ProbabilityPath
from bioflow.core.solvers import integrate
from bioflow.metrics import wasserstein
from bioflow.models.base import FlowMatchingModule, LossOutput, batch_generators, plain_spec
from bioflow.nn import MLPVectorField

CFM_METHODS = ("i-cfm", "ot-cfm", "sb-cfm", "w-cfm")
_DEFAULT_SIGMA = {"i-cfm": 0.1, "ot-cfm": 0.1, "sb-cfm": 0.5, "w-cfm": 0.1}


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
        (entropic OT pairs, Brownian bridge) or ``"w-cfm"`` (independent pairs with Gibbs
        weights).
    sigma
        Path noise; defaults 0.1, or 0.5 for ``sb-cfm``.
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
    weighted velocity loss.  The field sees absolute time, so a single ODE carries cells
    across all observed times.

    Parameters
    ----------
    dim
        Number of features (e.g. PCs); taken from ``data_spec["dim"]`` when ``None`` (as
        the CLI links it from the DataModule).
    method
        ``"i-cfm"``, ``"ot-cfm"``, ``"sb-cfm"`` or ``"w-cfm"``.
    sigma, sinkhorn_reg, wcfm_epsilon, wcfm_kappa, wcfm_cost
        See :func:`~bioflow.models.dynamics.cfm_components`.
    hidden
        Hidden widths of the MLP field.
    activation
        Activation of the MLP.
    time_dim
        Size of the time embedding.
    time_max_period
        Longest period of the time embedding (about twice the data's time span).
    lr, weight_decay, lr_schedule
        Optimiser settings.
    solver, solver_steps
        ODE solver used for validation and by default for prediction.
    data_spec
        Description of the training data (time labels, representation); set by
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
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
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
        self.save_hyperparameters()
        self.hparams["dim"] = dim
        self.path, self.coupling = cfm_components(
            method, sigma, sinkhorn_reg, wcfm_epsilon, wcfm_kappa, wcfm_cost
        )
        if global_coupling:
            self.coupling = GlobalCoupling(self.coupling)
        self.method = method
        self.net = MLPVectorField(
            dim,
            hidden=tuple(hidden),
            time_dim=time_dim,
            activation=activation,
            time_max_period=time_max_period,
        )
        self.solver, self.solver_steps = solver, solver_steps
        self.data_spec = data_spec

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Velocity ``(n, dim)`` at absolute time ``t`` (scalar or ``(n,)``) and cells ``x``."""
        return self.net(t, x)

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """The field as an ODE right-hand side ``f(t, x)``."""
        return self.net(t, x)

    def compute_loss(self, batch: dict) -> LossOutput:
        cpu_gen, dev_gen = batch_generators(batch, batch["x0"].device)
        if not batch.get("paired", False):
            batch = couple_intervals(self.coupling, batch, cpu_gen)
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

    @torch.no_grad()
    def push(
        self,
        x: Tensor,
        times: Sequence[float],
        *,
        method: str | None = None,
        steps: int | None = None,
        return_path: bool = False,
    ) -> Tensor:
        """Integrate cells ``x`` ``(n, dim)`` through the absolute ``times`` (either direction).

        Returns ``(n, dim)``, or ``(len(times), n, dim)`` with ``return_path=True``.
        """
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
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
