"""Command line: ``bioflow fit|validate|test|predict --config configs/<name>.yaml``.

Any :class:`~bioflow.models.base.FlowMatchingModule` and any LightningDataModule can be
named by ``class_path``.  The DataModule's ``data_spec`` (data description: dimensions, time
labels, alphabet...) is linked into the model's ``data_spec`` after the DataModule is
built, so configs never repeat data dimensions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path

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

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        sub = self.config.get("subcommand")
        if sub == "predict":
            # predictions go where --data.predict_output says; no new runs/.../version_N
            self.config[sub]["trainer"]["logger"] = False
            self.save_config_callback = None  # nor a config.yaml in the working directory

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            add_tensorboard(trainer)

    def before_fit(self) -> None:
        # the coupling reaches the loader workers by this explicit call (see tl._train.connect)
        connect(self.model, self.datamodule)
        use_fit_progress_bar(self.trainer)
        print(f"bioflow: run directory {run_directory(self.trainer)}", flush=True)

    def after_fit(self) -> None:
        where = run_directory(self.trainer)
        ckpt = getattr(self.trainer.checkpoint_callback, "dirpath", None)
        extra = f" (checkpoints in {ckpt})" if ckpt else ""
        print(
            f"bioflow: finished at step {self.trainer.global_step}; run directory {where}{extra}",
            flush=True,
        )

    def before_predict(self) -> None:
        if not any(isinstance(c, PredictionWriter) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(PredictionWriter())


def run_directory(trainer: L.Trainer) -> str:
    """Where a run writes its logs and checkpoints (the logger's folder, else the root)."""
    logger = trainer.logger
    if logger is not None and getattr(logger, "log_dir", None):
        return os.fspath(logger.log_dir)
    return os.fspath(trainer.default_root_dir)


def use_fit_progress_bar(trainer: L.Trainer) -> bool:
    """Swap Lightning's per-epoch bar for one bar over the whole fit (steps, loss, ETA).

    Returns whether the bar was swapped (not when the progress bar is disabled or custom).
    """
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    from bioflow.tl._progress import FitProgressBar

    for i, cb in enumerate(trainer.callbacks):
        if type(cb) in (TQDMProgressBar, RichProgressBar):  # Lightning's defaults
            trainer.callbacks[i] = FitProgressBar()
            return True
    return False


SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _configs_dir() -> Path | None:
    for d in (Path.cwd() / "configs", Path(__file__).resolve().parents[1] / "configs"):
        if d.is_dir() and any(d.glob("*.yaml")):
            return d
    return None


def short_help(subcommand: str) -> str:
    """The text of ``bioflow <subcommand> --help``: usage and one line per shipped config."""
    lines = [
        f"usage: bioflow {subcommand} --config CONFIG.yaml [--section.key VALUE ...]",
        "",
        "Every setting lives in a YAML config (model, data, trainer); override any of them",
        "on the command line, e.g. --trainer.max_steps 500 --data.init_args.batch_size 128.",
        f"  bioflow {subcommand} --config C.yaml --print_config   the full resolved config",
        f"  bioflow {subcommand} --help-all                      every option (long)",
        "",
    ]
    d = _configs_dir()
    if d is None:
        lines.append("configs: see the configs/ folder of the bioflow repository")
        return "\n".join(lines)
    lines.append(f"configs ({d}):")
    for cfg in sorted(d.glob("*.yaml")):
        first = cfg.read_text().splitlines()[:1]
        text = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
        lines.append(f"  {cfg.name:<26} {text[:90]}")
    return "\n".join(lines)


def config_error_message(err: Exception) -> str | None:
    """A one-paragraph message for a jsonargparse error that would dump a Namespace.

    Returns ``None`` for errors without such a dump (they are re-raised unchanged).
    """
    text = str(err)
    if "Namespace(" not in text:
        return None
    section = re.search(r"class_path='([\w.]+)'", text)
    reasons = [
        line.strip()[2:]
        for line in text.split("Errors:", 1)[-1].splitlines()
        if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    where = f" in {section.group(1)}" if section else ""
    body = "; ".join(reasons) or text.split("\n", 1)[0]
    return f"configuration error{where}: {body}"


@contextlib.contextmanager
def _quiet_cli():
    """No seed/GPU/TPU banners, litlogger advert or deprecation warnings (this call only)."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for pattern in (
                ".*LeafSpec.*",
                ".*args parameter is intended.*",
                ".*does not have many workers.*",
                ".*GPU available but not used.*",
                ".*Couldn't infer the batch.*",
            ):
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``bioflow`` console script.

    ``bioflow fit --help`` prints a short usage with one line per config in ``configs/``
    (``--help-all`` prints every option); ``fit`` prints its run directory when it starts
    and ends; a bad setting ends in one message naming it (a ``ValueError`` when called
    from Python, exit status 2 from the console).

    Examples
    --------
    >>> from bioflow.cli import main
    >>> main(["fit", "--config", "configs/cells_simulated.yaml"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in SUBCOMMANDS and len(argv) >= 2:
        if argv[1:] in (["-h"], ["--help"]):
            print(short_help(argv[0]))
            if args is None:
                sys.exit(0)
            return
        argv = ["--help" if a == "--help-all" else a for a in argv]
        if args is None:
            sys.argv[1:] = argv
    try:
        with _quiet_cli():
            BioflowCLI(
                FlowMatchingModule,
                L.LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                # from the console LightningCLI reads sys.argv itself (passing it again
                # only draws its "args parameter" warning)
                args=argv if args is not None else None,
                auto_configure_optimizers=False,
            )
    except ValueError as err:
        msg = config_error_message(err)
        if msg is None:
            raise
        if args is None:
            print(f"bioflow: {msg}", file=sys.stderr)
            sys.exit(2)
        raise ValueError(msg) from None


if __name__ == "__main__":
    main()
