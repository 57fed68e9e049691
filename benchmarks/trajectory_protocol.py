"""The published leave-one-timepoint-out protocol on any time-course .h5ad.

5 whitened PCs (``--use-rep``), each interior time held out in turn, all cells of the
previous time pushed through the learned ODE, W1 to the held-out cells; mean and sd over
``--seeds``; OT-CFM, I-CFM, SB-CFM and W-CFM beside the no-motion and McCann baselines and
the published Embryoid Body figures (TorchCFM: OT-CFM 0.790 +- 0.068, I-CFM 0.872,
SB-CFM 1.221).

    python data_recipes/embryoid_body.py --output data/eb.h5ad
    python benchmarks/trajectory_protocol.py data/eb.h5ad --time-key day

Without a downloaded file, run it on the built-in simulated data::

    python benchmarks/trajectory_protocol.py sim.h5ad --write-simulated
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PUBLISHED_EB_W1 = {"ot-cfm": "0.790 +- 0.068", "i-cfm": "0.872", "sb-cfm": "1.221"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("path", help="time-course .h5ad written by a data recipe")
    p.add_argument("--time-key", default="day")
    p.add_argument("--use-rep", default="X_pca")
    p.add_argument("--methods", default="ot-cfm,i-cfm,sb-cfm,w-cfm")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0..n-1)")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--write-simulated",
        action="store_true",
        help="first write bioflow.datasets.simulated_differentiation() to PATH (time key 'time')",
    )
    a = p.parse_args(argv)
    import bioflow

    path = Path(a.path)
    if a.write_simulated:
        bioflow.datasets.simulated_differentiation().write_h5ad(path)
        if a.time_key == "day":
            a.time_key = "time"
    if not path.exists():
        print(
            f"skipped: {path} does not exist. Write it with a recipe in data_recipes/ "
            "(e.g. python data_recipes/embryoid_body.py --output data/eb.h5ad) or pass "
            "--write-simulated.",
            file=sys.stderr,
        )
        return 0
    import anndata as ad

    adata = ad.read_h5ad(path)
    methods = tuple(m.strip() for m in a.methods.split(",") if m.strip())
    df = bioflow.tl.evaluate_holdout(
        adata,
        time_key=a.time_key,
        use_rep=a.use_rep,
        methods=methods,
        seeds=tuple(range(a.seeds)),
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        enable_progress_bar=False,
    )
    per_time = df.groupby(["method", "held_out"])["w1"].mean().unstack()
    per_seed = df.groupby(["method", "seed"])["w1"].mean()  # mean over held-out times
    summary = per_seed.groupby("method").agg(["mean", "std"]).fillna(0.0)
    table = per_time.copy()
    table["mean"] = summary["mean"]
    table["sd (seeds)"] = summary["std"]
    table["published EB"] = [PUBLISHED_EB_W1.get(m, "") for m in table.index]
    table = table.sort_values("mean")
    print(
        f"\nLeave-one-timepoint-out W1 on {path} ({a.use_rep}, {a.seeds} seeds, "
        f"{a.max_steps} steps):"
    )
    print(table.round(3).to_string())
    result = {
        "file": str(path),
        "time_key": a.time_key,
        "use_rep": a.use_rep,
        "seeds": a.seeds,
        "max_steps": a.max_steps,
        "w1_mean": summary["mean"].round(4).to_dict(),
        "w1_sd": summary["std"].round(4).to_dict(),
        "published_eb_w1": PUBLISHED_EB_W1,
        "rows": df.round(5).to_dict(orient="records"),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
