"""Fly-brain / melanoma enhancer sequences with cell-class labels (Zenodo 10184648).

Writes ``enhancers_<split>.fa`` (headers ``>id label=<class>``), ``enhancers_<split>_labels.csv``
and ``manifest.json``.  Input: a local ``.npz`` with arrays ``<split>_x`` (one-hot
``(n, L, 4)``, ACGT order) and ``<split>_y`` (labels), or a CSV with ``sequence,label[,split]``;
without ``--input`` the record's files are downloaded.

    python data_recipes/enhancers.py --out data/enhancers --input enhancers.npz
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_text_atomic  # noqa: E402
from _zenodo import guard, write_manifest, zenodo_download  # noqa: E402

RECORD = "10184648"
SPLITS = ("train", "valid", "test")


def from_npz(path: Path) -> dict[str, tuple[list[str], list]]:
    import numpy as np

    data = np.load(path, allow_pickle=False)
    out = {}
    for split in SPLITS:
        if f"{split}_x" not in data:
            continue
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        if x.ndim != 3 or x.shape[-1] != 4:
            raise SystemExit(f"error: {split}_x must be one-hot (n, L, 4), got {x.shape}")
        if x.shape[0] != y.shape[0]:
            raise SystemExit(f"error: {split}_x has {x.shape[0]} rows, {split}_y {y.shape[0]}")
        letters = np.array(list("ACGT"))
        out[split] = (
            ["".join(letters[r]) for r in x.argmax(-1)],
            y.reshape(len(y), -1).argmax(1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1),
        )
    if not out:
        raise SystemExit(f"error: {path} holds none of {[s + '_x' for s in SPLITS]}")
    return out


def from_csv(path: Path) -> dict[str, tuple[list[str], list]]:
    out: dict[str, tuple[list[str], list]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"sequence", "label"} <= set(reader.fieldnames):
            raise SystemExit(f"error: {path} needs 'sequence' and 'label' columns")
        for row in reader:
            split = row.get("split") or "train"
            seqs, labels = out.setdefault(split, ([], []))
            seqs.append(row["sequence"].strip().upper())
            labels.append(int(row["label"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--input", help="local .npz or .csv (skip the download)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    a = ap.parse_args(argv)

    from bioflow.data.sequences import encode
    from bioflow.io import write_fasta

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.input:
        src, source = Path(a.input), f"local:{a.input}"
        if not src.exists():
            raise SystemExit(f"error: no input at {src}")
    else:
        src = zenodo_download(RECORD, [".npz", ".csv"], out)[0]
        source = f"zenodo:{RECORD}/{src.name}"
    data = from_npz(src) if src.suffix == ".npz" else from_csv(src)
    names = []
    for split in data:
        names += [f"enhancers_{split}.fa", f"enhancers_{split}_labels.csv"]
    guard(out, names + ["manifest.json"], a.overwrite)
    counts, classes = {}, set()
    for split, (seqs, labels) in data.items():
        try:
            encode(seqs, "dna", names=[f"{split}#{i}" for i in range(len(seqs))])
        except ValueError as err:
            raise SystemExit(f"error: {err}") from err
        ids = [f"{split}{i}" for i in range(len(seqs))]
        write_fasta(
            out / f"enhancers_{split}.fa",
            seqs,
            names=[f"{i} label={int(lab)}" for i, lab in zip(ids, labels, strict=True)],
        )
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["id", "label"])
        w.writerows([i, int(lab)] for i, lab in zip(ids, labels, strict=True))
        write_text_atomic(out / f"enhancers_{split}_labels.csv", buf.getvalue())
        counts[split] = len(seqs)
        classes |= {int(v) for v in labels}
    write_manifest(
        out,
        "enhancers",
        source,
        names,
        {"counts": counts, "n_classes": len(classes), "alphabet": "ACGT"},
    )
    print(f"wrote {sum(counts.values())} enhancers to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
