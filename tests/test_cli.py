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
from bioflow.data import CellDynamicsDataModule
from bioflow.models import CellFlowMatching

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cells.h5ad"
    bioflow.datasets.simulated_differentiation(n_cells_per_time=80, seed=2).write_h5ad(path)
    return path


def _data_overrides(cfg: Path, h5ad: Path) -> list[str]:
    text = cfg.read_text()
    if "CellDynamicsDataModule" in text:
        return ["--data.adata", str(h5ad), "--data.time_key", "time", "--data.use_rep", "X_pca"]
    return []


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_fits_a_few_steps(cfg, h5ad, tmp_path):
    main(["fit", "--config", str(cfg), *_data_overrides(cfg, h5ad),
          "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.logger.init_args.save_dir", str(tmp_path)])
    assert list(tmp_path.rglob("*.ckpt")), "fit must write a checkpoint"


def test_print_config_and_predict(h5ad, tmp_path, capsys):
    cfg = str(ROOT / "configs" / "cells_simulated.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", cfg, "--model.init_args.method", "sb-cfm", "--print_config"])
    printed = capsys.readouterr().out
    assert "sb-cfm" in printed and "CellDynamicsDataModule" in printed
    common = ["--config", cfg, "--data.adata", str(h5ad), "--trainer.enable_progress_bar",
              "false", "--trainer.default_root_dir", str(tmp_path),
              "--trainer.logger.init_args.save_dir", str(tmp_path)]
    main(["fit", *common, "--trainer.max_steps", "5", "--trainer.limit_val_batches", "1"])
    ckpt = next(tmp_path.rglob("*.ckpt"))
    out = tmp_path / "pred.h5ad"
    main(["predict", *common, "--ckpt_path", str(ckpt), "--data.predict_source_time", "1.0",
          "--data.predict_target_time", "2.0", "--data.predict_output", str(out)])
    pred = ad.read_h5ad(out)
    assert pred.n_obs == 80 and pred.obsm["X_pca"].shape == (80, 10)
    assert (pred.obs["time"] == 2.0).all()
    assert np.isfinite(pred.obsm["X_pca"]).all()


def _fit(dm_kwargs, steps, ckpt_in=None, ckpt_out=None):
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=60, seed=5)
    dm = CellDynamicsDataModule(adata, time_key="time", use_rep="X_pca", **dm_kwargs)
    L.seed_everything(0, verbose=False)
    model = CellFlowMatching(method="sb-cfm", hidden=(32, 32), data_spec=dm.data_spec)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_in)
    if ckpt_out:
        trainer.save_checkpoint(ckpt_out)
    return model


def test_resume_is_exact(tmp_path):
    # steps_per_epoch=7 puts the resume point (step 10) in the middle of an epoch
    kw = dict(batch_size=16, steps_per_epoch=7)
    straight = _fit(kw, 20)
    _fit(kw, 10, ckpt_out=tmp_path / "half.ckpt")
    resumed = _fit(kw, 20, ckpt_in=tmp_path / "half.ckpt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_checkpoint_errors(tmp_path):
    torch.save({"state_dict": {}, "bioflow_model": "SequenceFlow",
                "hyper_parameters": {}}, tmp_path / "other.ckpt")
    model = CellFlowMatching(dim=3, hidden=(4,))
    with pytest.raises(ValueError, match="holds a SequenceFlow model"):
        model.on_load_checkpoint(torch.load(tmp_path / "other.ckpt"))
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read checkpoint"):
        CellFlowMatching.load(tmp_path / "bad.ckpt")


def test_ddp_two_cpu_processes(h5ad, tmp_path):
    seen = tmp_path / "seen"
    cmd = [sys.executable, "-m", "bioflow", "fit", "--config",
           str(ROOT / "configs" / "cells_simulated.yaml"), "--data.adata", str(h5ad),
           "--data.batch_size", "16", "--data.steps_per_epoch", "15",
           "--trainer.max_steps", "30", "--trainer.log_every_n_steps", "1",
           "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
           "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
           "--trainer.default_root_dir", str(tmp_path),
           "--trainer.logger.init_args.save_dir", str(tmp_path),
           "--trainer.callbacks+=bioflow.callbacks.SeenCellsRecorder",
           f"--trainer.callbacks.out_dir={seen}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = np.load(seen / "rows_rank0.npy"), np.load(seen / "rows_rank1.npy")
    assert len(r0) > 0 and len(r1) > 0
    assert len(np.intersect1d(r0, r1)) == 0, "ranks must draw disjoint cells"
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    loss = metrics["train/loss"].dropna().to_numpy()
    assert loss[-3:].mean() < loss[:3].mean()
    assert "val/w1" in metrics.columns
