"""Sequence tools: fit a sequence flow (discrete flow matching or Gumbel-Softmax), sample
(optionally with STGFlow guidance), fit a classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bioflow.data.sequences import SequenceDataModule, load_sequences, resolve_alphabet
from bioflow.models.discrete import DiscreteFlow
from bioflow.models.sequence import SEQUENCE_OBJECTIVES, SequenceFlow, SequencePredictor
from bioflow.tl._train import check_validation, fit_model

#: training methods of :func:`fit_sequence_flow`, the default first
SEQUENCE_METHODS = ("dfm-masked", "dfm-uniform", "gsfm")


def fit_sequence_flow(
    sequences: Sequence[str] | str,
    *,
    alphabet: str = "dna",
    method: str = "dfm-masked",
    objective: str = "flow",
    max_steps: int = 2000,
    batch_size: int = 128,
    seed: int = 0,
    validation_fraction: float = 0.0,
    early_stopping: bool | int = False,
    model_kwargs: dict | None = None,
    **trainer_kwargs: Any,
) -> DiscreteFlow | SequenceFlow:
    """Train a generative flow on equal-length sequences.

    Parameters
    ----------
    sequences
        List of strings or a FASTA path.
    alphabet
        ``"dna"``, ``"protein"`` or a string of letters.
    method
        ``"dfm-masked"`` (default): discrete flow matching with a masked source
        (:class:`~bioflow.models.DiscreteFlow`); it learns the joint law of the sequences
        and its default sampler draws from it.  ``"dfm-uniform"``: discrete flow matching
        with a uniform source (every intermediate state is a valid sequence).  ``"gsfm"``:
        Gumbel-Softmax flow matching on the simplex (:class:`~bioflow.models.SequenceFlow`).
    objective
        ``"gsfm"`` only: ``"flow"`` (cross-entropy) or ``"score"`` (Gumbel-softmax score
        matching).
    max_steps, batch_size, seed
        Training settings.  The default suits short runs; rare long-range patterns need
        many more steps (on the Markov + motif task of ``benchmarks/sequences.py`` a
        planted 6-letter motif is still under-produced after 1500 steps, and is within
        0.015 of the data's share on both of two seeds after 10000).
    validation_fraction
        Share of the sequences held out of training; every 100 steps the loss on them and
        the marginal KL / 3-mer distance of fresh samples to them are recorded
        (``val/loss``, ``val/kl``, ``val/kmer3`` in ``model.history``).
    early_stopping
        Stop when ``val/loss`` has not improved for this many validations (``True``: 3);
        needs ``validation_fraction > 0``.
    model_kwargs
        Extra arguments of the model (``backbone``, ``hidden``, ``n_layers``, ``lr``, ...;
        ``exponent`` and ``loss`` for the discrete flows, ``tau_max``, ``lam``, ``beta`` for
        GSFM).
    **trainer_kwargs
        Passed to :class:`lightning.Trainer`.
        ``compile=True`` compiles the networks with :func:`torch.compile` (a dict gives its
        options) and ``precision=`` sets Lightning's precision (e.g. ``"bf16-mixed"``).

    Returns
    -------
    DiscreteFlow or SequenceFlow
        The trained model in eval mode.

    Examples
    --------
    >>> import bioflow
    >>> seqs, _ = bioflow.datasets.motif_sequences(200, length=20)
    >>> model = bioflow.tl.fit_sequence_flow(seqs, max_steps=5, model_kwargs={"hidden": 16},
    ...                                      enable_progress_bar=False)
    >>> model.alphabet, model.seq_len
    ('ACGT', 20)
    """
    if method not in SEQUENCE_METHODS:
        raise ValueError(f"method must be one of {SEQUENCE_METHODS}, got {method!r}")
    if objective not in SEQUENCE_OBJECTIVES:
        raise ValueError(f"objective must be one of {SEQUENCE_OBJECTIVES}, got {objective!r}")
    if method != "gsfm" and objective != "flow":
        raise ValueError(f"objective={objective!r} applies to method='gsfm' only, not {method!r}")
    patience = check_validation(validation_fraction, early_stopping)
    letters = resolve_alphabet(alphabet)
    dm = SequenceDataModule(
        sequences, letters, batch_size=batch_size, seed=seed, val_fraction=validation_fraction
    )
    kwargs = dict(model_kwargs or {})
    if letters == resolve_alphabet("protein"):
        kwargs.setdefault("backbone", "transformer")
    if method == "gsfm":

        def build():
            return SequenceFlow(letters, dm.seq_len, objective=objective, **kwargs)
    else:
        source = "mask" if method == "dfm-masked" else "uniform"

        def build():
            return DiscreteFlow(letters, dm.seq_len, source=source, **kwargs)

    return fit_model(
        build,
        dm,
        max_steps=max_steps,
        seed=seed,
        trainer_kwargs=trainer_kwargs,
        validate=validation_fraction > 0,
        monitor="val/loss",
        patience=patience,
    )


def sample_sequences(
    model: DiscreteFlow | SequenceFlow,
    n: int,
    *,
    steps: int = 100,
    guidance: SequencePredictor | Callable | None = None,
    guidance_scale: float = 1.0,
    n_guidance_samples: int = 8,
    guidance_target: int = 1,
    method: str | None = None,
    seed: int = 0,
) -> list[str]:
    """Generate ``n`` sequences, optionally with STGFlow guidance.

    Guidance has one meaning for every model and sampler: with a reward ``f`` (a
    classifier's log-probability of ``guidance_target``, a regressor's output, or any
    callable) and ``gamma = guidance_scale`` the target law is ``p(x) exp(gamma f(x))``.
    ``gamma = 0`` is the model's own law, ``gamma = 1`` with a classifier's
    log-probability of class ``y`` is ``p(x | y)`` (the principled value), larger values
    sharpen the tilt toward high rewards (less diversity).  Each sampler step tilts the
    model's clean-letter posterior by ``gamma`` times the straight-through gradient of ``f``
    (a first-order tilt), and the discrete samplers correct it by importance resampling.

    Parameters
    ----------
    model
        A trained :class:`~bioflow.models.DiscreteFlow` or
        :class:`~bioflow.models.SequenceFlow`.
    n
        Number of sequences.
    steps
        Sampler steps from ``t = 0`` to ``1``.
    guidance
        A :class:`~bioflow.models.SequencePredictor` (rewarding the log-probability of class
        ``guidance_target``, or output ``guidance_target`` for regressors) or a callable
        mapping one-hot sequences ``(m, L, K)`` to rewards ``(m,)``.  Works with every
        sampler.
    guidance_scale
        ``gamma >= 0``, the exponent of the tilt ``p(x) exp(gamma f(x))`` (see above).
    n_guidance_samples
        Hard samples ``M`` per step that estimate the gradient (and the candidates of the
        importance resampling).
    guidance_target
        Class (or output) rewarded when ``guidance`` is a predictor.
    method
        The sampler; ``None``: the model's default (``model.samplers[0]``).
        :class:`~bioflow.models.DiscreteFlow`: ``"stratified"`` (masked source, default),
        ``"corrected"`` (masked source: stratified, then single-site Gibbs moves with the
        network calls left over when ``steps > L``) or ``"jump"``;
        :class:`~bioflow.models.SequenceFlow`: its samplers (see
        :meth:`~bioflow.models.SequenceFlow.sample_simplex`).
    seed
        Random seed.

    Returns
    -------
    list[str]
        ``n`` sequences of the model's length over its alphabet.

    Examples
    --------
    >>> import bioflow
    >>> seqs, labels = bioflow.datasets.motif_sequences(200, length=12)
    >>> model = bioflow.tl.fit_sequence_flow(seqs, max_steps=5, model_kwargs={"hidden": 16},
    ...                                      enable_progress_bar=False)
    >>> designs = bioflow.tl.sample_sequences(model, 10, steps=20)
    >>> len(designs), len(designs[0])
    (10, 12)
    >>> clf = bioflow.tl.fit_sequence_classifier(seqs, labels, max_steps=5,
    ...                                          enable_progress_bar=False)
    >>> guided = bioflow.tl.sample_sequences(model, 10, steps=20, guidance=clf,
    ...                                      guidance_scale=2.0)
    >>> len(guided)
    10
    """
    if not isinstance(model, (DiscreteFlow, SequenceFlow)):
        raise ValueError(
            f"model must be a DiscreteFlow or SequenceFlow, got {type(model).__name__}"
        )
    method = model.samplers[0] if method is None else method
    if method not in model.samplers:
        raise ValueError(f"method must be one of {model.samplers}, got {method!r}")
    reward = None
    if isinstance(guidance, SequencePredictor):
        if guidance.alphabet != model.alphabet:
            raise ValueError(
                f"guidance alphabet {guidance.alphabet!r} differs from the model's "
                f"{model.alphabet!r}"
            )
        n_out = guidance.hparams.n_outputs
        if not 0 <= guidance_target < n_out:
            raise ValueError(
                f"guidance_target must be in [0, {n_out}) for this predictor, got {guidance_target}"
            )
        guidance.eval()
        reward = guidance.reward(guidance_target)
    elif guidance is not None:
        if not callable(guidance):
            raise ValueError("guidance must be a SequencePredictor or a callable")
        reward = guidance
    g = torch.Generator(device=model.device).manual_seed(seed)
    model.eval()
    x = model.sample_simplex(
        n,
        steps=steps,
        guidance=reward,
        guidance_scale=guidance_scale,
        n_guidance_samples=n_guidance_samples,
        generator=g,
        method=method,
    )
    return model.decode(x)


def fit_sequence_classifier(
    sequences: Sequence[str] | str,
    targets,
    *,
    alphabet: str = "dna",
    task: str = "classification",
    max_steps: int = 500,
    batch_size: int = 128,
    seed: int = 0,
    validation_fraction: float = 0.0,
    early_stopping: bool | int = False,
    model_kwargs: dict | None = None,
    **trainer_kwargs: Any,
) -> SequencePredictor:
    """Train a CNN classifier (or regressor) on one-hot sequences, e.g. for guidance.

    Parameters
    ----------
    sequences
        List of strings or a FASTA path.
    targets
        Class labels ``(n,)`` (integers from 0) or values ``(n,)`` / ``(n, d)``.
    alphabet
        ``"dna"``, ``"protein"`` or letters.
    task
        ``"classification"`` or ``"regression"``.
    max_steps, batch_size, seed, model_kwargs, **trainer_kwargs
        Training settings.
    validation_fraction
        Share of the sequences held out of training; their loss (and accuracy) every 100
        steps goes to ``model.history`` (``val/loss``...).
    early_stopping
        Stop when ``val/loss`` has not improved for this many validations (``True``: 3);
        needs ``validation_fraction > 0``.

    Returns
    -------
    SequencePredictor
        The trained predictor in eval mode; ``clf(onehot)`` maps ``(n, L, K)`` one-hot
        sequences to ``(n, n_outputs)`` outputs.

    Examples
    --------
    >>> import bioflow
    >>> seqs, y = bioflow.datasets.motif_sequences(200, length=20)
    >>> clf = bioflow.tl.fit_sequence_classifier(seqs, y, max_steps=5,
    ...                                          enable_progress_bar=False)
    >>> clf.task
    'classification'
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    patience = check_validation(validation_fraction, early_stopping)
    letters = resolve_alphabet(alphabet)
    seqs, _ = load_sequences(sequences)
    y = np.asarray(targets)
    if y.shape[0] != len(seqs):
        raise ValueError(f"targets has {y.shape[0]} entries for {len(seqs)} sequences")
    if task == "classification":
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or y.min() < 0:
            raise ValueError("classification targets must be non-negative integer labels (n,)")
        n_out = int(y.max()) + 1
        y_t = y.astype(np.int64)
    else:
        y_t = y.astype(np.float32).reshape(len(seqs), -1)
        n_out = y_t.shape[1]
        if not np.isfinite(y_t).all():
            raise ValueError("regression targets contain non-finite values")
    dm = SequenceDataModule(
        seqs,
        letters,
        batch_size=batch_size,
        targets=y_t,
        seed=seed,
        val_fraction=validation_fraction,
    )
    return fit_model(
        lambda: SequencePredictor(letters, n_outputs=n_out, task=task, **(model_kwargs or {})),
        dm,
        max_steps=max_steps,
        seed=seed,
        trainer_kwargs=trainer_kwargs,
        validate=validation_fraction > 0,
        monitor="val/loss",
        patience=patience,
    )
