"""Gumbel-Softmax flow matching for sequences (Tang et al. 2025)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.guidance import STGuidance
from bioflow.core.losses import sequence_cross_entropy
from bioflow.core.paths.simplex import GumbelSoftmaxPath
from bioflow.core.solvers.simplex import gumbel_softmax_ode, renoise_sample
from bioflow.metrics.sequence import kmer_distance, letter_frequencies, marginal_kl
from bioflow.models.base import FlowMatchingModule, LossOutput, batch_generators, plain_spec
from bioflow.nn.sequence import DilatedConvNet, SequenceClassifier, SequenceTransformer

SEQUENCE_OBJECTIVES = ("flow", "score")
SEQUENCE_BACKBONES = ("cnn", "transformer")


class SequenceFlow(FlowMatchingModule):
    """Gumbel-Softmax flow matching on the simplex for sequences of letters.

    The network sees ``x_t`` (as its centred noisy logits ``c(t) log x``, plus ``x``); its
    output plus the exact per-position log-likelihood ``log p_t(x_l | k)`` are the logits of
    the clean-letter posterior ``p_theta``.  The velocity is the path's marginal velocity
    with that posterior (:meth:`~bioflow.core.paths.GumbelSoftmaxPath.model_velocity`),
    integrated by :func:`~bioflow.core.solvers.gumbel_softmax_ode`.

    Parameters
    ----------
    alphabet
        The letters, e.g. ``"ACGT"``; ``K = len(alphabet)``.
    seq_len
        Sequence length ``L``.
    objective
        ``"flow"``: cross-entropy of ``p_theta`` against the clean letters.
        ``"score"``: Gumbel-softmax score matching -- regress the (log-coordinate) score
        of the interpolant ``x * grad log p_t(x_t | k)`` with the mixture
        ``sum_k p_theta,k * score(x_t | k)``; the same ``p_theta`` drives the sampler.
    backbone
        ``"cnn"`` (dilated 1-D CNN) or ``"transformer"``.
    hidden, n_layers
        Backbone width and depth.
    tau_max, lam, beta
        Path parameters (see :class:`~bioflow.core.paths.simplex.GumbelSoftmaxPath`).
    lr, weight_decay, lr_schedule
        Optimiser settings.
    val_sample_steps
        Sampler steps of the sequences drawn in validation.
    data_spec
        ``{"alphabet", "seq_len"}`` of the training data; the CLI links it from the
        DataModule, so ``alphabet`` and ``seq_len`` may be left out.

    Examples
    --------
    >>> import torch
    >>> model = SequenceFlow("ACGT", seq_len=8, hidden=16, n_layers=2)
    >>> batch = {"tokens": torch.randint(0, 4, (5, 8))}
    >>> model.compute_loss(batch).loss.ndim
    0
    >>> len(model.sample(3, steps=5)), model.sample(3, steps=5)[0].__len__()
    (3, 8)
    """

    def __init__(
        self,
        alphabet: str | None = None,
        seq_len: int | None = None,
        objective: str = "flow",
        backbone: str = "cnn",
        hidden: int = 128,
        n_layers: int = 5,
        tau_max: float = 10.0,
        lam: float = 5.0,
        beta: float = 2.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        val_sample_steps: int = 25,
        data_spec: dict | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule)
        data_spec = plain_spec(data_spec)
        alphabet, seq_len = _alphabet_and_length(alphabet, seq_len, data_spec)
        if backbone not in SEQUENCE_BACKBONES:
            raise ValueError(f"backbone must be one of {SEQUENCE_BACKBONES}, got {backbone!r}")
        if objective not in SEQUENCE_OBJECTIVES:
            raise ValueError(f"objective must be one of {SEQUENCE_OBJECTIVES}, got {objective!r}")
        self.save_hyperparameters()
        self.hparams.update(alphabet=alphabet, seq_len=int(seq_len))
        self.alphabet, self.seq_len, self.objective = alphabet, int(seq_len), objective
        self.val_sample_steps, self.data_spec = val_sample_steps, data_spec
        K = len(alphabet)
        self.path = GumbelSoftmaxPath(tau_max, lam, beta)
        self.net = sequence_backbone(backbone, 2 * K, K, hidden, n_layers, seq_len)

    @property
    def n_letters(self) -> int:
        return len(self.alphabet)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Clean-letter logits ``(n, L, K)`` at times ``t`` ``(n,)`` and points ``x``."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        feats = torch.cat([self.path.log_odds_features(x, t), x], dim=-1)
        # exact per-position likelihood + learned log P(k_l | rest): see path.log_likelihood
        return self.net(t, feats) + self.path.log_likelihood(x, t)

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """Model velocity ``(n, L, K)``; sums to zero over the alphabet."""
        p = torch.softmax(self(t, x), dim=-1)
        return self.path.model_velocity(x, p, t)

    def compute_loss(self, batch: dict) -> LossOutput:
        tokens = batch["tokens"].long()
        _, gen = batch_generators(batch, tokens.device)
        ps = self.path.sample(None, tokens, K=self.n_letters, generator=gen)
        logits = self(ps.t, ps.x_t)
        if self.objective == "flow":
            loss = sequence_cross_entropy(logits, tokens)
            return LossOutput(loss, batch_size=tokens.shape[0])
        target = self.path.conditional_score(ps.x_t, tokens, ps.t)
        pred = self.path.score_from_probs(ps.x_t, torch.softmax(logits, -1), ps.t)
        c = (self.path.beta * ps.tau).reshape(-1, 1, 1)  # score scale grows with c*K
        loss = ((pred - target) / (1 + c)).pow(2).sum(-1).mean()
        with torch.no_grad():
            ce = sequence_cross_entropy(logits, tokens)
        return LossOutput(loss, logs={"ce": ce}, batch_size=tokens.shape[0])

    #: samplers of :meth:`sample_simplex`, the default first: the GSFM ODE; ``"renoise"``
    #: only when asked for by name (it does not sample the joint law)
    samplers = ("euler", "renoise")

    @torch.no_grad()
    def sample_simplex(
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
        """Sample ``n`` sequences as points ``(n, L, K)`` on the simplex.

        Parameters
        ----------
        n
            Number of sequences.
        steps
            Sampler steps from ``t = 0`` to ``1``.
        guidance
            STGFlow reward: maps one-hot sequences ``(m, L, K)`` to rewards ``(m,)``
            (e.g. a classifier's log-probability of the wanted class); ``None``: unguided.
        guidance_scale
            ``gamma >= 0``: the target law is ``p(x) exp(gamma f(x))`` (``gamma = 1`` with a
            classifier's log-probability of class ``y``: ``p(x | y)``).  Both samplers tilt
            the clean-letter posterior ``p_theta(x1 | x_t)`` by ``gamma`` times the
            straight-through reward gradient (first order); ``"renoise"`` draws the letters
            of each step from it with an importance correction
            (:meth:`~bioflow.core.guidance.STGuidance.draw`), ``"euler"`` integrates the
            ODE of the tilted posterior (:meth:`~bioflow.core.guidance.STGuidance.tilt`).
        n_guidance_samples
            ``M``, hard sequences drawn per step to estimate the gradient (and, with
            ``"renoise"``, the candidates of the importance resampling).
        generator
            Random generator.
        batch_size
            Sequences integrated at once.
        method
            ``"euler"`` (default, also ``None``): the GSFM ODE
            (:func:`~bioflow.core.solvers.gumbel_softmax_ode`): the path's marginal velocity
            with ``p_theta`` as the clean-letter posterior, integrated from the prior
            ``softmax(g / (beta tau_max))`` to the vertices.  It transports the path's
            marginals, i.e. it is the sampler GSFM is trained for (toy KL:
            ``benchmarks/results/sequences_toy.json``).  ``"renoise"`` (only by name):
            predict-and-renoise -- at each step draw letters ``k ~ p_theta(x_t)``
            independently per position and redraw ``x`` on the path from them with fresh
            Gumbel noise; returns one-hot letters.  It is not a sampler of the joint law:
            every step draws the positions independently, and because the path's temperature
            is an invertible rescaling ``x_t`` carries the same information at every ``t``,
            so more steps only reach the fixed point of a chain of independent per-position
            draws (it keeps per-position letter laws but loses the dependence between
            positions; ``benchmarks/sequences.py --skip-samplers none`` measures it).  For
            sequences whose positions depend on each other use
            :class:`~bioflow.models.DiscreteFlow` (masked source, the default method of
            ``tl.fit_sequence_flow``).

        Returns
        -------
        torch.Tensor
            ``(n, L, K)``: one-hot letters (``"renoise"``) or points on the simplex
            (``"euler"``); decode with :meth:`decode`.
        """
        method = self.samplers[0] if method is None else method
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if method not in self.samplers:
            raise ValueError(f"method must be one of {self.samplers}, got {method!r}")
        guide = None
        if guidance is not None:
            check_guidance(guidance, guidance_scale, n_guidance_samples)
            guide = STGuidance(
                guidance, n_samples=n_guidance_samples, scale=guidance_scale, generator=generator
            )
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x0 = self.path.prior_sample(
                m, self.seq_len, self.n_letters, generator=generator, device=self.device
            )
            if method == "renoise":
                # with guidance, letters come from p_theta(x1 | x_t) exp(gamma f(x1))
                # (first-order tilt, importance-corrected): every step resamples the guided
                # posterior
                draw = None if guide is None else guide.draw
                out.append(
                    renoise_sample(self, self.path, x0, steps=steps, draw=draw, generator=generator)
                )
                continue
            out.append(gumbel_softmax_ode(self._posterior(guide), self.path, x0, steps=steps))
        return torch.cat(out)

    def _posterior(self, guide: STGuidance | None) -> Callable[[Tensor, Tensor], Tensor]:
        """``p(t, x)``: the clean-letter law of the network, tilted by ``guide`` if given."""

        def post(t: Tensor, x: Tensor) -> Tensor:
            logits = self(t.expand(x.shape[0]), x)
            return torch.softmax(logits if guide is None else guide.tilt(logits), -1)

        return post

    def validation_metrics(self, batch: dict) -> dict[str, float]:
        """Loss on held-out sequences, and marginal KL / 3-mer distance of fresh samples."""
        out = {"loss": float(self.compute_loss(batch).loss.detach())}
        ref = batch["tokens"].cpu().numpy()
        g = torch.Generator(device=self.device).manual_seed(int(batch.get("seed", 0)))
        gen = self.sample_simplex(len(ref), steps=self.val_sample_steps, generator=g)
        gen = gen.argmax(-1).cpu().numpy()
        probs = letter_frequencies(ref, self.n_letters, pseudocount=0.5)
        out["kl"] = marginal_kl(gen, probs)
        out["kmer3"] = kmer_distance(gen, ref, self.n_letters, k=min(3, self.seq_len))
        return out

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[str]:
        """``batch["n"]`` sequences sampled in ``batch["steps"]`` steps, seeded by ``"seed"``."""
        g = torch.Generator(device=self.device).manual_seed(int(batch["seed"]))
        return self.sample(int(batch["n"]), steps=int(batch["steps"]), generator=g)

    def decode(self, x: Tensor) -> list[str]:
        """Argmax letters of points ``(n, L, K)`` as strings."""
        idx = x.argmax(-1).cpu().numpy()
        return ["".join(self.alphabet[i] for i in row) for row in idx]

    def sample(self, n: int, **kwargs) -> list[str]:
        """``n`` sequences (strings); keyword arguments as in :meth:`sample_simplex`."""
        return self.decode(self.sample_simplex(n, **kwargs))


def check_guidance(guidance, guidance_scale: float, n_guidance_samples: int) -> None:
    """Refuse a guidance reward that is not callable, ``gamma`` < 0 / NaN / inf, ``M`` < 1."""
    if not callable(guidance):
        raise ValueError(f"guidance must be callable, got {type(guidance).__name__}")
    if not 0 <= guidance_scale < float("inf"):  # also refuses NaN
        raise ValueError(f"guidance_scale must be finite and >= 0, got {guidance_scale}")
    if n_guidance_samples < 1:
        raise ValueError(f"n_guidance_samples must be >= 1, got {n_guidance_samples}")


def _alphabet_and_length(
    alphabet: str | None, seq_len: int | None, data_spec: dict | None
) -> tuple[str, int]:
    spec = data_spec or {}
    if alphabet is None:
        alphabet = spec.get("alphabet")
    elif spec.get("alphabet") not in (None, alphabet):
        raise ValueError(
            f"alphabet {alphabet!r} differs from the data's alphabet {spec['alphabet']!r}"
        )
    if seq_len is None:
        seq_len = spec.get("seq_len")
    elif spec.get("seq_len") not in (None, seq_len):
        raise ValueError(f"seq_len {seq_len} differs from the data's length {spec['seq_len']}")
    if alphabet is None or seq_len is None:
        raise ValueError("SequenceFlow needs `alphabet` and `seq_len` (or a data_spec with both)")
    if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
        raise ValueError(f"alphabet must hold >= 2 distinct letters, got {alphabet!r}")
    return alphabet, int(seq_len)


def sequence_backbone(
    backbone: str, n_in: int, n_letters: int, hidden: int, n_layers: int, seq_len: int
) -> torch.nn.Module:
    """The network of a sequence flow: ``(n, L, n_in)`` features -> ``(n, L, n_letters)`` logits.

    ``"cnn"`` is the dilated CNN (dilations 1, 2, 4, 8, 16, 1 repeated), ``"transformer"``
    a small transformer with ``seq_len`` positions.
    """
    if backbone not in SEQUENCE_BACKBONES:
        raise ValueError(f"backbone must be one of {SEQUENCE_BACKBONES}, got {backbone!r}")
    if backbone == "cnn":
        dil = tuple([1, 2, 4, 8, 16, 1][i % 6] for i in range(n_layers))
        return DilatedConvNet(n_in, n_letters, hidden=hidden, dilations=dil)
    return SequenceTransformer(
        n_in, n_letters, d_model=hidden, n_layers=n_layers, max_len=max(seq_len, 1)
    )


class SequencePredictor(FlowMatchingModule):
    """A CNN classifier / regressor on one-hot sequences, e.g. the reward of STG guidance.

    Parameters
    ----------
    alphabet
        The letters.
    n_outputs
        Number of classes (classification) or targets (regression).
    task
        ``"classification"`` (cross-entropy) or ``"regression"`` (MSE).
    hidden, n_layers
        Width and depth of the CNN.

    Examples
    --------
    >>> import torch
    >>> clf = SequencePredictor("ACGT", n_outputs=2)
    >>> batch = {"onehot": torch.eye(4)[torch.randint(0, 4, (6, 10))],
    ...          "y": torch.randint(0, 2, (6,))}
    >>> clf.compute_loss(batch).loss.ndim
    0
    """

    def __init__(
        self,
        alphabet: str,
        n_outputs: int = 2,
        task: str = "classification",
        hidden: int = 64,
        n_layers: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule)
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.save_hyperparameters()
        self.alphabet, self.task = alphabet, task
        self.net = SequenceClassifier(len(alphabet), n_outputs, hidden=hidden, n_layers=n_layers)

    def forward(self, onehot: Tensor) -> Tensor:
        """Logits (classification) or predictions (regression), ``(n, n_outputs)``."""
        return self.net(onehot)

    def compute_loss(self, batch: dict) -> LossOutput:
        out = self(batch["onehot"].float())
        y = batch["y"]
        if self.task == "classification":
            loss = torch.nn.functional.cross_entropy(out, y.long())
            acc = (out.argmax(-1) == y).float().mean()
            return LossOutput(loss, logs={"acc": acc}, batch_size=y.shape[0])
        loss = torch.nn.functional.mse_loss(out, y.float().reshape(out.shape))
        return LossOutput(loss, batch_size=y.shape[0])

    def reward(self, target: int = 1) -> Callable[[Tensor], Tensor]:
        """A guidance reward: log-probability of class ``target`` (classification) or
        output ``target`` (regression) for one-hot sequences ``(m, L, K)``."""

        def fn(onehot: Tensor) -> Tensor:
            out = self(onehot)
            if self.task == "classification":
                return torch.log_softmax(out, -1)[:, target]
            return out[:, target]

        return fn
