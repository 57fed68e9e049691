"""One training step for every model family, optimisers, and save / load."""

from __future__ import annotations

import copy
import math
import os
import pickle
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor

#: marks a file written by ``FlowMatchingModule.save`` (weights only, no training state)
CHECKPOINT_FORMAT = "bioflow-model"
_MODEL_CLASSES: dict[str, type[FlowMatchingModule]] = {}


@dataclass
class LossOutput:
    """A family's loss for one batch.

    Attributes
    ----------
    loss
        Scalar to minimise.
    logs
        Extra scalars to log (floats or 0-d tensors).
    batch_size
        Number of samples behind the loss, for epoch averaging.
    """

    loss: Tensor
    logs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None


class FlowMatchingModule(L.LightningModule):
    """Base LightningModule shared by the model families.

    A family implements :meth:`compute_loss` (and optionally :meth:`validation_metrics`);
    the training step, logging, optimiser, and save / load live here.

    Parameters
    ----------
    lr
        AdamW learning rate.
    weight_decay
        AdamW weight decay.
    lr_schedule
        ``"constant"`` or ``"cosine"`` (decays to 0 at ``trainer.max_steps``).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _MODEL_CLASSES[cls.__name__] = cls

    def __init__(
        self, lr: float = 1e-3, weight_decay: float = 0.0, lr_schedule: str = "constant"
    ) -> None:
        super().__init__()
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
        if not (
            isinstance(weight_decay, int | float)
            and math.isfinite(weight_decay)
            and weight_decay >= 0
        ):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.lr, self.weight_decay, self.lr_schedule = lr, weight_decay, lr_schedule

    # --- hooks for the families -------------------------------------------------------
    def compute_loss(self, batch: Any) -> LossOutput:
        """The family's loss on one training batch."""
        raise NotImplementedError

    def validation_metrics(self, batch: Any) -> dict[str, float]:
        """Metrics on one validation batch (default: the training loss)."""
        out = self.compute_loss(batch)
        return {"loss": float(out.loss)}

    # --- the shared loop -----------------------------------------------------------------
    # On an accelerator the loss is checked for NaN/inf every this many steps (a host sync);
    # the steps in between accumulate the check on the device.  On the CPU: every step.
    finite_check_every: int = 50

    def _check_finite(self, loss: Tensor) -> None:
        bad = ~torch.isfinite(loss.detach())
        if loss.device.type == "cpu":
            if bool(bad):
                raise FloatingPointError(
                    f"non-finite training loss ({float(loss)}) at step {self.global_step}; "
                    "lower the learning rate or check the inputs"
                )
            return
        acc = getattr(self, "_nonfinite", None)
        self._nonfinite = bad if acc is None else acc | bad
        if (self.global_step + 1) % max(1, self.finite_check_every) == 0:
            self._raise_if_nonfinite()

    def _raise_if_nonfinite(self) -> None:
        acc, self._nonfinite = getattr(self, "_nonfinite", None), None
        if acc is not None and bool(acc):
            raise FloatingPointError(
                f"non-finite training loss at or before step {self.global_step} (checked "
                f"every {self.finite_check_every} steps on an accelerator); lower the "
                "learning rate or check the inputs"
            )

    def on_train_end(self) -> None:
        self._raise_if_nonfinite()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        out = self.compute_loss(batch)
        self._check_finite(out.loss)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=out.batch_size)
        for k, v in out.logs.items():
            self.log(f"train/{k}", v, batch_size=out.batch_size)
        return out.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        with torch.inference_mode(False), torch.enable_grad():
            metrics = self.validation_metrics(batch)
        for k, v in metrics.items():
            self.log(f"val/{k}", float(v), prog_bar=k in ("w1", "kl"), batch_size=1, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "constant":
            return opt
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps > 0 else 1000
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["bioflow_model"] = type(self).__name__

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        kind = checkpoint.get("bioflow_model")
        if kind is not None and kind != type(self).__name__:
            raise ValueError(f"this checkpoint holds a {kind} model, not a {type(self).__name__}")

    def save(self, path: str | os.PathLike) -> None:
        """Write the model (hyper-parameters, weights, data description) to ``path``.

        The file is written atomically (a temporary file beside ``path``, fsynced, then
        renamed): a save killed midway leaves the previous file intact.  It loads with
        :meth:`load` / :func:`load_model` and is accepted by ``bioflow predict|validate|test
        --ckpt_path`` (it holds no optimiser state, so ``fit`` cannot resume from it).

        Raises
        ------
        ValueError
            If the folder of ``path`` does not exist or ``path`` is a folder.

        Examples
        --------
        >>> model.save("model.pt")  # doctest: +SKIP
        >>> model = type(model).load("model.pt")  # doctest: +SKIP
        """
        from bioflow.core.files import atomic_open

        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "bioflow_model": type(self).__name__,
            "hyper_parameters": _plain_hparams(self.hparams),
            "state_dict": self.state_dict(),
            "pytorch-lightning_version": L.__version__,
        }
        with atomic_open(path, "wb") as fh:
            torch.save(ckpt, fh)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """Load a model saved by :meth:`save`, or a Lightning ``.ckpt`` (``bioflow fit``).

        Raises
        ------
        ValueError
            If the file is unreadable (truncated, not a checkpoint, needs unpickling), holds
            another model, or its weights do not fit its hyper-parameters.
        """
        ckpt = _read_checkpoint(path, map_location)
        hparams = dict(ckpt.get("hyper_parameters") or {})
        # LightningCLI records how it built the model: drop those keys, keep the arguments
        class_path = hparams.pop("_class_path", None)
        hparams.pop("_instantiator", None)
        kind = ckpt.get("bioflow_model") or (
            str(class_path).rsplit(".", 1)[-1] if class_path else None
        )
        where = os.fspath(path)
        if not kind:
            raise ValueError(f"{where!r} is not a bioflow model checkpoint")
        target = _MODEL_CLASSES.get(kind)
        if target is None:
            raise ValueError(
                f"{where!r} holds a {kind!r} model, which is not a bioflow model class "
                f"(known: {sorted(_MODEL_CLASSES)})"
            )
        if cls is not FlowMatchingModule and not issubclass(target, cls):
            raise ValueError(
                f"{where!r} holds a {kind} model; load it with {kind}.load(...) "
                f"or bioflow.models.load_model(...) rather than {cls.__name__}.load(...)"
            )
        hparams = {k: v for k, v in hparams.items() if not str(k).startswith("_")}
        try:
            model = target(**hparams)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{where!r}: its hyper-parameters do not build a {kind}: {err}"
            ) from err
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise ValueError(
                f"{where!r}: the weights do not match the {kind} its hyper-parameters "
                f"describe ({first[1].strip() if len(first) > 1 else first[0]})"
            ) from err
        model.eval()
        return model


