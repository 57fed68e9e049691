"""Training feedback for ``tl.fit_*``: one progress bar per fit, a loss history, quiet logs."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from lightning.pytorch.callbacks import Callback, ProgressBar

# Lightning messages that say nothing useful to someone calling bioflow.tl.fit_*.
_QUIET_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.distributed",
)
_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*IterableDataset.*__len__.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
    ".*GPU available but not used.*",
    ".*Couldn't infer the batch indices.*",
    ".*The number of training batches.*log_every_n_steps.*",
)


@contextlib.contextmanager
def quiet_fit() -> Iterator[None]:
    """Silence Lightning's banners and known-harmless warnings for the duration of a fit.

    Warning filters and logger levels are restored on exit, so nothing outlives the fit.
    """
    levels = {}
    for name in _QUIET_LOGGERS:
        log = logging.getLogger(name)
        levels[name] = log.level
        log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def progress_bar(**kwargs):
    """A tqdm bar: the notebook widget when ipywidgets is installed, else plain text.

    (``tqdm.auto`` without ipywidgets warns and falls back; this skips the warning.)
    """
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(**kwargs)


def _scalar(v: Any) -> float:
    return float(v.item() if hasattr(v, "item") else v)


class FitProgressBar(ProgressBar):
    """One bar over the whole fit: steps done of ``max_steps``, the loss and the ETA.

    Validation runs update the bar's text (``val/...``) instead of opening bars of their
    own.  Examples: ``Trainer(callbacks=[FitProgressBar()])``.

    Parameters
    ----------
    description
        Text before the bar.
    """

    def __init__(self, description: str = "fit") -> None:
        super().__init__()
        self.description = description
        self._enabled = True
        self._bar = None
        self._postfix: dict[str, str] = {}

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self._bar = progress_bar(
            total=total,
            initial=int(trainer.global_step),
            desc=self.description,
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._bar is None:
            return
        self._bar.update(int(trainer.global_step) - self._bar.n)
        loss = trainer.progress_bar_metrics.get("train/loss")
        if loss is not None:
            self._postfix["loss"] = f"{_scalar(loss):.4g}"
        if trainer.global_step % 10 == 0 or trainer.global_step == trainer.max_steps:
            self._bar.set_postfix(self._postfix, refresh=False)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._bar is None:
            return
        for k, v in trainer.callback_metrics.items():
            if k.startswith("val/"):
                self._postfix[k] = f"{_scalar(v):.4g}"
        self._bar.set_postfix(self._postfix)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._bar is not None:
            self._bar.set_postfix(self._postfix)
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)


class HistoryRecorder(Callback):
    """Record the training loss every ``every_n_steps`` steps and every validation's metrics.

    After ``fit`` the rows are in :attr:`rows` (``{"step", "train_loss", "val/...": ...}``);
    :func:`history_frame` turns them into a :class:`pandas.DataFrame`.

    Parameters
    ----------
    every_n_steps
        Interval of the recorded training losses.
    """

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)
        if step % self.every_n_steps and step != trainer.max_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.rows.append({"step": step, "train_loss": _scalar(loss)})

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        vals = {k: _scalar(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if vals:
            self.rows.append({"step": int(trainer.global_step), **vals})


def history_frame(rows: list[dict[str, float]]):
    """One row per recorded step: ``step``, ``train_loss`` and the validation metrics.

    Returns
    -------
    pandas.DataFrame
        Indexed by step; a training loss and a validation at the same step share a row.
    """
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=["train_loss"], index=pd.Index([], name="step"))
    df = pd.DataFrame(rows).groupby("step", sort=True).first()
    cols = ["train_loss"] + sorted(c for c in df.columns if c != "train_loss")
    return df.reindex(columns=[c for c in cols if c in df.columns])
