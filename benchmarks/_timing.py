"""Shared timing helpers of the speed benchmarks (``performance.py``, ``gpu_throughput.py``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import lightning as L
import torch


class StepTimer(L.Callback):
    """Wall-clock between consecutive training batches (data wait + step), in seconds.

    Parameters
    ----------
    out
        Optional JSON file written at the end of fit (rank 0): ``{"steps": [...], "fit_s"}``.
    """

    def __init__(self, out: str | None = None) -> None:
        super().__init__()
        self.out, self.times, self._last = out, [], None
        self.trainer = self.module = None
        self._fit_start = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.trainer, self.module = trainer, pl_module
        self._fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.out and trainer.is_global_zero:
            with open(self.out, "w") as f:
                json.dump({"steps": self.times, "fit_s": time.perf_counter() - self._fit_start}, f)

    def ms_per_step(self, skip: int = 20) -> float:
        """Median ms per step after ``skip`` warm-up steps."""
        return 1e3 * statistics.median(self.times[skip:] or self.times)


def bare_loop_ms(module, dataloader, steps: int, skip: int = 20) -> float:
    """Median ms per step of ``module.compute_loss`` + backward + AdamW in a plain loop.

    Batches come from the same loader (its prefetch thread and coupling included), so the
    difference to :class:`StepTimer` in a Lightning fit is Lightning's own overhead.
    """
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    times, last = [], None
    it = iter(dataloader)
    for _ in range(steps):
        batch = next(it)
        loss = module.compute_loss(batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        now = time.perf_counter()
        if last is not None:
            times.append(now - last)
        last = now
    return 1e3 * statistics.median(times[skip:] or times)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command() -> str:
    return " ".join(["python", *[a if " " not in a else repr(a) for a in sys.argv]])


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
