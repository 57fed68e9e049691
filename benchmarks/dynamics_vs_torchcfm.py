"""bioflow vs TorchCFM on the same cell-dynamics task, in the same run.

Prints JSON with, for OT-CFM:
- leave-one-timepoint-out W1 on ``simulated_differentiation`` (X_pca, 10 dims) for bioflow's
  default OT-CFM (``bioflow.tl`` + Lightning, the default interpolant), bioflow's OT-CFM
  with the other interpolant (``"spline"``: chained trajectories, or ``"linear"``:
  interval-wise), the McCann interpolant, and TorchCFM's
  ``ExactOptimalTransportConditionalFlowMatcher`` in a plain PyTorch loop, with the same
  MLP width, steps, batch, learning rate and schedule (bioflow's defaults unless given:
  Adam from 3e-3 with a cosine decay to 0) and ODE solver;
- the fit wall-clock of both for the same number of steps;
- coupling time at batch 128, 512, 1024, 4096 for bioflow's ``ExactOTCoupling`` and
  ``SinkhornCoupling`` against TorchCFM's ``OTPlanSampler`` (exact and sinkhorn).

TorchCFM is installed without its dependencies (torchdyn would pull torchvision and a
multi-GB torch): ``pip install --no-deps torchcfm``.  Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time

import numpy as np
import torch

import bioflow
from bioflow.core import ExactOTCoupling, SinkhornCoupling, integrate
from bioflow.data import read_time_series
from bioflow.metrics import wasserstein
from bioflow.models import CellFlowMatching
from bioflow.tl.dynamics import _fit_series, mccann_interpolant

DEFAULTS = {
    k: v.default
    for k, v in inspect.signature(CellFlowMatching.__init__).parameters.items()
    if k in ("lr", "lr_schedule")
}
DEFAULT_INTERPOLANT = CellFlowMatching(dim=2, method="ot-cfm").interpolant


def torchcfm_fit(series, *, steps, batch_size, width, lr, lr_schedule, sigma, seed):
    """TorchCFM's OT-CFM in a plain loop over all consecutive kept intervals per step."""
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
    from torchcfm.models.models import MLP

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=sigma)
    net = MLP(dim=series.dim, w=width, time_varying=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if lr_schedule == "cosine" else None
    )
    values = series.spec.clock_values
    cells = {k: torch.from_numpy(series.x[series.cells_at(k)]) for k in series.kept}
    intervals = series.intervals()
    t0 = time.perf_counter()
    for _ in range(steps):
        xs, ts, us = [], [], []
        for a, b in intervals:
            x0 = cells[a][rng.choice(len(cells[a]), batch_size, replace=len(cells[a]) < batch_size)]
            x1 = cells[b][rng.choice(len(cells[b]), batch_size, replace=len(cells[b]) < batch_size)]
            s, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            dt = values[b] - values[a]
            xs.append(xt)
            ts.append(values[a] + s * dt)
            us.append(ut / dt)
        xt, t, ut = torch.cat(xs), torch.cat(ts), torch.cat(us)
        loss = ((net(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    seconds = time.perf_counter() - t0

    def velocity(t, x):
        return net(torch.cat([x, t.expand(x.shape[0], 1)], 1))

    return velocity, seconds


def loo(adata, args):
    series = read_time_series(adata, "time", "X_pca")
    labels, values = series.spec.labels, series.spec.clock_values
    rows = []
    for k in range(1, len(labels) - 1):
        sub = read_time_series(adata, "time", "X_pca", exclude_times=(labels[k],))
        x_prev = torch.from_numpy(series.x[series.cells_at(k - 1)])
        x_true = series.x[series.cells_at(k)]
        preds = {}
        other = "linear" if DEFAULT_INTERPOLANT == "spline" else "spline"
        for name, interp in (("bioflow", None), (f"bioflow_{other}", other)):
            t0 = time.perf_counter()
            model = _fit_series(
                sub,
                method="ot-cfm",
                max_steps=args.steps,
                batch_size=args.batch_size,
                seed=args.seed,
                num_workers=0,
                model_kwargs=dict(
                    hidden=(args.width,) * 3,
                    lr=args.lr,
                    lr_schedule=args.lr_schedule,
                    sigma=args.sigma,
                    interpolant=interp,
                ),
                trainer_kwargs=dict(enable_progress_bar=False),
            )
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                preds[name] = (
                    integrate(
                        model.velocity,
                        x_prev,
                        [values[k - 1], values[k]],
                        method="rk4",
                        steps=args.ode_steps,
                    ),
                    seconds,
                )
        bf_pred, bf_seconds = preds["bioflow"]
        frac = (values[k] - values[k - 1]) / (values[k + 1] - values[k - 1])
        mc_pts, mc_w = mccann_interpolant(
            x_prev.numpy(), series.x[series.cells_at(k + 1)], fraction=frac
        )
        velocity, tc_seconds = torchcfm_fit(
            sub,
            steps=args.steps,
            batch_size=args.batch_size,
            width=args.width,
            lr=args.lr,
            lr_schedule=args.lr_schedule,
            sigma=args.sigma,
            seed=args.seed,
        )
        with torch.no_grad():
            tc_pred = integrate(
                velocity, x_prev, [values[k - 1], values[k]], method="rk4", steps=args.ode_steps
            )
        rows.append(
            {
                "held_out": labels[k],
                "bioflow_w1": wasserstein(bf_pred, x_true),
                f"bioflow_{other}_w1": wasserstein(preds[f"bioflow_{other}"][0], x_true),
                "mccann_w1": wasserstein(mc_pts, x_true, x_weights=mc_w, max_points=None),
                "torchcfm_w1": wasserstein(tc_pred, x_true),
                "no_motion_w1": wasserstein(x_prev, x_true),
                "bioflow_fit_s": round(bf_seconds, 2),
                f"bioflow_{other}_fit_s": round(preds[f"bioflow_{other}"][1], 2),
                "torchcfm_fit_s": round(tc_seconds, 2),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def time_call(fn, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def coupling_times(args):
    from torchcfm.optimal_transport import OTPlanSampler

    big = bioflow.datasets.simulated_differentiation(n_cells_per_time=max(args.sizes), seed=1)
    x, t = big.obsm["X_pca"], big.obs["time"].to_numpy()
    rng = np.random.default_rng(0)
    exact, sink = ExactOTCoupling(), SinkhornCoupling(reg=args.reg)
    tc_exact, tc_sink = OTPlanSampler("exact"), OTPlanSampler("sinkhorn", reg=args.reg)
    exact(torch.zeros(3, 2), torch.ones(3, 2))  # compile the numba kernel outside the timing
    out = []
    for n in args.sizes:
        reps = 5 if n <= 1024 else 2
        pairs = [
            (
                torch.from_numpy(x[t == a][rng.choice((t == a).sum(), n, replace=False)]),
                torch.from_numpy(x[t == a + 1][rng.choice((t == a + 1).sum(), n, replace=False)]),
            )
            for a in (0, 1)
        ]
        row = {"batch": n}
        for name, fn in [
            ("bioflow_exact", lambda a, b: exact(a, b)),
            ("torchcfm_exact", lambda a, b: tc_exact.sample_plan(a, b)),
            ("bioflow_sinkhorn", lambda a, b: sink(a, b)),
            ("torchcfm_sinkhorn", lambda a, b: tc_sink.sample_plan(a, b)),
        ]:
            row[name + "_s"] = round(
                statistics.mean(
                    time_call(lambda a=a, b=b, fn=fn: fn(a, b), reps) for a, b in pairs
                ),
                5,
            )
        row["exact_ratio"] = round(row["bioflow_exact_s"] / row["torchcfm_exact_s"], 3)
        row["sinkhorn_ratio"] = round(row["bioflow_sinkhorn_s"] / row["torchcfm_sinkhorn_s"], 3)
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--lr-schedule", default=DEFAULTS["lr_schedule"])
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--ode-steps", type=int, default=20)
    p.add_argument("--n-cells", type=int, default=1000, help="cells per day for the LOO task")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1024, 4096])
    p.add_argument("--reg", type=float, default=0.5, help="Sinkhorn regularisation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-loo", action="store_true")
    p.add_argument("--skip-coupling", action="store_true", help="no coupling timings")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "commit": commit,
        "command": "python " + " ".join(sys.argv),
        "settings": vars(args),
        "default_interpolant": DEFAULT_INTERPOLANT,
        "torch_threads": torch.get_num_threads(),
    }
    result["coupling"] = [] if args.skip_coupling else coupling_times(args)
    if not args.skip_loo:
        adata = bioflow.datasets.simulated_differentiation(
            n_cells_per_time=args.n_cells, seed=args.seed
        )
        rows = loo(adata, args)
        result["leave_one_out"] = rows
        mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "held_out"}
        result["summary"] = {
            **{k: round(v, 4) for k, v in mean.items()},
            "w1_ratio_bioflow_over_torchcfm": round(mean["bioflow_w1"] / mean["torchcfm_w1"], 3),
            "w1_ratio_bioflow_over_mccann": round(mean["bioflow_w1"] / mean["mccann_w1"], 3),
            "fit_time_ratio_bioflow_over_torchcfm": round(
                mean["bioflow_fit_s"] / mean["torchcfm_fit_s"], 3
            ),
            "exact_coupling_ratio_at_1024": next(
                (r["exact_ratio"] for r in result["coupling"] if r["batch"] == 1024), None
            ),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
