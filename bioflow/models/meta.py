"""Meta Flow Matching (Atanackovic et al. 2024) and its FM / CGFM baselines."""

from __future__ import annotations

import warnings
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
META_COUPLINGS = ("independent", "paired", "exact")
META_TRAINING = ("joint", "alternating")

#: Encoder and field settings of the reference implementation's letters experiment
#: (lazaratan/meta-flow-matching, ``conf/experiment/letters_mfm.yaml`` and
#: ``models/components/gnn.py``): 3 GCN layers of 64 with ReLU between them and none
#: after the last, no head, k = 50; a 4-layer, 512-wide MLP over 128 random Fourier
#: features of scale 0.01 and a 128-d sinusoidal time embedding; Adam at 1e-4 with
#: alternating encoder / field steps.  (The reference's MLP has no skip connections; here
#: it is the residual MLP of the same width and depth.)
REFERENCE_LETTERS_SETTINGS = {
    "encoder_hidden": (64, 64, 64),
    "embed_dim": 64,
    "encoder_head": False,
    "encoder_final_activation": False,
    "encoder_activation": "relu",
    "k": 50,
    "width": 512,
    "depth": 4,
    "n_fourier": 128,
    "fourier_scale": 0.01,
    "time_dim": 128,
    "lr": 1e-4,
    "training": "alternating",
    "coupling": "paired",
}


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

    Loss: ``E_i E_{(x0, x1) ~ pi_i, t} ||v(t, x_t | c_i) - (x1 - x0)||^2`` on the
    linear path ``x_t = (1 - t) x0 + t x1``, where the coupling ``pi_i`` of a population's
    initial and final cells is a choice (``coupling``): independent, the data's own pairs
    (a ``pair_key``), or the exact OT plan of the minibatch
    (:class:`~bioflow.core.ExactOTCoupling`).

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
    encoder_activation, encoder_head, encoder_final_activation
        Encoder non-linearity, linear head after pooling, activation after the last
        layer (see :class:`~bioflow.nn.PopulationEncoder`).
    n_encoder_features
        Per-cell categorical features (one-hot, e.g. cell type) given to the encoder;
        default from ``data_spec["encoder_categories"]``.
    coupling
        Pairs within a population: ``"independent"``, ``"paired"`` (the data's pairs; the
        data must have a ``pair_key``) or ``"exact"`` (exact OT on each minibatch).
    training
        ``"joint"`` (encoder and field in every step) or ``"alternating"`` (the
        reference's scheme: even steps update the field with the embedding fixed, odd
        steps update the encoder only).
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
        encoder_activation: str = "selu",
        encoder_head: bool = True,
        encoder_final_activation: bool = True,
        n_encoder_features: int | None = None,
        coupling: str = "independent",
        training: str = "joint",
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
        if coupling not in META_COUPLINGS:
            raise ValueError(f"unknown coupling {coupling!r}; choose one of {META_COUPLINGS}")
        if training not in META_TRAINING:
            raise ValueError(f"unknown training {training!r}; choose one of {META_TRAINING}")
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
        if n_encoder_features is None:
            n_encoder_features = len(spec.get("encoder_categories", []) or [])
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
        self.hparams.update(
            dim=dim,
            n_conditions=n_conditions,
            n_populations=n_populations,
            n_encoder_features=n_encoder_features,
        )
        self.coupling, self.training_scheme = coupling, training
        self.n_encoder_features = n_encoder_features
        self._encoder_step = False
        self._warned_k = False
        self.method, self.dim = method, dim
        self.n_conditions, self.n_populations = n_conditions, n_populations
        self.embed_cells = embed_cells
        self.encoder = (
            PopulationEncoder(
                dim,
                hidden=tuple(encoder_hidden),
                out_dim=embed_dim,
                k=k,
                activation=encoder_activation,
                extra_dim=n_encoder_features,
                head=encoder_head,
                final_activation=encoder_final_activation,
            )
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
    def _subsample(self, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
        if x.shape[0] <= self.embed_cells:
            return None
        return torch.randperm(x.shape[0], generator=generator)[: self.embed_cells]

    def embed(
        self,
        cells: Tensor | Sequence[Tensor],
        seed: int | None = 0,
        *,
        neighbours: Sequence[Tensor] | None = None,
        extra: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Embeddings ``(P, embed_dim)`` of populations of initial cells (``"mfm"`` only).

        Populations larger than ``embed_cells`` are subsampled (seeded by ``seed``; ``None``
        draws from the global generator).  ``neighbours``: precomputed kNN indices, one
        ``(n_i, k)`` per population (only for populations not subsampled); ``extra``:
        per-cell encoder features ``(n_i, n_encoder_features)``.
        """
        if self.encoder is None:
            raise ValueError(f"method {self.method!r} has no population encoder")
        single = isinstance(cells, Tensor) and cells.dim() == 2
        pops = [cells] if single else list(cells)
        extras = None
        if extra is not None:
            extras = [extra] if single and isinstance(extra, Tensor) else list(extra)
        g = None if seed is None else torch.Generator().manual_seed(seed)
        out_p, out_e = [], []
        for i, p in enumerate(pops):
            p = torch.as_tensor(p, dtype=torch.float32, device=self.device)
            idx = self._subsample(p, g)
            if idx is not None:
                if neighbours is not None:
                    raise ValueError("precomputed neighbours need populations <= embed_cells")
                p = p[idx.to(p.device)]
            out_p.append(p)
            if extras is not None:
                e = torch.as_tensor(extras[i], dtype=torch.float32, device=self.device)
                out_e.append(e if idx is None else e[idx.to(e.device)])
        return self.encoder(
            out_p, neighbours=neighbours, extra=out_e if extras is not None else None
        )

    def condition_vector(
        self,
        n: int,
        *,
        cells: Sequence[Tensor] | None = None,
        condition: Tensor | None = None,
        population: Tensor | None = None,
        seed: int | None = 0,
        neighbours: Sequence[Tensor] | None = None,
        extra: Sequence[Tensor] | None = None,
        grad_encoder: bool = True,
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
            with torch.set_grad_enabled(grad_encoder and torch.is_grad_enabled()):
                parts.append(self.embed(cells, seed=seed, neighbours=neighbours, extra=extra))
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
    def _pairs(self, x0: Tensor, x1: Tensor, batch: dict, generator) -> Tensor:
        """Partners of ``x0`` ``(P, n, d)`` in ``x1`` under the model's coupling."""
        paired = bool(batch.get("paired", False))
        if self.coupling == "paired":
            if not paired:
                raise ValueError(
                    "coupling='paired' needs paired data: fit with a pair_key (an obs column "
                    "of pair ids shared by an initial and a final cell)"
                )
            return x1
        if self.coupling == "exact":
            from bioflow.core.couplings import ExactOTCoupling

            ot = ExactOTCoupling()
            return torch.stack([ot(a, b, generator).x1 for a, b in zip(x0, x1, strict=True)])
        if paired:  # independent coupling on paired data: break the pairs
            perm = torch.stack(
                [torch.randperm(x1.shape[1], generator=generator) for _ in range(x1.shape[0])]
            ).to(x1.device)
            return torch.gather(x1, 1, perm[..., None].expand_as(x1))
        return x1

    def compute_loss(self, batch: dict) -> LossOutput:
        x0, x1 = batch["x0"], batch["x1"]
        n_pop, n_cells, d = x0.shape
        cpu_gen, dev_gen = batch_generators(batch, x0.device)
        x1 = self._pairs(x0, x1, batch, cpu_gen)
        alternating = self.training_scheme == "alternating" and self.encoder is not None
        # alternating (reference scheme): even steps train the field with the embedding
        # fixed, odd steps train the encoder (the field's gradients are dropped)
        self._encoder_step = alternating and self.training and self.global_step % 2 == 1
        graphs = batch.get("src_nbrs")
        if graphs is not None and self.encoder is not None:
            if any(getattr(g, "k", self.encoder.k) != self.encoder.k for g in graphs):
                if not self._warned_k:
                    warnings.warn(
                        f"the data's cached kNN graphs do not use the encoder's k="
                        f"{self.encoder.k} (set the DataModule's knn_k to the model's k); "
                        "building graphs in every step instead",
                        UserWarning,
                        stacklevel=2,
                    )
                    self._warned_k = True
                graphs = None
        cvec = self.condition_vector(
            n_pop,
            cells=batch.get("src"),
            condition=batch.get("cond"),
            population=batch.get("pop"),
            seed=None if batch.get("seed") is None else int(batch["seed"]),
            neighbours=graphs,
            extra=batch.get("src_extra"),
            grad_encoder=not alternating or self._encoder_step or not self.training,
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

    def on_after_backward(self) -> None:
        if self._encoder_step:
            for p in self.net.parameters():
                p.grad = None

    def _predict_batch(self, batch: dict) -> Tensor:
        cond = batch.get("cond")
        pop = batch.get("pop")
        return self.predict(
            batch["x0"],
            condition=None if cond is None or not self.n_conditions else int(cond[0]),
            population=None if pop is None or int(pop[0]) < 0 else int(pop[0]),
            embed_extra=batch.get("src_extra"),
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
        embed_extra: Tensor | None = None,
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
        embed_extra
            Encoder features of the embedded cells ``(n, n_encoder_features)`` (models
            fitted with an ``encoder_key``).
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
        cells, extra = None, None
        if self.method == "mfm":
            cells = [x0 if embed_from is None else torch.as_tensor(embed_from).float()]
            if self.n_encoder_features:
                if embed_extra is None:
                    raise ValueError(
                        f"this model's encoder takes {self.n_encoder_features} per-cell "
                        "features (its encoder_key): pass embed_extra"
                    )
                extra = [torch.as_tensor(embed_extra).float()]
        pop = None if population is None else torch.tensor([population])
        cnd = None if condition is None else torch.tensor([condition])
        if cnd is not None and not 0 <= int(condition) < self.n_conditions:
            raise ValueError(
                f"condition index {condition} is not one of the {self.n_conditions} "
                "treatments the model was trained on"
            )
        cvec = self.condition_vector(1, cells=cells, condition=cnd, population=pop, extra=extra)
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
