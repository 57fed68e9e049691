"""Training helpers shared by the ``tl.fit_*`` functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar

from bioflow.tl._progress import FitProgressBar, HistoryRecorder, history_frame, quiet_fit


def check_validation(validation_fraction: float, early_stopping: bool | int) -> int:
    """Validate the ``validation_fraction`` / ``early_stopping`` pair of a ``tl.fit_*``.

    Returns
    -------
    int
        Early-stopping patience in validations (0: no early stopping).
    """
    if not 0.0 <= float(validation_fraction) < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if isinstance(early_stopping, bool):
        patience = 3 if early_stopping else 0
    elif isinstance(early_stopping, int) and early_stopping >= 1:
        patience = early_stopping
    else:
        raise ValueError(
            f"early_stopping must be True/False or a patience >= 1, got {early_stopping!r}"
        )
    if patience and validation_fraction == 0:
        raise ValueError(
            "early_stopping needs held-out data: pass validation_fraction > 0 (e.g. 0.1)"
        )
    return patience


def make_trainer(
    max_steps: int,
    seed: int,
    *,
    validate: bool = False,
    monitor: str = "val/loss",
    patience: int = 0,
    history_every: int = 10,
    compile: bool | dict = False,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """A Lightning Trainer with quiet defaults for interactive fitting.

    ``trainer_kwargs`` override the defaults (no logger, no checkpoints, one CPU or GPU
    device, one progress bar over the whole fit).  With ``validate`` the validation loop
    runs every epoch of the data stream; ``patience > 0`` adds early stopping on
    ``monitor``.  The trainer carries a :class:`~bioflow.tl._progress.HistoryRecorder`
    as ``trainer.bioflow_history``; :func:`run_fit` turns it into ``model.history``.
    ``precision=`` (e.g. ``"bf16-mixed"``) goes straight to Lightning; ``compile=True`` (or
    a dict of :func:`torch.compile` options) compiles the networks (:class:`CompileNetworks`).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
    history = HistoryRecorder(history_every)
    callbacks.append(history)
    if compile:
        callbacks.append(CompileNetworks(**(compile if isinstance(compile, dict) else {})))
    show_bar = trainer_kwargs.get("enable_progress_bar", True)
    if show_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(FitProgressBar())
    if patience:
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(
            EarlyStopping(
                monitor=monitor, patience=patience, mode="min", check_on_train_epoch_end=False
            )
        )
    defaults: dict[str, Any] = dict(
        max_steps=max_steps,
        max_epochs=-1,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    if not validate:
        defaults["limit_val_batches"] = 0
    defaults.update(trainer_kwargs)
    with quiet_fit():
        L.seed_everything(seed, workers=True, verbose=False)
        trainer = L.Trainer(**defaults)
    trainer.bioflow_history = history
    return trainer


M = TypeVar("M", bound=L.LightningModule)


def fit_model(
    build: Callable[[], M],
    datamodule: L.LightningDataModule,
    *,
    max_steps: int,
    seed: int,
    trainer_kwargs: dict | None = None,
    validate: bool = False,
    monitor: str = "val/loss",
    patience: int = 0,
) -> M:
    """The fit recipe of every ``tl.fit_*``: trainer, seed, build, connect, fit.

    Builds the quiet trainer of :func:`make_trainer` (which seeds everything with
    ``seed``; one progress bar over the fit), builds the model with ``build()`` under
    ``torch.manual_seed(seed)`` without disturbing the caller's random state, wires it to
    ``datamodule`` with :func:`connect`, fits it (Lightning's chatter scoped to the call)
    and returns it in eval mode with ``model.history``.

    Parameters
    ----------
    build
        Zero-argument callable that returns the model.
    datamodule
        The LightningDataModule to fit on.
    max_steps
        Optimiser steps (>= 1).
    seed
        Seed of the trainer, the initialisation and the batches.
    trainer_kwargs
        Overrides of the trainer defaults (``accelerator``, ``logger``, ...).
    validate
        Run the DataModule's validation every epoch of its stream.
    monitor, patience
        Early stopping on ``monitor`` after ``patience`` validations without improvement
        (``patience=0``: none).

    Returns
    -------
    lightning.LightningModule
        The fitted model, in eval mode; ``model.history`` is a :class:`pandas.DataFrame`
        of the training loss and validation metrics by step.
    """
    trainer = make_trainer(
        max_steps,
        seed,
        validate=validate,
        monitor=monitor,
        patience=patience,
        **dict(trainer_kwargs or {}),
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build()
    return run_fit(trainer, model, datamodule)


def connect(model, datamodule) -> None:
    """Wire a model to its DataModule before fitting, by explicit calls only.

    A DataModule that offers ``set_pairing`` receives the model's ``loader_pairing`` (a
    :class:`~bioflow.core.couplings.pairing.BatchPairing`: per-interval pairs, chained
    trajectories, bridge pairs or pairs with growth targets), so the (CPU) coupling runs
    in the loader, off the critical path: in its workers (``num_workers > 0``) or, without
    workers, in the thread that prefetches the next batches while the current step runs.
    A DataModule that offers only ``set_coupling`` receives the model's ``coupling``.  The
    coupling's compiled kernel is loaded here, once, before any worker forks.  A
    collective coupling (``collective = True``, e.g.
    :class:`~bioflow.core.couplings.distributed.GlobalCoupling`) stays in the training
    step, where every rank calls it in step.  Models never reach into the DataModule.

    Parameters
    ----------
    model
        A :class:`~bioflow.models.base.FlowMatchingModule`.
    datamodule
        The LightningDataModule it will be fitted on.
    """
    if hasattr(datamodule, "set_pairing") and hasattr(model, "loader_pairing"):
        handoff, offer = datamodule.set_pairing, model.loader_pairing
    elif hasattr(datamodule, "set_coupling"):
        handoff, offer = datamodule.set_coupling, getattr(model, "coupling", None)
        if offer is None:
            return
    else:
        return
    if offer is None or getattr(offer, "collective", False):
        handoff(None)
        return
    offer.warmup()
    handoff(offer)


def run_fit(trainer: L.Trainer, model, datamodule):
    """``trainer.fit`` with Lightning's chatter scoped to the call; sets ``model.history``.

    ``model.history`` is a :class:`pandas.DataFrame` indexed by step with the training
    loss (every few steps) and the validation metrics (``val/...``) when validation ran.
    The model is returned in eval mode.
    """
    connect(model, datamodule)
    with quiet_fit():
        trainer.fit(model, datamodule=datamodule)
    rec = getattr(trainer, "bioflow_history", None)
    model.history = history_frame(rec.rows if rec is not None else [])
    model.eval()
    return model


def record(adata, key_added: str, params: dict) -> None:
    """Record the parameters of a tool run in ``adata.uns["bioflow"][key_added]``."""
    uns = adata.uns.setdefault("bioflow", {})
    uns[key_added] = {k: _plain(v) for k, v in params.items()}


def _plain(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if v is None:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v if isinstance(v, str | int | float | bool) else str(v)


class CompileNetworks(L.Callback):
    """Compile the model's networks with :func:`torch.compile` before fitting.

    Each direct child module with trainable parameters (the vector field, an encoder) is
    compiled in place (:meth:`torch.nn.Module.compile`), so parameter names, checkpoints
    and ``model.save`` files are unchanged.  ``tl.fit_*(..., compile=True)`` adds it; on the
    command line: ``--trainer.callbacks+=bioflow.callbacks.CompileNetworks``.

    Parameters
    ----------
    backend, mode, dynamic, fullgraph
        Passed to :func:`torch.compile` (``backend="eager"`` only traces: a cheap check).

    Examples
    --------
    >>> cb = CompileNetworks(mode="reduce-overhead")
    >>> trainer = lightning.Trainer(callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str = "inductor",
        mode: str | None = None,
        dynamic: bool | None = None,
        fullgraph: bool = False,
    ) -> None:
        super().__init__()
        self.options = dict(backend=backend, mode=mode, dynamic=dynamic, fullgraph=fullgraph)
        self.compiled: list[str] = []

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        for name, child in pl_module.named_children():
            if name not in self.compiled and any(p.requires_grad for p in child.parameters()):
                child.compile(**self.options)
                self.compiled.append(name)
