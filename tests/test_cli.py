import subprocess
import sys
from pathlib import Path

import anndata as ad
import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

import bioflow
from bioflow.cli import main
from bioflow.data import CellDynamicsDataModule, PopulationDataModule, SequenceDataModule
from bioflow.models import CellFlowMatching, MetaFlowMatching, SequenceFlow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small stand-ins for every data recipe's output (h5ad cells, h5ad populations, FASTA)."""
    d = tmp_path_factory.mktemp("data")
    bioflow.datasets.simulated_differentiation(n_cells_per_time=80, seed=2).write_h5ad(
        d / "cells.h5ad"
    )
    pops = bioflow.datasets.population_response(n_populations=4, n_cells=240, dim=6, seed=3)
    pops.obs["treatment"] = pops.obs["treatment"].astype(str).replace("control", "PBS")
    pops.obs["is_control"] = pops.obs["treatment"] == "PBS"
    pops.write_h5ad(d / "organoid.h5ad")
    seqs, _ = bioflow.datasets.motif_sequences(120, length=40, seed=4)
    bioflow.io.write_fasta(d / "train.fa", seqs)
    return d


def _data_overrides(cfg: Path, files: Path) -> list[str]:
    text = cfg.read_text()
    if "builtin:" in text:
        return ["--data.init_args.val_samples", "64"] if "SequenceDataModule" in text else []
    if "CellDynamicsDataModule" in text:
        return [
            "--data.adata",
            str(files / "cells.h5ad"),
            "--data.time_key",
            "time",
            "--data.use_rep",
            "X_pca",
        ]
    if "PopulationDataModule" in text:
        return [
            "--data.init_args.adata",
            str(files / "organoid.h5ad"),
            "--data.init_args.exclude_populations",
            "[pop3]",
            "--data.init_args.cells_per_population",
            "32",
        ]
    if "SequenceDataModule" in text:
        return [
            "--data.init_args.sequences",
            str(files / "train.fa"),
            "--data.init_args.batch_size",
            "16",
        ]
    raise AssertionError(f"no test data for {cfg.name}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_fits_a_few_steps(cfg, files, tmp_path):
    main(
        [
            "fit",
            "--config",
            str(cfg),
            *_data_overrides(cfg, files),
            "--trainer.max_steps",
            "3",
            "--trainer.limit_val_batches",
            "1",
            *QUIET,
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    assert list(tmp_path.rglob("*.ckpt")), "fit must write a checkpoint"


def test_every_family_has_configs():
    texts = [c.read_text() for c in CONFIGS]
    for cls in ("CellFlowMatching", "MetaFlowMatching", "SequenceFlow", "DiscreteFlow"):
        assert sum(cls in t for t in texts) >= 2, cls


def test_print_config_and_predict(files, tmp_path, capsys):
    cfg = str(ROOT / "configs" / "cells_simulated.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", cfg, "--model.init_args.method", "sb-cfm", "--print_config"])
    printed = capsys.readouterr().out
    assert "sb-cfm" in printed and "CellDynamicsDataModule" in printed
    common = [
        "--config",
        cfg,
        "--data.adata",
        str(files / "cells.h5ad"),
        *QUIET,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    main(
        [
            "fit",
            *common,
            "--trainer.max_steps",
            "5",
            "--trainer.limit_val_batches",
            "1",
            "--trainer.log_every_n_steps",
            "1",
        ]
    )
    ckpt = next(tmp_path.rglob("last.ckpt"))
    # TensorBoard (tensorboardX is a dev dependency) logs beside the CSV logger
    assert list(ckpt.parents[1].glob("events.out.tfevents*"))
    assert (ckpt.parents[1] / "metrics.csv").exists()
    out = tmp_path / "pred.h5ad"
    main(
        [
            "predict",
            *common,
            "--ckpt_path",
            str(ckpt),
            "--data.predict_source_time",
            "1.0",
            "--data.predict_target_time",
            "2.0",
            "--data.predict_output",
            str(out),
        ]
    )
    pred = ad.read_h5ad(out)
    assert pred.n_obs == 80 and pred.obsm["X_pca"].shape == (80, 10)
    assert (pred.obs["time"] == 2.0).all()
    assert np.isfinite(pred.obsm["X_pca"]).all()


def _fit_and_checkpoint(cfg: str, overrides: list[str], tmp_path: Path) -> tuple[list, Path]:
    common = [
        "--config",
        str(ROOT / "configs" / cfg),
        *overrides,
        *QUIET,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    main(["fit", *common, "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0"])
    return common, next(tmp_path.rglob("*.ckpt"))


def test_sequence_print_config_and_predict_fasta(tmp_path, capsys):
    cfg = str(ROOT / "configs" / "seq_motif.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", cfg, "--model.init_args.hidden", "24", "--print_config"])
    printed = capsys.readouterr().out
    assert "hidden: 24" in printed and "builtin:motif_sequences" in printed
    common, ckpt = _fit_and_checkpoint("seq_motif.yaml", [], tmp_path)
    out = tmp_path / "designs.fa"
    main(
        [
            "predict",
            *common,
            "--ckpt_path",
            str(ckpt),
            "--data.init_args.predict_n",
            "37",
            "--data.init_args.predict_steps",
            "5",
            "--data.init_args.predict_output",
            str(out),
        ]
    )
    records = bioflow.io.read_fasta(out)
    assert len(records) == 37 and all(len(s) == 20 and set(s) <= set("ACGT") for _, s in records)


def test_meta_predict_h5ad(files, tmp_path):
    overrides = [
        "--data.init_args.adata",
        str(files / "organoid.h5ad"),
        "--data.init_args.exclude_populations",
        "[pop3]",
        "--model.init_args.k",
        "10",
        "--model.init_args.width",
        "32",
        "--data.init_args.min_source_cells",
        "11",
    ]
    common, ckpt = _fit_and_checkpoint("meta_organoid.yaml", overrides, tmp_path)
    out = tmp_path / "pop3.h5ad"
    main(
        ["predict", *common, "--ckpt_path", str(ckpt), "--data.init_args.predict_output", str(out)]
    )
    pred = ad.read_h5ad(out)
    src = ad.read_h5ad(files / "organoid.h5ad")
    n_ctrl = int(((src.obs["population"] == "pop3") & src.obs["is_control"]).sum())
    # one pushed copy of pop3's controls per drug, in the data's feature space
    assert pred.n_obs == 2 * n_ctrl and pred.n_vars == src.n_vars
    assert set(pred.obs["treatment"]) == {"drugA", "drugB"}
    assert (pred.obs["population"] == "pop3").all() and np.isfinite(pred.X).all()


def test_checkpoint_of_another_family_is_refused_by_the_cli(files, tmp_path):
    _, ckpt = _fit_and_checkpoint(
        "cells_simulated.yaml", ["--data.adata", str(files / "cells.h5ad")], tmp_path / "a"
    )
    with pytest.raises(ValueError, match="holds a CellFlowMatching model, not a DiscreteFlow"):
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs" / "seq_motif.yaml"),
                *QUIET,
                "--trainer.default_root_dir",
                str(tmp_path / "b"),
                "--trainer.max_steps",
                "4",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / "b"),
                "--ckpt_path",
                str(ckpt),
            ]
        )


