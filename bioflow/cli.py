"""Command line: ``bioflow fit|validate|test|predict --config configs/<name>.yaml``.

Any :class:`~bioflow.models.base.FlowMatchingModule` and any LightningDataModule can be
named by ``class_path``.  The DataModule's ``data_spec`` (data description: dimensions, time
labels, alphabet...) is linked into the model's ``data_spec`` after the DataModule is
built, so configs never repeat data dimensions.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from bioflow.callbacks import PredictionWriter
from bioflow.models.base import FlowMatchingModule, _read_checkpoint
from bioflow.tl._train import connect


def _data_spec(dm) -> dict | None:
    return getattr(dm, "data_spec", None)


def add_tensorboard(trainer: L.Trainer) -> bool:
    """Log to TensorBoard beside a lone CSV logger, in the same run folder, when installed.

    Returns whether a TensorBoard logger was added (``tensorboard`` or ``tensorboardX``
    importable, and the trainer logs only to CSV).
    """
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        return False
    loggers = trainer.loggers
    if len(loggers) != 1 or not isinstance(loggers[0], CSVLogger):
        return False
    csv = loggers[0]
    tb = TensorBoardLogger(
        save_dir=csv.save_dir, name=csv.name, version=csv.version, default_hp_metric=False
    )
    trainer.loggers = [csv, tb]
    return True


class BioflowCLI(LightningCLI):
    """LightningCLI with bioflow's argument links and defaults."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments(
            "data", "model.init_args.data_spec", compute_fn=_data_spec, apply_on="instantiate"
        )
        # checkpoints: keep the best-by-step one and ``last.ckpt`` (for --ckpt_path resumes)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs", "name": "bioflow"},
                },
            }
        )

    def _parse_ckpt_path(self) -> None:
        # LightningCLI merges the checkpoint's hyper-parameters into the config before any
        # class is built; check first that the file is readable and holds the configured
        # model family, so a wrong --ckpt_path fails with a clear message, not mid-training.
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            ckpt = _read_checkpoint(ckpt_path, "cpu")
            kind = ckpt.get("bioflow_model")
            wanted = str(self.config[sub]["model"]["class_path"]).rsplit(".", 1)[-1]
            if kind is None:
                raise ValueError(f"{ckpt_path!r} is not a bioflow checkpoint")
            if kind != wanted:
                raise ValueError(
                    f"checkpoint {ckpt_path!r} holds a {kind} model, not a {wanted} (the "
                    "model of this config)"
                )
        super()._parse_ckpt_path()

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            add_tensorboard(trainer)

    def before_fit(self) -> None:
        # the coupling reaches the loader workers by this explicit call (see tl._train.connect)
        connect(self.model, self.datamodule)

    def before_predict(self) -> None:
        if not any(isinstance(c, PredictionWriter) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(PredictionWriter())


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``bioflow`` console script.

    Examples
    --------
    >>> from bioflow.cli import main
    >>> main(["fit", "--config", "configs/cells_simulated.yaml"])  # doctest: +SKIP
    """
    BioflowCLI(
        FlowMatchingModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args if args is not None else sys.argv[1:],
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()
