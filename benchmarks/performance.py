"""Speed of bioflow, measured as ratios inside one run (issue 16); prints one JSON.

Sections (each timing repeated and interleaved with its comparison; medians):

- ``fit_vs_torchcfm``: wall-clock of ``bioflow.tl.fit_dynamics`` (OT-CFM, setup included:
  from the AnnData to the fitted model) over TorchCFM's bare OT-CFM loop (its
  ``ExactOptimalTransportConditionalFlowMatcher``, same 3 x 64 SELU MLP, Adam, same data,
  setup included), on 5 PCs of ``simulated_differentiation`` (5 times, 4 intervals), at
  batch 128 and at batch 1024;
- ``step_ms``: ms per training step of each family through ``tl.fit_*`` (Lightning) and
  in a plain loop over the same model and loader (no Lightning); OT-CFM / I-CFM and
  MFM / FM ratios;
- ``ot_over_icfm``: OT-CFM (the default: chained exact OT, spline) against I-CFM steps
  through ``tl.fit_dynamics``, ``--pair-reps`` interleaved repeats, with the loader
  pairing's own cost;
- ``scaling``: a backed ``.h5ad`` with 10 thousand, 1 million and 10 million cells (5
  dims): time to build one batch and ms per OT-CFM training step;
- ``import_s``: ``import bioflow`` and ``import scanpy`` in fresh processes;
- ``ddp``: the CLI on 1 and 2 CPU processes (gloo), with per-rank and global coupling.

TorchCFM is a benchmark-only peer: ``pip install --no-deps torchcfm``.
Run: ``nice -n 10 python benchmarks/performance.py > benchmarks/results/performance.json``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _timing import StepTimer, bare_loop_ms, command, git_commit, machine  # noqa: E402

import bioflow  # noqa: E402

MLP = dict(hidden=(64, 64, 64), lr=1e-3, sigma=0.1)


def log(*msg) -> None:
    print(*msg, file=sys.stderr, flush=True)


def med(v):
    return float(statistics.median(v))


def cells5(n_cells_per_time: int):
    a = bioflow.datasets.simulated_differentiation(n_cells_per_time=n_cells_per_time, seed=0)
    a.obsm["X5"] = np.ascontiguousarray(a.obsm["X_pca"][:, :5])
    return a


# --- fit wall-clock against TorchCFM's bare loop -------------------------------------------
def bioflow_fit(adata, steps, batch):
    t = time.perf_counter()
    bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X5",
        method="ot-cfm",
        max_steps=steps,
        batch_size=batch,
        model_kwargs=dict(MLP),
        enable_progress_bar=False,
    )
    return time.perf_counter() - t


def torchcfm_fit(adata, steps, batch, seed=0):
    """TorchCFM's OT-CFM in a plain loop over every interval per step (setup included)."""
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
    from torchcfm.models.models import MLP as TorchCFMMLP

    t = time.perf_counter()
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(adata.obsm["X5"], dtype=np.float32))
    times = adata.obs["time"].to_numpy()
    values = np.unique(times)
    cells = [x[np.flatnonzero(times == v)] for v in values]
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=MLP["sigma"])
    net = TorchCFMMLP(dim=x.shape[1], w=64, time_varying=True)
    opt = torch.optim.Adam(net.parameters(), lr=MLP["lr"])
    for _ in range(steps):
        xs, ts, us = [], [], []
        for k in range(len(values) - 1):
            a, b = cells[k], cells[k + 1]
            x0 = a[torch.randint(len(a), (batch,))]
            x1 = b[torch.randint(len(b), (batch,))]
            s, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            dt = float(values[k + 1] - values[k])
            xs.append(xt)
            ts.append(values[k] + s * dt)
            us.append(ut / dt)
        xt, tt, ut = torch.cat(xs), torch.cat(ts).float(), torch.cat(us)
        loss = ((net(torch.cat([xt, tt[:, None]], 1)) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def fit_vs_torchcfm(args):
    adata = cells5(2000)
    bioflow_fit(adata, 10, 128)  # warm-up (imports, kernel load): not counted
    torchcfm_fit(adata, 10, 128)
    out = {}
    for batch, steps, reps in ((128, args.small_steps, args.reps), (1024, args.large_steps, 2)):
        bf, tc = [], []
        for r in range(reps):
            order = (bioflow_fit, torchcfm_fit) if r % 2 == 0 else (torchcfm_fit, bioflow_fit)
            for fn in order:
                s = fn(adata, steps, batch)
                (bf if fn is bioflow_fit else tc).append(s)
            log(f"fit batch {batch}: bioflow {bf[-1]:.1f}s torchcfm {tc[-1]:.1f}s")
        out[f"batch_{batch}"] = {
            "steps": steps,
            "intervals": 4,
            "dims": 5,
            "bioflow_s": [round(v, 2) for v in bf],
            "torchcfm_s": [round(v, 2) for v in tc],
            "ratio_bioflow_over_torchcfm": round(med(bf) / med(tc), 3),
        }
    return out


# --- ms per step, per family, with and without Lightning ------------------------------------
def _timed_fit(fit, steps, **kw):
    timer = StepTimer()
    fit(max_steps=steps, callbacks=[timer], enable_progress_bar=False, **kw)
    with_l = timer.ms_per_step()
    loader = timer.trainer.datamodule.train_dataloader()
    without = bare_loop_ms(timer.module, loader, steps)
    return with_l, without, pairing_ms(timer.module, timer.trainer.datamodule)


def pairing_ms(module, datamodule, n: int = 60, skip: int = 10):
    """Median ms of the model's loader pairing alone on raw batches (``None``: no pairing).

    This is the work the loader's prefetch thread does per batch beside the step; it is
    hidden behind the step only where a core is free for that thread.
    """
    pairing = getattr(module, "loader_pairing", None)
    if pairing is None or not hasattr(datamodule, "make_stream"):
        return None
    stream = datamodule.make_stream()
    stream.pairing = None
    raw = list(stream.batches(0, range(n)))
    times = []
    for batch in raw:
        t = time.perf_counter()
        pairing(batch)
        times.append(time.perf_counter() - t)
    return 1e3 * med(times[skip:])


def step_ms(args):
    torch.manual_seed(0)
    adata = cells5(1000)
    letters = bioflow.datasets.letters("ABCDEFGH", n_rotations=2, n_points=200, seed=0)
    seqs, _ = bioflow.datasets.motif_sequences(512, length=40, seed=0)
    meta_keys = dict(
        population_key="population",
        source_key="state",
        source_value="source",
        use_rep="X_coords",
    )
    meta_kw = dict(width=128, depth=3, embed_dim=16, n_fourier=16)

    def cells(method):
        return lambda **kw: bioflow.tl.fit_dynamics(
            adata,
            time_key="time",
            use_rep="X5",
            method=method,
            batch_size=128,
            model_kwargs=dict(MLP),
            **kw,
        )

    def meta(method):
        return lambda **kw: bioflow.tl.fit_meta_flow(
            letters,
            **meta_keys,
            method=method,
            populations_per_step=4,
            cells_per_population=128,
            model_kwargs=dict(meta_kw),
            **kw,
        )

    def seq(**kw):
        return bioflow.tl.fit_sequence_flow(seqs, batch_size=128, **kw)

    cases = {
        "i-cfm": cells("i-cfm"),
        "ot-cfm": cells("ot-cfm"),
        "sb-cfm": cells("sb-cfm"),
        "w-cfm": cells("w-cfm"),
        "fm": meta("fm"),
        "mfm": meta("mfm"),
        "sequence": seq,
    }
    res = {k: {"lightning": [], "bare": [], "pairing": []} for k in cases}
    for r in range(args.step_reps):
        names = list(cases) if r % 2 == 0 else list(cases)[::-1]
        for name in names:
            w, b, p = _timed_fit(cases[name], args.step_steps)
            res[name]["lightning"].append(w)
            res[name]["bare"].append(b)
            if p is not None:
                res[name]["pairing"].append(p)
            log(f"step {name}: lightning {w:.2f} ms, bare {b:.2f} ms, pairing {p} ms")
    out = {
        k: {"lightning_ms": round(med(v["lightning"]), 3), "bare_ms": round(med(v["bare"]), 3)}
        | ({"loader_pairing_ms": round(med(v["pairing"]), 3)} if v["pairing"] else {})
        for k, v in res.items()
    }
    ot = [a / b for a, b in zip(res["ot-cfm"]["lightning"], res["i-cfm"]["lightning"], strict=True)]
    mfm = [a / b for a, b in zip(res["mfm"]["lightning"], res["fm"]["lightning"], strict=True)]
    out["ratio_ot_cfm_over_i_cfm"] = round(med(ot), 3)
    out["ratio_mfm_over_fm"] = round(med(mfm), 3)
    out["settings"] = {
        "cells": "5 dims, 4 intervals, batch 128 per time, MLP 3 x 64",
        "meta": "letters A-H x 2 rotations, 4 populations x 128 cells per step, width 128",
        "sequence": "512 motif sequences of length 40, batch 128",
        "steps": args.step_steps,
        "median_after": 20,
        "loader_pairing": "the model's loader pairing alone on 50 raw batches (median ms): "
        "the work the prefetch thread does beside each step",
    }
    return out


# --- OT-CFM against I-CFM: the coupling beside the step ------------------------------------
def ot_over_icfm(args):
    """OT-CFM (default: chained exact OT, spline) against I-CFM steps, many interleaved reps."""
    from bioflow.data import CellDynamicsDataModule

    adata = cells5(1000)

    def fit(method):
        timer = StepTimer()
        in_step = method.endswith(" in step")
        # "in step": the loader hand-off refused, so the model pairs in its training step
        refuse = mock.patch.object(CellDynamicsDataModule, "set_pairing", lambda self, p: None)
        with refuse if in_step else contextlib.nullcontext():
            _fit(method.removesuffix(" in step"), timer)
        pair = pairing_ms(timer.module, timer.trainer.datamodule)
        return timer.ms_per_step(), pair, os.getloadavg()[0]

    def _fit(method, timer):
        bioflow.tl.fit_dynamics(
            adata,
            time_key="time",
            use_rep="X5",
            method=method,
            batch_size=128,
            model_kwargs=dict(MLP),
            max_steps=args.pair_steps,
            callbacks=[timer],
            enable_progress_bar=False,
        )

    methods = ("ot-cfm", "i-cfm", "ot-cfm in step")
    fit("ot-cfm"), fit("i-cfm")  # warm-up: not counted
    res = {m: [] for m in methods}
    pair = {m: [] for m in methods[:2]}
    load = []
    for r in range(args.pair_reps):
        for method in methods if r % 2 == 0 else methods[::-1]:
            ms, p, la = fit(method)
            res[method].append(ms)
            if method in pair:
                pair[method].append(p)
            load.append(la)
        log("ot/icfm rep", r, {m: round(v[-1], 2) for m, v in res.items()})
    ratios = [a / b for a, b in zip(res["ot-cfm"], res["i-cfm"], strict=True)]
    in_step = [a / b for a, b in zip(res["ot-cfm in step"], res["i-cfm"], strict=True)]
    return {
        "ot_cfm_ms": [round(v, 3) for v in res["ot-cfm"]],
        "i_cfm_ms": [round(v, 3) for v in res["i-cfm"]],
        "ot_cfm_in_step_ms": [round(v, 3) for v in res["ot-cfm in step"]],
        "ratios": [round(v, 3) for v in ratios],
        "ratio_ot_cfm_over_i_cfm": round(med(ratios), 3),
        "ratio_ot_cfm_in_step_over_i_cfm": round(med(in_step), 3),
        "loader_pairing_ms": {k: round(med(v), 3) for k, v in pair.items()},
        "loadavg_1min": [round(min(load), 2), round(max(load), 2)],
        "settings": f"tl.fit_dynamics, 5 dims, 4 intervals, batch 128 per time, MLP 3 x 64, "
        f"{args.pair_steps} steps, median step after 20; OT-CFM is the default (exact OT "
        "chained across the time course, spline interpolant), paired in the loader thread; "
        "'in step': the same with the loader hand-off refused (the coupling in the step)",
    }


# --- per-step cost against dataset size (backed .h5ad) --------------------------------------
def write_cells(path: Path, n: int, dim: int = 5, n_times: int = 5) -> None:
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.repeat(np.arange(n_times, dtype=np.float64), -(-n // n_times))[:n]
    x = rng.standard_normal((n, dim), dtype=np.float32) + t[:, None].astype(np.float32)
    a = ad.AnnData(obs=pd.DataFrame({"time": t}, index=pd.RangeIndex(n).astype(str)))
    a.obsm["X_pca"] = x
    a.write_h5ad(path)


def scaling(args, tmp: Path):
    import lightning as L

    from bioflow.data import CellDynamicsDataModule
    from bioflow.models import CellFlowMatching

    dms = {}
    for n in args.sizes:
        path = tmp / f"cells_{n}.h5ad"
        t = time.perf_counter()
        write_cells(path, n)
        w = time.perf_counter() - t
        t = time.perf_counter()
        dms[n] = CellDynamicsDataModule(
            str(path),
            time_key="time",
            use_rep="X_pca",
            batch_size=256,
            steps_per_epoch=100,
            backed=True,
        )
        log(f"scaling {n}: wrote {w:.1f}s, opened {time.perf_counter() - t:.1f}s")
    res = {n: {"batch_ms": [], "step_ms": []} for n in args.sizes}
    for r in range(args.reps):
        for n in args.sizes if r % 2 == 0 else args.sizes[::-1]:
            ds = dms[n].train_dataloader().dataset
            # make_batch: the draw and the read only (a pairing runs after it, in batches())
            shard = ds.cached_shard(0, 1)
            times = []
            for i in range(200):
                g = torch.Generator().manual_seed(i)
                t = time.perf_counter()
                ds.make_batch(shard, g)
                times.append(time.perf_counter() - t)
            res[n]["batch_ms"].append(1e3 * med(times))
            timer = StepTimer()
            model = CellFlowMatching(dim=5, method="ot-cfm", **MLP)
            L.Trainer(
                max_steps=args.scaling_steps,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                limit_val_batches=0,
                accelerator="cpu",
                callbacks=[timer],
            ).fit(model, datamodule=dms[n])
            res[n]["step_ms"].append(timer.ms_per_step())
            log(
                f"scaling {n}: batch {res[n]['batch_ms'][-1]:.3f} ms, step "
                f"{res[n]['step_ms'][-1]:.2f} ms"
            )
    out = {
        str(n): {"batch_ms": round(med(v["batch_ms"]), 3), "step_ms": round(med(v["step_ms"]), 3)}
        for n, v in res.items()
    }
    lo, hi = min(args.sizes), max(args.sizes)
    step_ratio = [a / b for a, b in zip(res[hi]["step_ms"], res[lo]["step_ms"], strict=True)]
    out[f"ratio_step_{hi}_over_{lo}"] = round(med(step_ratio), 3)
    out["settings"] = "backed .h5ad (obsm X_pca, 5 dims float32, 5 times), OT-CFM, batch 256"
    return out


# --- import time ----------------------------------------------------------------------------
def import_times(reps: int):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stmts = {
        "bioflow": "import bioflow",
        "scanpy": "import scanpy",
        "bioflow_tl_fit_dynamics": "import bioflow; bioflow.tl.fit_dynamics",
        "python": "pass",
    }
    res = {k: [] for k in stmts}
    for r in range(reps):
        for name in stmts if r % 2 == 0 else list(stmts)[::-1]:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmts[name]], env=env, check=True)
            res[name].append(time.perf_counter() - t)
    out = {k: round(med(v), 3) for k, v in res.items()}
    out["ratio_bioflow_over_scanpy"] = round(
        med([a / b for a, b in zip(res["bioflow"], res["scanpy"], strict=True)]), 3
    )
    out["note"] = "wall-clock of a fresh `python -c <stmt>` (interpreter start included)"
    return out


# --- DDP on CPU through the CLI -------------------------------------------------------------
def ddp(args, tmp: Path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        "OMP_NUM_THREADS": "1",
    }
    cfg = ROOT / "configs" / "cells_simulated.yaml"
    runs = {
        "1_process": ["--trainer.devices", "1"],
        "2_processes": ["--trainer.devices", "2", "--trainer.strategy", "ddp"],
        "2_processes_global_coupling": [
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--model.init_args.global_coupling",
            "true",
        ],
    }
    res = {k: {"ms": [], "wall": []} for k in runs}
    for r in range(args.ddp_reps):
        for name in runs if r % 2 == 0 else list(runs)[::-1]:
            out = tmp / f"ddp_{name}_{r}.json"
            cmd = [
                sys.executable,
                "-m",
                "bioflow",
                "fit",
                "--config",
                str(cfg),
                "--trainer.accelerator",
                "cpu",
                "--trainer.max_steps",
                str(args.ddp_steps),
                "--trainer.limit_val_batches",
                "0",
                "--trainer.num_sanity_val_steps",
                "0",
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.logger",
                "false",
                "--trainer.enable_model_summary",
                "false",
                "--data.batch_size",
                "256",
                "--trainer.default_root_dir",
                str(tmp),
                "--trainer.callbacks+=_timing.StepTimer",
                f"--trainer.callbacks.out={out}",
                *runs[name],
            ]
            t = time.perf_counter()
            p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if p.returncode != 0:
                raise RuntimeError(f"DDP run {name} failed:\n{p.stderr[-3000:]}")
            steps = json.loads(out.read_text())["steps"]
            res[name]["ms"].append(1e3 * med(steps[20:]))
            res[name]["wall"].append(wall)
            log(f"ddp {name}: {res[name]['ms'][-1]:.2f} ms/step, {wall:.1f}s")
    out = {}
    for name, v in res.items():
        procs = 1 if name.startswith("1") else 2
        ms = med(v["ms"])
        out[name] = {
            "ms_per_step": round(ms, 3),
            "cells_per_s": round(procs * 4 * 2 * 256 / (ms / 1e3)),
            "wall_s": round(med(v["wall"]), 1),
        }
    out["settings"] = (
        f"configs/cells_simulated.yaml (OT-CFM, 10 dims, 4 intervals, MLP 3 x 128), batch 256 "
        f"per time and rank, {args.ddp_steps} steps, gloo on CPU"
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="import,fit,step,ot,scaling,ddp")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--small-steps", type=int, default=1500)
    p.add_argument("--large-steps", type=int, default=50)
    p.add_argument("--step-steps", type=int, default=100)
    p.add_argument("--step-reps", type=int, default=2)
    p.add_argument("--pair-steps", type=int, default=150)
    p.add_argument("--pair-reps", type=int, default=6)
    p.add_argument("--scaling-steps", type=int, default=150)
    p.add_argument("--sizes", default="10000,1000000,10000000")
    p.add_argument("--ddp-steps", type=int, default=150)
    p.add_argument("--ddp-reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.reps, args.small_steps, args.large_steps, args.step_steps = 1, 60, 20, 40
        args.step_reps, args.pair_steps, args.pair_reps = 1, 40, 2
        args.scaling_steps, args.ddp_steps, args.ddp_reps = 40, 40, 1
        args.sizes = [10_000, 100_000]
    torch.set_num_threads(args.threads)
    sections = args.sections.split(",")
    report = {"commit": git_commit(), "command": command(), "machine": machine()}
    # other processes share the cores: the load around the run qualifies every timing
    report["machine"]["loadavg_1min_start"] = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "import" in sections:
            report["import_s"] = import_times(5 if not args.quick else 2)
        if "fit" in sections:
            report["fit_vs_torchcfm"] = fit_vs_torchcfm(args)
        if "step" in sections:
            report["step_ms"] = step_ms(args)
        if "ot" in sections:
            report["ot_over_icfm"] = ot_over_icfm(args)
        if "scaling" in sections:
            report["scaling"] = scaling(args, tmp)
        if "ddp" in sections:
            report["ddp"] = ddp(args, tmp)
    report["machine"]["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