def _plain_hparams(hparams) -> dict:
    return {k: v for k, v in dict(hparams).items() if not str(k).startswith("_")}


def plain_spec(data_spec) -> dict | None:
    """A plain-dict copy of a ``data_spec`` mapping (``None`` stays ``None``).

    Models store it in their hyper-parameters, so checkpoints hold only plain values and
    the caller's object is never shared or modified.

    Raises
    ------
    ValueError
        If ``data_spec`` is neither ``None`` nor a mapping.
    """
    if data_spec is None:
        return None
    if not hasattr(data_spec, "keys"):
        raise ValueError(f"data_spec must be a dict, got {type(data_spec).__name__}")
    return copy.deepcopy({str(k): data_spec[k] for k in data_spec.keys()})


def batch_generators(batch: Any, device: torch.device) -> tuple:
    """CPU and device generators seeded from ``batch["seed"]`` (``(None, None)`` without one).

    Seeding the per-step randomness (couplings, path noise) from the batch makes a resumed
    run draw exactly what an uninterrupted run would.
    """
    seed = batch.get("seed") if isinstance(batch, dict) else None
    if seed is None:
        return None, None
    seed = int(seed)
    cpu = torch.Generator().manual_seed(seed)
    if torch.device(device).type == "cpu":
        return cpu, cpu
    return cpu, torch.Generator(device=device).manual_seed(seed + 1)


def _read_checkpoint(path: str | os.PathLike, map_location) -> dict:
    if not os.path.exists(path):
        raise ValueError(f"no checkpoint at {os.fspath(path)!r}")
    if os.path.isdir(path):
        raise ValueError(f"{os.fspath(path)!r} is a directory, not a checkpoint file")
    # Never unpickle arbitrary objects: a checkpoint is data. Everything bioflow writes
    # (``model.save`` and Lightning's ``.ckpt``) loads with ``weights_only=True``; a file
    # that needs more is refused rather than given the chance to run code.
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not an object reference: damaged or foreign
            raise ValueError(
                f"could not read checkpoint {os.fspath(path)!r} (truncated or not a torch "
                f"checkpoint): {str(err).splitlines()[0][:200]}"
            ) from err
        raise ValueError(
            f"refusing to load {os.fspath(path)!r}: it holds Python objects that only an "
            "unrestricted unpickler can read, and unpickling runs code. bioflow's own files "
            f"never need that; re-save the model with model.save(...). ({err})"
        ) from err
    except Exception as err:
        raise ValueError(
            f"could not read checkpoint {os.fspath(path)!r} (truncated or not a torch "
            f"checkpoint): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{os.fspath(path)!r} is not a bioflow model checkpoint")
    return ckpt


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load any bioflow model from a file written by ``model.save`` or a Lightning ``.ckpt``.

    Examples
    --------
    >>> import bioflow
    >>> model = bioflow.models.load_model("model.pt")  # doctest: +SKIP
    """
    return FlowMatchingModule.load(path, map_location)
