"""The main job: leave-one-timepoint-out on the built-in differentiation data.

``python -m bioflow.demo --out runs/demo`` (what ``make demo`` runs) fits OT-CFM (the
default: chained trajectories with the spline interpolant, Adam with a cosine decay),
I-CFM, SB-CFM, W-CFM and SF2M with each interior time held out (short fits,
``--max-steps``), prints the table beside the no-motion and McCann baselines, fits the
default on all days with :func:`bioflow.tl.fit_dynamics`' default number of steps
(``--default-steps``), reports where its day-0 cells end (W1 to day 4 and the share of
off-data endpoints), and writes ``metrics.json`` and plots into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bioflow
from bioflow.tl.dynamics import FIT_MAX_STEPS


def run(
    out: str | Path = "runs/demo",
    *,
    n_cells_per_time: int = 400,
    max_steps: int = 600,
    default_steps: int = FIT_MAX_STEPS,
    batch_size: int = 128,
    methods: tuple[str, ...] = ("ot-cfm", "i-cfm", "sb-cfm", "w-cfm", "sf2m"),
    seed: int = 0,
    progress_bar: bool = True,
) -> dict:
    """Run the demo and write ``metrics.json``, ``trajectories.png`` and ``holdout_w1.png``.

    Parameters
    ----------
    out
        Output folder (created).
    n_cells_per_time
        Cells per day of :func:`bioflow.datasets.simulated_differentiation`.
    max_steps
        Training steps of each leave-one-timepoint-out fit (the table).
    default_steps
        Training steps of the default model fitted on all days, whose trajectories and
        endpoints are reported (the default of :func:`bioflow.tl.fit_dynamics`).
    batch_size
        Cells per time point per step, in every fit.
    methods
        CFM variants to evaluate.
    seed
        Seed of data and fits.
    progress_bar
        Show Lightning's progress bar.

    Returns
    -------
    dict
        The content of ``metrics.json``.

    Examples
    --------
    >>> from bioflow.demo import run
    >>> metrics = run("runs/demo", max_steps=50)  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=n_cells_per_time, seed=seed)
    print(f"data: {adata.n_obs} cells x {adata.n_vars} genes, days {sorted(set(adata.obs.time))}")
    fit = dict(max_steps=max_steps, batch_size=batch_size, enable_progress_bar=progress_bar)
    df = bioflow.tl.evaluate_holdout(
        adata, time_key="time", use_rep="X_pca", methods=methods, seeds=(seed,), **fit
    )
    t_eval = time.perf_counter() - t_start
    table = df.pivot_table(index="method", columns="held_out", values="w1")
    table["mean"] = table.mean(axis=1)
    table = table.sort_values("mean")
    print("\nLeave-one-timepoint-out W1 (lower is better):")
    print(table.round(3).to_string())

    model = bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        method="ot-cfm",
        seed=seed,
        **{**fit, "max_steps": default_steps},
    )
    days = sorted(set(adata.obs["time"]))
    grid = [days[0] + (days[-1] - days[0]) * i / 40 for i in range(41)]
    from bioflow.metrics import off_data_fraction, wasserstein

    first, last = (
        (adata.obs["time"] == days[0]).to_numpy(),
        (adata.obs["time"] == days[-1]).to_numpy(),
    )
    end = bioflow.tl.predict_cells(model, adata, source_time=days[0], target_time=days[-1])
    endpoints = {
        "w1_day0_to_last": round(wasserstein(end.obsm["X_pca"], adata.obsm["X_pca"][last]), 4),
        "off_data_share": round(off_data_fraction(end.obsm["X_pca"], adata.obsm["X_pca"][last]), 4),
        "n_cells": int(first.sum()),
    }
    print(
        f"day {days[0]:g} -> {days[-1]:g}: W1 {endpoints['w1_day0_to_last']}, "
        f"off-data endpoints {endpoints['off_data_share']:.1%}"
    )
    bioflow.tl.trajectories(model, adata, times=grid)
    bioflow.pl.trajectories(
        adata, color="branch", starting_at=days[0], save=out / "trajectories.png", show=False
    )
    bioflow.pl.holdout(df, metric="w1", save=out / "holdout_w1.png", show=False)
    model.save(out / "ot_cfm.pt")

    metrics = {
        "dataset": adata.uns["bioflow_dataset"],
        "settings": {
            "max_steps": max_steps,
            "default_steps": default_steps,
            "batch_size": batch_size,
            "methods": list(methods),
        },
        "default_model": {"method": model.method, "interpolant": model.interpolant},
        "endpoints": endpoints,
        "mean_w1": table["mean"].round(4).to_dict(),
        "rows": df.round(5).to_dict(orient="records"),
        "seconds": {
            "evaluate_holdout": round(t_eval, 1),
            "total": round(time.perf_counter() - t_start, 1),
            "cpu_total": round(time.process_time() - cpu_start, 1),
        },
    }
    from bioflow.core.files import atomic_open

    with atomic_open(out / "metrics.json") as fh:
        fh.write(json.dumps(metrics, indent=2))
    print(
        f"\nwrote {out / 'metrics.json'}, {out / 'trajectories.png'}, {out / 'holdout_w1.png'}"
        f" in {metrics['seconds']['total']} s"
    )
    return metrics


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bioflow.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--n-cells", type=int, default=400, help="cells per day")
    p.add_argument(
        "--max-steps", type=int, default=600, help="training steps per leave-one-out fit"
    )
    p.add_argument(
        "--default-steps",
        type=int,
        default=FIT_MAX_STEPS,
        help="training steps of the default model fitted on all days",
    )
    p.add_argument("--batch-size", type=int, default=128, help="cells per day per step")
    p.add_argument(
        "--methods", default="ot-cfm,i-cfm,sb-cfm,w-cfm,sf2m", help="comma-separated CFM variants"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress-bar", action="store_true")
    a = p.parse_args(argv)
    run(
        a.out,
        n_cells_per_time=a.n_cells,
        max_steps=a.max_steps,
        default_steps=a.default_steps,
        batch_size=a.batch_size,
        methods=tuple(m.strip() for m in a.methods.split(",") if m.strip()),
        seed=a.seed,
        progress_bar=not a.no_progress_bar,
    )


if __name__ == "__main__":
    main()
