"""Command line: ``bioflow fit|validate|test|predict --config configs/<name>.yaml``.

Any :class:`~bioflow.models.base.FlowMatchingModule` and any LightningDataModule can be
named by ``class_path``.  The DataModule's ``data_spec`` (data description: dimensions, time
labels, alphabet...) is linked into the model's ``data_spec`` after the DataModule is
built, so configs never repeat data dimensions.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import lightning as L
from jsonargparse import ActionYesNo
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from bioflow.callbacks import AtomicCheckpointIO, BioflowCheckpoint, PredictionWriter
from bioflow.core.files import check_output_path
from bioflow.models.base import CHECKPOINT_FORMAT, FlowMatchingModule, _read_checkpoint
from bioflow.tl._train import connect

#: subcommands that evaluate a trained model and so need ``--ckpt_path``
NEEDS_CHECKPOINT = ("validate", "test", "predict")


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


def _get(ns, *keys, default=None):
    for k in keys:
        if ns is None:
            return default
        ns = ns.get(k) if hasattr(ns, "get") else getattr(ns, k, None)
    return default if ns is None else ns


def _run_dirs(config) -> tuple[str | None, list[str]]:
    """The logger's run folder root and its ``version_*`` run folders, newest first."""
    trainer = config.get("trainer")
    logger = _get(trainer, "logger")
    if logger in (None, False, True) or not hasattr(logger, "get"):
        root = os.path.join(
            _get(trainer, "default_root_dir", default=os.getcwd()), "lightning_logs"
        )
    else:
        args = _get(logger, "init_args") or {}
        save_dir = _get(args, "save_dir") or _get(args, "root_dir")
        if save_dir is None:
            return None, []
        root = os.path.join(str(save_dir), str(_get(args, "name", default="lightning_logs")))
    runs = [d for d in glob.glob(os.path.join(root, "version_*")) if os.path.isdir(d)]

    def number(d: str) -> int:
        m = re.fullmatch(r"version_(\d+)", os.path.basename(d))
        return int(m.group(1)) if m else -1

    return root, sorted(runs, key=number, reverse=True)


def _same_model(run_dir: str, class_path: str) -> bool:
    """Whether the run in ``run_dir`` trained the model class of this config."""
    import yaml

    cfg_file = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(cfg_file):
        return True  # no saved config: the checkpoint's own family check still applies
    try:
        with open(cfg_file) as fh:
            saved = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError):
        return False
    saved_cls = str(_get(saved, "model", "class_path", default="")).rsplit(".", 1)[-1]
    return saved_cls == class_path.rsplit(".", 1)[-1]


