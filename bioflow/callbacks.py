"""Lightning callbacks used by the CLI."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from bioflow.tl._train import CompileNetworks  # noqa: F401  (for the CLI)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes each file atomically in its own folder.

    The checkpoint goes to a temporary file beside its target, is fsynced and renamed over
    the target, so a run killed while saving keeps the previous ``last.ckpt``.  Lightning's
    default writes through a temporary file in ``$TMPDIR``; when that is another
    filesystem (common on clusters) the final move is a copy, and a kill during it leaves a
    truncated or empty checkpoint.  Remote paths (``s3://`` ...) keep Lightning's writer.

    Examples
    --------
    >>> trainer = lightning.Trainer(plugins=[AtomicCheckpointIO()])  # doctest: +SKIP
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(
                f"AtomicCheckpointIO.save_checkpoint takes no storage_options, got "
                f"{storage_options!r}"
            )
        import torch

        from bioflow.core.files import atomic_open

        os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
        with atomic_open(path, "wb") as fh:
            torch.save(checkpoint, fh)


class BioflowCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that also saves when a fit is
    stopped by SIGTERM or Ctrl-C (SIGINT), so the run can resume with ``--ckpt_path last``.

    Other exceptions (a non-finite loss, a bug) save nothing: their weights are suspect.

    Examples
    --------
    >>> trainer = lightning.Trainer(callbacks=[BioflowCheckpoint(save_last=True)])  # doctest: +SKIP
    """

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        if trainer.sanity_checking or self._last_global_step_saved == trainer.global_step:
            return
        monitor_candidates = self._monitor_candidates(trainer)
        if self.save_last:
            self._save_last_checkpoint(trainer, monitor_candidates)
        else:
            self._save_checkpoint(trainer, self.format_checkpoint_name(monitor_candidates))
        self.interrupted_checkpoint = self.last_model_path or self.best_model_path


class PredictionWriter(BasePredictionWriter):
    """Write what ``predict`` returned through the DataModule's ``write_predictions``.

    Each DataModule knows its output format (``.h5ad`` for cells, FASTA for sequences) and
    where to write it (its ``predict_output`` setting), so this callback stays generic.

    Parameters
    ----------
    overwrite
        Replace an existing output file (the CLI's ``--overwrite``); an output that is one
        of the run's input files is refused regardless.

    Examples
    --------
    >>> trainer = lightning.Trainer(callbacks=[PredictionWriter()])  # doctest: +SKIP
    """

    def __init__(self, overwrite: bool = False) -> None:
        super().__init__(write_interval="epoch")
        self.overwrite = overwrite

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "write_predictions"):
            raise ValueError("the DataModule has no write_predictions(); cannot save predictions")
        # bioflow's DataModules have one predict loader: ``predictions`` holds one output
        # per batch (a tensor of cells or a list of sequences)
        if trainer.is_global_zero:
            path = dm.write_predictions(predictions, overwrite=self.overwrite)
            print(f"wrote predictions to {path}")


class SeenCellsRecorder(L.Callback):
    """Record which data rows each rank trained on (batches that carry ``"rows"``).

    At the end of ``fit`` every rank writes ``<out_dir>/rows_rank<r>.npy``: a check that
    DDP ranks drew disjoint cells, and a record of what a run saw.

    Parameters
    ----------
    out_dir
        Folder to write into (created).

    Examples
    --------
    >>> trainer = lightning.Trainer(callbacks=[SeenCellsRecorder("runs/seen")])  # doctest: +SKIP
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self._rows: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if isinstance(batch, dict) and "rows" in batch:
            self._rows.append(batch["rows"].detach().cpu().numpy())

    def on_fit_end(self, trainer, pl_module) -> None:
        import numpy as np

        os.makedirs(self.out_dir, exist_ok=True)
        rows = np.unique(np.concatenate(self._rows)) if self._rows else np.zeros(0, int)
        from bioflow.core.files import atomic_open

        with atomic_open(
            os.path.join(self.out_dir, f"rows_rank{trainer.global_rank}.npy"), "wb"
        ) as fh:
            np.save(fh, rows)
