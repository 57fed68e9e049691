"""Training helpers shared by the ``tl.fit_*`` functions."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import lightning as L
import torch


def make_trainer(max_steps: int, seed: int, **trainer_kwargs: Any) -> L.Trainer:
    """A Lightning Trainer with quiet defaults for interactive fitting.

    ``trainer_kwargs`` override the defaults (no logger, no checkpoints, no validation,
    one CPU or GPU device, a progress bar).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    L.seed_everything(seed, workers=True, verbose=False)
    defaults: dict[str, Any] = dict(
        max_steps=max_steps,
        max_epochs=-1,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    defaults.update(trainer_kwargs)
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
        "lightning.fabric.utilities.seed",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*IterableDataset.*__len__.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
    return L.Trainer(**defaults)


M = TypeVar("M", bound=L.LightningModule)


def fit_model(
    build: Callable[[], M],
    datamodule: L.LightningDataModule,
    *,
    max_steps: int,
    seed: int,
    trainer_kwargs: dict | None = None,
) -> M:
    """The fit recipe of every ``tl.fit_*``: trainer, seed, build, connect, fit.

    Builds the quiet trainer of :func:`make_trainer` (which seeds everything with
    ``seed``), builds the model with ``build()`` under ``torch.manual_seed(seed)``
    without disturbing the caller's random state, wires it to ``datamodule`` with
    :func:`connect`, fits it and returns it in eval mode.

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

    Returns
    -------
    lightning.LightningModule
        The fitted model, in eval mode.
    """
    trainer = make_trainer(max_steps, seed, **dict(trainer_kwargs or {}))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build()
    connect(model, datamodule)
    trainer.fit(model, datamodule=datamodule)
    model.eval()
    return model


def connect(model, datamodule) -> None:
    """Wire a model to its DataModule before fitting, by explicit calls only.

    With loader workers (``datamodule.num_workers > 0``) a DataModule that offers
    ``set_coupling`` receives the model's ``coupling``, so the coupling runs in the
    workers and overlaps the training step; otherwise the model couples in its step.
    Models never reach into the DataModule themselves.

    Parameters
    ----------
    model
        A :class:`~bioflow.models.base.FlowMatchingModule`.
    datamodule
        The LightningDataModule it will be fitted on.
    """
    coupling = getattr(model, "coupling", None)
    if (
        coupling is not None
        and hasattr(datamodule, "set_coupling")
        and getattr(datamodule, "num_workers", 0) > 0
    ):
        datamodule.set_coupling(coupling)


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