def test_checkpoint_errors(tmp_path):
    torch.save(
        {"state_dict": {}, "bioflow_model": "SequenceFlow", "hyper_parameters": {}},
        tmp_path / "other.ckpt",
    )
    model = CellFlowMatching(dim=3, hidden=(4,))
    with pytest.raises(ValueError, match="holds a SequenceFlow model"):
        model.on_load_checkpoint(torch.load(tmp_path / "other.ckpt"))
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read checkpoint"):
        CellFlowMatching.load(tmp_path / "bad.ckpt")
    model.save(tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        CellFlowMatching.load(tmp_path / "cut.pt")


# --- exact resume, one case per family ------------------------------------------------------
def _cells():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=60, seed=5)
    dm = CellDynamicsDataModule(
        adata, time_key="time", use_rep="X_pca", batch_size=16, steps_per_epoch=7
    )
    # A constant rate: a cosine schedule's horizon is the run's max_steps, so a 10-step run
    # (decayed to 0) is not the first half of a 20-step one.
    return dm, lambda spec: CellFlowMatching(
        method="sb-cfm", hidden=(32, 32), lr_schedule="constant", data_spec=spec
    )


def _populations():
    adata = bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=60, seed=5)
    dm = PopulationDataModule(
        adata,
        use_rep="X_coords",
        populations_per_step=3,
        cells_per_population=16,
        embed_cells=30,
        steps_per_epoch=7,
        min_source_cells=6,
    )
    return dm, lambda spec: MetaFlowMatching(
        method="mfm", k=5, embed_cells=30, width=32, depth=1, sigma=0.05, data_spec=spec
    )


