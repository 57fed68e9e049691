"""Promoter and enhancer data recipes on fabricated local files (no download)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data_recipes"))

import enhancers  # noqa: E402
import promoters  # noqa: E402

from bioflow.io import read_fasta  # noqa: E402


def test_help_runs():
    for name in ("promoters", "enhancers"):
        r = subprocess.run(
            [sys.executable, str(ROOT / "data_recipes" / f"{name}.py"), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and "--input" in r.stdout and "--overwrite" in r.stdout


def test_promoters_from_tsv_and_fasta(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("sequence\tsplit\nACGTAC\ttrain\nTTTTAA\ttrain\nGGGCCC\ttest\n")
    out = tmp_path / "out"
    assert promoters.main(["--out", str(out), "--input", str(tsv)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"] == {"train": 2, "valid": 0, "test": 1} and m["lengths"] == [6]
    assert [s for _, s in read_fasta(out / "promoters_train.fa")] == ["ACGTAC", "TTTTAA"]
    with pytest.raises(SystemExit, match="overwrite"):
        promoters.main(["--out", str(out), "--input", str(tsv)])
    fa = tmp_path / "p.fa"
    fa.write_text("".join(f">s{i}\nACGTACGT\n" for i in range(20)))
    assert promoters.main(["--out", str(out), "--input", str(fa), "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"] == {
        "train": 16,
        "valid": 2,
        "test": 2,
    }
    bad = tmp_path / "bad.tsv"
    bad.write_text("sequence\nACNT\n")
    with pytest.raises(SystemExit, match="'N' at position 3"):
        promoters.main(["--out", str(tmp_path / "o2"), "--input", str(bad)])


def test_enhancers_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = np.eye(4)[rng.integers(0, 4, (5, 10))]
    y = rng.integers(0, 3, 5)
    npz = tmp_path / "e.npz"
    np.savez(npz, train_x=x, train_y=y, test_x=x[:2], test_y=y[:2])
    out = tmp_path / "out"
    assert enhancers.main(["--out", str(out), "--input", str(npz)]) == 0
    recs = read_fasta(out / "enhancers_train.fa")
    assert len(recs) == 5 and len(recs[0][1]) == 10
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"] == {"train": 5, "test": 2}
    assert m["files"]["enhancers_train.fa"]["bytes"] > 0
    with pytest.raises(SystemExit, match="overwrite"):
        enhancers.main(["--out", str(out), "--input", str(npz)])
    np.savez(tmp_path / "bad.npz", train_x=x[..., :3], train_y=y)
    with pytest.raises(SystemExit, match="one-hot"):
        enhancers.main(["--out", str(tmp_path / "o3"), "--input", str(tmp_path / "bad.npz")])
