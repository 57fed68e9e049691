"""Lightning callbacks used by the CLI."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from bioflow.tl._train import CompileNetworks  # noqa: F401  (for the CLI)


class PredictionWriter(BasePredictionWriter):
    """Write what ``predict`` returned through the DataModule's ``write_predictions``.

    Each DataModule knows its output format (``.h5ad`` for cells, FASTA for sequences) and
    where to write it (its ``predict_output`` setting), so this callback stays generic.

    Examples
    --------
    >>> trainer = lightning.Trainer(callbacks=[PredictionWriter()])  # doctest: +SKIP
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "write_predictions"):
            raise ValueError("the DataModule has no write_predictions(); cannot save predictions")
        # bioflow's DataModules have one predict loader: ``predictions`` holds one output
        # per batch (a tensor of cells or a list of sequences)
        if trainer.is_global_zero:
            path = dm.write_predictions(predictions)
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
        import os

        import numpy as np

        os.makedirs(self.out_dir, exist_ok=True)
        rows = np.unique(np.concatenate(self._rows)) if self._rows else np.zeros(0, int)
        np.save(os.path.join(self.out_dir, f"rows_rank{trainer.global_rank}.npy"), rows)
