"""Meta Flow Matching (Atanackovic et al. 2024) and its FM / CGFM baselines."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bioflow.core.losses import flow_matching_loss
from bioflow.core.paths import LinearPath
from bioflow.core.solvers import integrate
from bioflow.metrics import mmd_rbf, wasserstein
from bioflow.models.base import FlowMatchingModule, LossOutput, batch_generators, plain_spec
from bioflow.nn import FourierFeatures, PopulationEncoder, ResidualMLPVectorField

META_METHODS = ("mfm", "fm", "cgfm")


class MetaFlowMatching(FlowMatchingModule):
    """Flow matching from a population's initial cells to its final cells.

    The vector field ``v(t, x | c_i)`` is a residual MLP over ``[x, time embedding,
    Fourier features of x, condition]``; the condition ``c_i`` depends on ``method``:

    - ``"mfm"`` (Meta Flow Matching): the embedding ``h_i`` of the population's initial
      cells by a :class:`~bioflow.nn.PopulationEncoder` (trained jointly with the field)
      and the one-hot treatment;
    - ``"fm"``: the one-hot treatment only;
    - ``"cgfm"``: a one-hot of the training population and the one-hot treatment;
      populations unseen in training get the uniform vector ``1 / n_populations``.

    Loss: ``E_i E_{x0 ~ P_i^0, x1 ~ P_i^1, t} ||v(t, x_t | c_i) - (x1 - x0)||^2`` on the
    linear path ``x_t = (1 - t) x0 + t x1`` (independent pairs within a population).

    Parameters
    ----------
    dim
        Features per cell; taken from ``data_spec["dim"]`` when ``None`` (the CLI links the
        DataModule's ``data_spec``).
    method
        ``"mfm"``, ``"fm"`` or ``"cgfm"``.
    n_conditions
        Number of treatments (0: no treatment input); default from ``data_spec``.
    n_populations
        Number of training populations (needed by ``"cgfm"``); default from ``data_spec``.
    embed_dim, encoder_hidden, k
        Population encoder: embedding size, GCN widths and kNN neighbours.
    embed_cells
        At most this many initial cells are embedded (a fixed, seeded subsample of larger
        populations at prediction time; a random one each training step).
    width, depth, activation
        Residual MLP of the field.
    n_fourier, fourier_scale
        Fourier features of ``x`` (a buffer: saved with the model).
    time_dim
        Size of the time embedding.
    sigma
        Noise of the linear path.
    lr, weight_decay, lr_schedule
        Optimiser settings.
    solver, solver_steps
        ODE solver used by :meth:`predict`.
    data_spec
        Description of the training data, set by :func:`bioflow.tl.fit_meta_flow`.

    Examples
    --------
    >>> import torch
    >>> from bioflow.models import MetaFlowMatching
    >>> model = MetaFlowMatching(dim=2, method="mfm", k=5, width=32, depth=1)
    >>> batch = {"x0": torch.randn(3, 16, 2), "x1": torch.randn(3, 16, 2),
    ...          "src": [torch.randn(40, 2)] * 3}
    >>> model.compute_loss(batch).loss.ndim
    0
    >>> model.predict(torch.randn(40, 2)).shape
    torch.Size([40, 2])
    """

    def __init__(
        self,
        dim: int | None = None,
        method: str = "mfm",
        n_conditions: int | None = None,
        n_populations: int | None = None,
        embed_dim: int = 32,
        encoder_hidden: Sequence[int] = (64, 64),
        k: int = 50,
        embed_cells: int = 512,
        width: int = 256,
        depth: int = 3,
        activation: str = "silu",
        n_fourier: int = 32,
        fourier_scale: float = 1.0,
        time_dim: int = 16,
        sigma: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        solver: str = "rk4",
        solver_steps: int = 20,
        data_spec: dict | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule)
        if method not in META_METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {META_METHODS}")
        data_spec = plain_spec(data_spec)
        spec = data_spec or {}
        if dim is None:
            if "dim" not in spec:
                raise ValueError("MetaFlowMatching needs `dim` (or a data_spec with 'dim')")
            dim = int(spec["dim"])
        if n_conditions is None:
            n_conditions = len(spec.get("conditions", []))
        if n_populations is None:
            n_populations = len(spec.get("populations", []))
        if method == "mfm" and spec.get("min_source_cells", k + 1) < k + 1:
            raise ValueError(
                f"a population has {spec['min_source_cells']} initial cells; the encoder's kNN "
                f"graph with k={k} needs at least k + 1 = {k + 1} (lower k)"
            )
        if method == "cgfm" and n_populations < 1:
            raise ValueError("method='cgfm' needs n_populations >= 1 (training populations)")
        if embed_cells < k + 1:
            raise ValueError(f"embed_cells ({embed_cells}) must be at least k + 1 ({k + 1})")
        self.save_hyperparameters()
        self.hparams.update(dim=dim, n_conditions=n_conditions, n_populations=n_populations)
        self.method, self.dim = method, dim
        self.n_conditions, self.n_populations = n_conditions, n_populations
        self.embed_cells = embed_cells
        self.encoder = (
            PopulationEncoder(dim, hidden=tuple(encoder_hidden), out_dim=embed_dim, k=k)
            if method == "mfm"
            else None
        )
        cond_dim = n_conditions + {"mfm": embed_dim, "fm": 0, "cgfm": n_populations}[method]
        self.cond_dim = cond_dim
        self.net = ResidualMLPVectorField(
            dim,
            width=width,
            depth=depth,
            time_dim=time_dim,
            cond_dim=cond_dim,
            activation=activation,
            features=FourierFeatures(dim, n_fourier, scale=fourier_scale) if n_fourier else None,
            time_max_period=2.0,
        )
        self.path = LinearPath(sigma)
        self.solver, self.solver_steps = solver, solver_steps
        self.data_spec = data_spec

    # --- conditions ----------------------------------------------------------------------
    def _subsample(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if x.shape[0] <= self.embed_cells:
            return x
        idx = torch.randperm(x.shape[0], generator=generator)[: self.embed_cells]
        return x[idx.to(x.device)]

    def embed(self, cells: Tensor | Sequence[Tensor], seed: int | None = 0) -> Tensor:
        """Embeddings ``(P, embed_dim)`` of populations of initial cells (``"mfm"`` only).

        Populations larger than ``embed_cells`` are subsampled (seeded by ``seed``; ``None``
        draws from the global generator).
        """
        if self.encoder is None:
            raise ValueError(f"method {self.method!r} has no population encoder")
        pops = [cells] if isinstance(cells, Tensor) and cells.dim() == 2 else list(cells)
        g = None if seed is None else torch.Generator().manual_seed(seed)
        pops = [
            self._subsample(torch.as_tensor(p, dtype=torch.float32, device=self.device), g)
            for p in pops
        ]
        return self.encoder(pops)

    def condition_vector(
        self,
        n: int,
        *,
        cells: Sequence[Tensor] | None = None,
        condition: Tensor | None = None,
        population: Tensor | None = None,
        seed: int | None = 0,
    ) -> Tensor | None:
        """Condition rows ``(n, cond_dim)`` for ``n`` populations (``None`` if empty).

        ``cells``: initial cells of each population (``"mfm"``); ``condition``: treatment
        indices ``(n,)``; ``population``: training-population indices ``(n,)`` with ``-1``
        for an unseen population (``"cgfm"``).
        """
        parts = []
        if self.method == "mfm":
            if cells is None:
                raise ValueError("method 'mfm' needs the initial cells of each population")
            parts.append(self.embed(cells, seed=seed))
        elif self.method == "cgfm":
            onehot = torch.full(
                (n, self.n_populations), 1.0 / self.n_populations, device=self.device
            )
            if population is not None:
                population = torch.as_tensor(population, device=self.device).reshape(n)
                seen = population >= 0
                onehot[seen] = torch.nn.functional.one_hot(
                    population[seen], self.n_populations
                ).float()
            parts.append(onehot)
        if self.n_conditions:
            if condition is None:
                raise ValueError(f"this model needs a treatment index (of {self.n_conditions})")
            condition = torch.as_tensor(condition, device=self.device).reshape(n)
            parts.append(torch.nn.functional.one_hot(condition, self.n_conditions).float())
        return torch.cat(parts, dim=1) if parts else None

    # --- training ------------------------------------------------------------------------
    def compute_loss(self, batch: dict) -> LossOutput:
        x0, x1 = batch["x0"], batch["x1"]
        n_pop, n_cells, d = x0.shape
        _, dev_gen = batch_generators(batch, x0.device)
        cvec = self.condition_vector(
            n_pop,
            cells=batch.get("src"),
            condition=batch.get("cond"),
            population=batch.get("pop"),
            seed=None if batch.get("seed") is None else int(batch["seed"]),
        )
        cond = None if cvec is None else cvec.repeat_interleave(n_cells, dim=0)
        loss = flow_matching_loss(
            self.path,
            self.net,
            x0.reshape(-1, d),
            x1.reshape(-1, d),
            cond=cond,
            generator=dev_gen,
        )
        return LossOutput(loss, batch_size=n_pop * n_cells)

    def _predict_batch(self, batch: dict) -> Tensor:
        cond = batch.get("cond")
        pop = batch.get("pop")
        return self.predict(
            batch["x0"],
            condition=None if cond is None or not self.n_conditions else int(cond[0]),
            population=None if pop is None or int(pop[0]) < 0 else int(pop[0]),
        )

    def validation_metrics(self, batch: dict) -> dict[str, float]:
        """W1 and RBF-MMD between predicted and true final cells of one population."""
        pred = self._predict_batch(batch)
        return {
            "w1": wasserstein(pred, batch["x1"], 1, max_points=1000),
            "mmd": mmd_rbf(pred, batch["x1"], max_points=1000),
        }

    def predict_step(self, batch: dict, batch_idx: int = 0) -> Tensor:
        """Predicted final cells ``(n, dim)`` of the population in ``batch``."""
        return self._predict_batch(batch)

    # --- prediction ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        x0: Tensor,
        *,
        condition: int | None = None,
        population: int | None = None,
        embed_from: Tensor | None = None,
        method: str | None = None,
        steps: int | None = None,
        return_path: bool = False,
    ) -> Tensor:
        """Push the initial cells ``x0`` ``(n, dim)`` of one population to ``t = 1``.

        Parameters
        ----------
        x0
            Initial cells ``(n, dim)``.
        condition
            Treatment index (required when the model has treatments).
        population
            Training-population index for ``"cgfm"`` (``None``: unseen, uniform vector).
        embed_from
            Cells to embed for ``"mfm"`` (default: ``x0``).
        method, steps
            ODE solver (default: the model's).
        return_path
            Return ``(steps + 1, n, dim)`` states on a uniform time grid.

        Returns
        -------
        torch.Tensor
            ``(n, dim)`` predicted final cells.
        """
        x0 = torch.as_tensor(x0, dtype=torch.float32, device=self.device)
        cells = None
        if self.method == "mfm":
            cells = [x0 if embed_from is None else torch.as_tensor(embed_from).float()]
        pop = None if population is None else torch.tensor([population])
        cnd = None if condition is None else torch.tensor([condition])
        cvec = self.condition_vector(1, cells=cells, condition=cnd, population=pop)
        steps = self.solver_steps if steps is None else steps
        if isinstance(steps, bool) or not hasattr(steps, "__index__") or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")

        def velocity(t, x):
            return self.net(t, x, None if cvec is None else cvec.expand(x.shape[0], -1))

        times = torch.linspace(0, 1, steps + 1).tolist() if return_path else [0.0, 1.0]
        return integrate(
            velocity,
            x0,
            times,
            method=method or self.solver,
            steps=steps,
            return_path=return_path,
        )
