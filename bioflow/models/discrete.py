"""Discrete flow matching for sequences on mixture paths (Gat et al. 2024; Campbell et al. 2024)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.guidance import STGuidance
from bioflow.core.losses import DISCRETE_LOSSES, mixture_path_loss
from bioflow.core.paths.discrete import (
    DISCRETE_SOURCES,
    MixtureDiscretePath,
    PolynomialScheduler,
    stratified_times,
)
from bioflow.core.solvers.discrete import jump_sample
from bioflow.metrics.sequence import kmer_distance, letter_frequencies, marginal_kl
from bioflow.models.base import FlowMatchingModule, LossOutput, batch_generators, plain_spec
from bioflow.models.sequence import (
    SEQUENCE_BACKBONES,
    _alphabet_and_length,
    check_guidance,
    sequence_backbone,
)


class DiscreteFlow(FlowMatchingModule):
    """Discrete flow matching on sequences: a mixture path, a posterior network, a jump sampler.

    A position of ``x_t`` holds its clean letter with probability ``kappa(t) = t ** exponent``
    and its source symbol otherwise (the mask token ``K`` for ``source="mask"``, a uniform
    letter for ``source="uniform"``).  The network reads the one-hot ``x_t`` (``K + 1``
    channels with the mask, ``K`` without) and the time, and predicts the clean-letter
    posterior ``p_theta(x1_i | x_t)`` at every position; it is trained by cross-entropy (or
    the generalised KL, :func:`~bioflow.core.losses.mixture_path_loss`), with the times of a
    batch spread evenly over ``[0, 1)``
    (:func:`~bioflow.core.paths.discrete.stratified_times`), and sampled with the jump
    sampler (:func:`~bioflow.core.solvers.jump_sample`).

    Which to use: ``source="mask"`` with the ``"stratified"`` sampler is bioflow's default
    sequence model (it learns and samples the joint law of sequences; with an exact
    posterior it is exact once ``steps >= L``).  ``source="uniform"`` keeps every position
    a letter at all times (what some reward models need), at the cost of more steps.

    Parameters
    ----------
    alphabet
        The letters, e.g. ``"ACGT"``.
    seq_len
        Sequence length ``L``.
    source
        ``"mask"`` or ``"uniform"``.
    exponent
        Exponent of the polynomial scheduler ``kappa(t) = t ** exponent``.
    loss
        ``"ce"`` (cross-entropy, default) or ``"gkl"`` (generalised KL).
    backbone
        ``"cnn"`` (dilated 1-D CNN) or ``"transformer"``.
    hidden, n_layers
        Backbone width and depth.
    lr, weight_decay, lr_schedule
        Optimiser settings.
    val_sample_steps
        Sampler steps of the sequences drawn in validation.
    data_spec
        The training data's description (``alphabet``, ``seq_len``; a dict or
        a ``DataSpec`` of the data layer), linked by the CLI.

    Examples
    --------
    >>> import torch
    >>> model = DiscreteFlow("ACGT", seq_len=8, hidden=16, n_layers=2)
    >>> batch = {"tokens": torch.randint(0, 4, (5, 8))}
    >>> model.compute_loss(batch).loss.ndim
    0
    >>> seqs = model.sample(3, steps=4)
    >>> len(seqs), len(seqs[0])
    (3, 8)
    """

    def __init__(
        self,
        alphabet: str | None = None,
        seq_len: int | None = None,
        source: str = "mask",
        exponent: float = 1.0,
        loss: str = "ce",
        backbone: str = "cnn",
        hidden: int = 128,
        n_layers: int = 5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        val_sample_steps: int = 25,
        data_spec: dict | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule)
        data_spec = plain_spec(data_spec)
        alphabet, seq_len = _alphabet_and_length(alphabet, seq_len, data_spec)
        if source not in DISCRETE_SOURCES:
            raise ValueError(f"source must be one of {DISCRETE_SOURCES}, got {source!r}")
        if loss not in DISCRETE_LOSSES:
            raise ValueError(f"loss must be one of {DISCRETE_LOSSES}, got {loss!r}")
        if backbone not in SEQUENCE_BACKBONES:
            raise ValueError(f"backbone must be one of {SEQUENCE_BACKBONES}, got {backbone!r}")
        self.save_hyperparameters()
        self.hparams.update(alphabet=alphabet, seq_len=int(seq_len))
        self.alphabet, self.seq_len, self.loss_kind = alphabet, int(seq_len), loss
        self.val_sample_steps, self.data_spec = val_sample_steps, data_spec
        K = len(alphabet)
        self.path = MixtureDiscretePath(K, source, PolynomialScheduler(exponent))
        S = self.path.n_states
        self.net = sequence_backbone(backbone, S, K, hidden, n_layers, seq_len)

    @property
    def n_letters(self) -> int:
        return len(self.alphabet)

    @property
    def samplers(self) -> tuple[str, ...]:
        """Samplers of :meth:`sample_tokens`, the default first."""
        return ("stratified", "corrected", "jump") if self.path.source == "mask" else ("jump",)

    def forward(self, t: Tensor, x_t: Tensor) -> Tensor:
        """Clean-letter logits ``(n, L, K)`` at times ``t`` ``(n,)``, states ``x_t`` ``(n, L)``."""
        t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device).expand(x_t.shape[0])
        onehot = torch.nn.functional.one_hot(x_t, self.path.n_states).float()
        return self.net(t, onehot)

    def posterior_logits(self, t: Tensor, x_t: Tensor) -> Tensor:
        """Clean-letter logits ``(n, L, K)`` with the known letters of ``x_t`` fixed.

        With the masked source a position that is not masked holds its clean letter, so
        its posterior is that letter (logit 0, others ``-1e4``) whatever the network says;
        guidance then scores candidates that keep every revealed letter.
        """
        logits = self(t, x_t)
        if self.path.mask_token is None:
            return logits
        known = x_t != self.path.mask_token
        fixed = (
            torch.nn.functional.one_hot(x_t.clamp_max(self.n_letters - 1), self.n_letters).to(
                logits
            )
            - 1
        ) * 1e4
        return torch.where(known.unsqueeze(-1), fixed, logits)

    def compute_loss(self, batch: dict) -> LossOutput:
        x1 = batch["tokens"].long()
        _, gen = batch_generators(batch, x1.device)
        x0 = self.path.source_sample(*x1.shape, generator=gen, device=x1.device)
        t = stratified_times(x1.shape[0], generator=gen, device=x1.device)
        ps = self.path.sample(x0, x1, t, generator=gen)
        loss = mixture_path_loss(self(ps.t, ps.x_t), ps, self.path, self.loss_kind)
        return LossOutput(loss, batch_size=x1.shape[0])

    @torch.no_grad()
    def sample_tokens(
        self,
        n: int,
        *,
        steps: int = 100,
        guidance: Callable[[Tensor], Tensor] | None = None,
        guidance_scale: float = 1.0,
        n_guidance_samples: int = 8,
        generator: torch.Generator | None = None,
        batch_size: int = 4096,
        method: str | None = None,
    ) -> Tensor:
        """Sample ``n`` sequences as letter indices ``(n, L)``.

        Parameters
        ----------
        n
            Number of sequences.
        steps
            Jump-sampler steps from ``t = 0`` to ``1``.
        guidance
            STGFlow reward ``f``: maps one-hot sequences ``(m, L, K)`` to rewards ``(m,)``
            (e.g. a classifier's log-probability of the wanted class); ``None``: unguided.
        guidance_scale
            ``gamma >= 0``: the target law is ``p(x) exp(gamma f(x))``.  Every step draws the
            letters from the tilted posterior ``p_theta(x1 | x_t) exp(gamma f(x1))`` (a
            first-order tilt by the straight-through gradient of ``f``, corrected by
            importance resampling: :meth:`~bioflow.core.guidance.STGuidance.draw`).
            ``gamma = 1`` with a classifier's log-probability of class ``y`` targets
            ``p(x | y)``; larger values sharpen it.
        n_guidance_samples
            ``M``, candidates per step of the importance resampling.
        generator
            Random generator.
        batch_size
            Sequences sampled at once.
        method
            ``"stratified"`` (the default with the masked source), ``"corrected"``
            (masked source: stratified, then ``steps - L`` single-site Gibbs moves) or
            ``"jump"`` (see :func:`~bioflow.core.solvers.jump_sample`).

        Returns
        -------
        torch.Tensor
            ``(n, L)`` letter indices (long).
        """
        method = self.samplers[0] if method is None else method
        if method not in self.samplers:
            raise ValueError(f"method must be one of {self.samplers}, got {method!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        draw = None
        if guidance is not None:
            check_guidance(guidance, guidance_scale, n_guidance_samples)
            guide = STGuidance(
                guidance, n_samples=n_guidance_samples, scale=guidance_scale, generator=generator
            )
            draw = guide.draw
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x0 = self.path.source_sample(m, self.seq_len, generator=generator, device=self.device)
            out.append(
                jump_sample(
                    self.posterior_logits,
                    self.path,
                    x0,
                    steps=steps,
                    sampler=method,
                    draw=draw,
                    generator=generator,
                )
            )
        return torch.cat(out)

    def sample_simplex(self, n: int, **kwargs) -> Tensor:
        """One-hot letters ``(n, L, K)``; arguments as in :meth:`sample_tokens`."""
        return torch.nn.functional.one_hot(self.sample_tokens(n, **kwargs), self.n_letters).float()

    def validation_metrics(self, batch: dict) -> dict[str, float]:
        """Loss on held-out sequences, and marginal KL / 3-mer distance of fresh samples."""
        out = {"loss": float(self.compute_loss(batch).loss.detach())}
        ref = batch["tokens"].cpu().numpy()
        g = torch.Generator(device=self.device).manual_seed(int(batch.get("seed", 0)))
        gen = self.sample_tokens(len(ref), steps=self.val_sample_steps, generator=g).cpu().numpy()
        probs = letter_frequencies(ref, self.n_letters, pseudocount=0.5)
        out["kl"] = marginal_kl(gen, probs)
        out["kmer3"] = kmer_distance(gen, ref, self.n_letters, k=min(3, self.seq_len))
        return out

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[str]:
        """``batch["n"]`` sequences sampled in ``batch["steps"]`` steps, seeded by ``"seed"``."""
        g = torch.Generator(device=self.device).manual_seed(int(batch["seed"]))
        return self.sample(int(batch["n"]), steps=int(batch["steps"]), generator=g)

    def decode(self, x: Tensor) -> list[str]:
        """Letters ``(n, L)`` (indices) or one-hot ``(n, L, K)`` as strings."""
        idx = (x.argmax(-1) if x.dim() == 3 else x).cpu().numpy()
        return ["".join(self.alphabet[i] for i in row) for row in idx]

    def sample(self, n: int, **kwargs) -> list[str]:
        """``n`` sequences (strings); keyword arguments as in :meth:`sample_tokens`."""
        return self.decode(self.sample_tokens(n, **kwargs))