class BioflowCLI(LightningCLI):
    """LightningCLI with bioflow's argument links, defaults and checks.

    Beyond Lightning's behaviour:

    - ``validate``, ``test`` and ``predict`` require ``--ckpt_path`` (a model that was
      never trained is not evaluated silently);
    - ``--ckpt_path last`` resumes the latest run of this config: the newest
      ``<save_dir>/<name>/version_N/checkpoints/last.ckpt`` whose saved ``config.yaml``
      names the same model class (the resumed run logs into a new ``version_N``);
    - ``--ckpt_path`` accepts a ``model.save()`` file for ``validate|test|predict``;
    - ``--trainer.max_steps`` must be >= 1 (or -1 with ``--trainer.max_epochs`` >= 1);
    - ``predict`` refuses to write its output over an input file, or over an existing
      file unless ``--overwrite`` is given;
    - checkpoints are written atomically; SIGTERM / Ctrl-C during ``fit`` save
      ``last.ckpt`` and exit non-zero (143 after SIGTERM, 1 after Ctrl-C).
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments(
            "data", "model.init_args.data_spec", compute_fn=_data_spec, apply_on="instantiate"
        )
        # checkpoints: keep the best-by-step one and ``last.ckpt`` (for --ckpt_path resumes)
        parser.add_lightning_class_args(BioflowCheckpoint, "checkpoint")
        parser.add_argument(
            "--overwrite",
            action=ActionYesNo,
            default=False,
            help="let predict replace an existing output file",
        )
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs", "name": "bioflow"},
                },
            }
        )

    def _check_config(self, sub: str) -> None:
        cfg = self.config[sub]
        trainer = cfg.get("trainer")
        if sub == "fit":
            max_steps = _get(trainer, "max_steps", default=-1)
            max_epochs = _get(trainer, "max_epochs")
            if max_steps == -1:
                if max_epochs is None or max_epochs < 1:
                    raise ValueError(
                        "--trainer.max_steps is -1 (unlimited) and --trainer.max_epochs is "
                        f"{max_epochs}: set --trainer.max_steps to the number of steps (>= 1)"
                    )
            elif max_steps < 1:
                raise ValueError(
                    f"--trainer.max_steps must be >= 1, got {max_steps}: the fit would train "
                    "nothing"
                )
            if max_epochs is not None and max_epochs == 0:
                raise ValueError("--trainer.max_epochs is 0: the fit would train nothing")
        ckpt_path = cfg.get("ckpt_path")
        if sub in NEEDS_CHECKPOINT and not ckpt_path:
            raise ValueError(
                f"{sub} needs --ckpt_path: a checkpoint of a trained model (a .ckpt written "
                "by `bioflow fit`, a model.save() file, or `last` for the latest run of this "
                "config); without one it would evaluate an untrained model"
            )

    def _resolve_last(self, sub: str) -> str:
        cfg = self.config[sub]
        dirpath = _get(cfg, "checkpoint", "dirpath")
        if dirpath:
            found = os.path.join(str(dirpath), "last.ckpt")
            if not os.path.exists(found):
                raise ValueError(f"--ckpt_path last: no last.ckpt in {str(dirpath)!r}")
            return found
        root, runs = _run_dirs(cfg)
        class_path = str(_get(cfg, "model", "class_path", default=""))
        for run in runs:
            found = os.path.join(run, "checkpoints", "last.ckpt")
            if os.path.exists(found) and _same_model(run, class_path):
                return found
        raise ValueError(
            f"--ckpt_path last: no earlier run of this config with a last.ckpt under "
            f"{root!r} (model {class_path.rsplit('.', 1)[-1]}); start without --ckpt_path, "
            "or pass the checkpoint file"
        )

    def _parse_ckpt_path(self) -> None:
        # Runs after parsing, before any class is built: every check here fails in seconds.
        sub = self.config.get("subcommand")
        if not sub:
            return super()._parse_ckpt_path()
        self._check_config(sub)
        ckpt_path = self.config[sub].get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = self._resolve_last(sub)
            self.config[sub]["ckpt_path"] = ckpt_path
        if not ckpt_path or ckpt_path in ("best", "hpc", "registry"):
            return super()._parse_ckpt_path()
        # LightningCLI merges the checkpoint's hyper-parameters into the config before any
        # class is built; check first, with the same safe reader as load_model, that the
        # file is readable and holds the configured model family.
        ckpt = _read_checkpoint(ckpt_path, "cpu")
        kind = ckpt.get("bioflow_model")
        class_path = str(self.config[sub]["model"]["class_path"])
        wanted = class_path.rsplit(".", 1)[-1]
        if kind is None:
            raise ValueError(f"{ckpt_path!r} is not a bioflow checkpoint")
        if kind != wanted:
            raise ValueError(
                f"checkpoint {ckpt_path!r} holds a {kind} model, not a {wanted} (the "
                "model of this config)"
            )
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            return super()._parse_ckpt_path()
        # a model.save() file: weights and hyper-parameters, no training state
        if sub == "fit":
            raise ValueError(
                f"{ckpt_path!r} was written by model.save(): it holds weights only, no "
                "optimiser or step state, so `bioflow fit` cannot resume from it. Resume "
                "from the run's Lightning checkpoint (--ckpt_path runs/<name>/version_N/"
                "checkpoints/last.ckpt, or --ckpt_path last); use this file with "
                "`bioflow predict|validate|test --ckpt_path` or bioflow.models.load_model()"
            )
        hparams = {
            k: v
            for k, v in (ckpt.get("hyper_parameters") or {}).items()
            if not str(k).startswith("_") and k != "data_spec"
        }
        if hparams:
            update = {sub: {"model": {"class_path": class_path, "init_args": hparams}}}
            self.config = self.parser.parse_object(update, self.config)

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
            strategy = trainer.strategy
            if type(strategy.checkpoint_io) is TorchCheckpointIO:
                strategy.checkpoint_io = AtomicCheckpointIO()

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
        sub = self.config.get("subcommand")
        overwrite = bool(self.config[sub].get("overwrite", False)) if sub else False
        dm = self.datamodule
        path = getattr(dm, "predict_output", None)
        if path is not None:
            check_output_path(path, overwrite=overwrite, inputs=getattr(dm, "input_paths", ()))
        if not any(isinstance(c, PredictionWriter) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(PredictionWriter(overwrite=overwrite))


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
    except SIGTERMException:
        # Lightning stops at the end of the step and raises SystemExit with no code (0);
        # a killed job must not look successful.
        print(
            "bioflow: stopped by SIGTERM; last.ckpt saved, resume with --ckpt_path last",
            file=sys.stderr,
        )
        sys.exit(143)
    except KeyboardInterrupt:
        print("bioflow: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