def _sequences():
    seqs, _ = bioflow.datasets.motif_sequences(60, length=12, seed=5)
    dm = SequenceDataModule(seqs, batch_size=8, steps_per_epoch=7)
    return dm, lambda spec: SequenceFlow(hidden=16, n_layers=2, data_spec=spec)


def _fit(make, steps, ckpt_in=None, ckpt_out=None):
    dm, build = make()
    L.seed_everything(0, verbose=False)
    model = build(dm.data_spec)
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_in)
    if ckpt_out:
        trainer.save_checkpoint(ckpt_out)
    return model


@pytest.mark.parametrize(
    "make", [_cells, _populations, _sequences], ids=["cells", "populations", "sequences"]
)
def test_resume_is_exact(make, tmp_path):
    # steps_per_epoch=7 puts the resume point (step 10) in the middle of an epoch
    straight = _fit(make, 20)
    half = _fit(make, 10, ckpt_out=tmp_path / "half.ckpt")
    resumed = _fit(make, 20, ckpt_in=tmp_path / "half.ckpt")
    moved = False
    for (name, a), b, h in zip(
        straight.state_dict().items(), resumed.state_dict().values(), half.state_dict().values()
    ):
        assert torch.allclose(a, b, atol=1e-6), name
        moved |= not torch.allclose(a, h)
    assert moved, "the second half must change the weights"


# --- DDP on CPU, one run per family ---------------------------------------------------------
DDP_CASES = {
    "cells": (
        "cells_simulated.yaml",
        ["--data.adata", "{cells}", "--data.batch_size", "16"],
        "val/w1",
    ),
    "populations": (
        "meta_letters.yaml",
        [
            "--data.init_args.dataset_kwargs",
            '{"letters": "ABCDEFGHIJKL", "n_rotations": 2, "n_points": 120}',
            "--data.init_args.exclude_populations",
            "[K_0, K_1, L_0, L_1]",
            "--data.init_args.populations_per_step",
            "4",
            "--data.init_args.cells_per_population",
            "32",
            "--model.init_args.width",
            "64",
        ],
        "val/w1",
    ),
    "sequences": ("seq_motif.yaml", ["--data.init_args.val_samples", "64"], "val/kl"),
}


@pytest.mark.parametrize("family", sorted(DDP_CASES))
def test_ddp_two_cpu_processes(family, files, tmp_path):
    cfg, overrides, metric = DDP_CASES[family]
    overrides = [o.replace("{cells}", str(files / "cells.h5ad")) for o in overrides]
    seen = tmp_path / "seen"
    cmd = [
        sys.executable,
        "-m",
        "bioflow",
        "fit",
        "--config",
        str(ROOT / "configs" / cfg),
        *overrides,
        "--data.init_args.steps_per_epoch",
        "20",
        "--trainer.max_steps",
        "40",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        *QUIET,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.callbacks+=bioflow.callbacks.SeenCellsRecorder",
        f"--trainer.callbacks.out_dir={seen}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = np.load(seen / "rows_rank0.npy"), np.load(seen / "rows_rank1.npy")
    assert len(r0) > 0 and len(r1) > 0
    assert len(np.intersect1d(r0, r1)) == 0, "ranks must draw disjoint data"
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    loss = metrics["train/loss"].dropna().to_numpy()
    assert len(loss) >= 30 and loss[-5:].mean() < loss[:5].mean()
    assert metrics[metric].notna().any(), f"{metric} must be logged"
