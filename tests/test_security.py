"""Files from others are data: no public loader or the CLI may run code from a file."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bioflow
from bioflow.models import CellFlowMatching, load_model

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this object calls ``Path.touch`` on a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    model = CellFlowMatching(dim=2, hidden=(16,))
    good = tmp_path / "model.pt"
    model.save(good)
    ckpt = torch.load(good, weights_only=True)
    marker = tmp_path / "pwned"
    ckpt["extra"] = _Payload(marker)  # one extra pickled key, as a crafted file would have
    bad = tmp_path / "crafted.pt"
    torch.save(ckpt, bad)
    return bad, marker


@pytest.mark.parametrize(
    "loader",
    [load_model, bioflow.io.load_model, CellFlowMatching.load],
    ids=["models.load_model", "io.load_model", "CellFlowMatching.load"],
)
def test_crafted_checkpoint_runs_no_code(tmp_path, loader):
    bad, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="refusing to load"):
        loader(bad)
    assert not marker.exists(), "the checkpoint's payload ran"


def test_saved_model_still_round_trips(tmp_path):
    model = CellFlowMatching(dim=2, hidden=(16,))
    model.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_cli_ckpt_path_runs_no_code(tmp_path):
    bad, marker = _malicious_checkpoint(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "bioflow",
        "fit",
        "--config",
        str(ROOT / "configs" / "cells_simulated.yaml"),
        "--ckpt_path",
        str(bad),
        "--trainer.max_steps",
        "1",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert res.returncode != 0
    assert "refusing to load" in res.stderr
    assert not marker.exists(), "the checkpoint's payload ran through the CLI"


def test_crafted_npz_runs_no_code(tmp_path):
    sys.path.insert(0, str(ROOT / "data_recipes"))
    try:
        import embryoid_body
    finally:
        sys.path.remove(str(ROOT / "data_recipes"))
    marker = tmp_path / "pwned"
    labels = np.empty(3, dtype=object)
    labels[:] = [_Payload(marker), 1, 2]
    path = tmp_path / "eb_velocity_v5.npz"
    np.savez(path, pcs=np.zeros((3, 5)), sample_labels=labels)
    with pytest.raises(ValueError, match="pickled Python objects"):
        embryoid_body.build(path)
    assert not marker.exists(), "the npz payload ran"


def test_zenodo_names_cannot_escape_the_output_folder():
    sys.path.insert(0, str(ROOT / "data_recipes"))
    try:
        from _zenodo import safe_name
    finally:
        sys.path.remove(str(ROOT / "data_recipes"))
    assert safe_name("promoters.tsv") == "promoters.tsv"
    for bad in ("../x.tsv", "/etc/passwd", "a/b.tsv", "..", ""):
        with pytest.raises(SystemExit, match="refusing|usable name"):
            safe_name(bad)


def test_zenodo_checksum_mismatch_removes_the_file(tmp_path):
    sys.path.insert(0, str(ROOT / "data_recipes"))
    try:
        from _zenodo import verify_checksum
    finally:
        sys.path.remove(str(ROOT / "data_recipes"))
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    verify_checksum(f, "md5:5d41402abc4b2a76b9719d911017c592")  # md5("hello")
    with pytest.raises(SystemExit, match="checksum"):
        verify_checksum(f, "md5:00000000000000000000000000000000")
    assert not f.exists()
