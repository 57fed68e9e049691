"""Promoter sequences for sequence design (Dirichlet FM / DDSM data, Zenodo 7943307).

Writes ``promoters_<split>.fa`` (1,024 bp human promoter windows) and ``manifest.json``.
Input: a local FASTA (``--input seqs.fa``, split by ``--valid-fraction``) or a TSV/CSV with
columns ``sequence`` [and ``split``]; without ``--input`` the record's files are downloaded.
The Sei model needed for the paper's Sei-MSE metric is not part of this recipe.

    python data_recipes/promoters.py --out data/promoters --input promoters.tsv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _zenodo import guard, write_manifest, zenodo_download  # noqa: E402

RECORD = "7943307"
SPLITS = ("train", "valid", "test")


def read_table(path: Path) -> dict[str, list[str]]:
    delim = "\t" if path.suffix in (".tsv", ".txt") else ","
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delim)
        if reader.fieldnames is None or "sequence" not in reader.fieldnames:
            raise SystemExit(f"error: {path} needs a 'sequence' column, has {reader.fieldnames}")
        for row in reader:
            split = row.get("split") or "train"
            if split not in out:
                raise SystemExit(f"error: unknown split {split!r} in {path}")
            out[split].append(row["sequence"].strip().upper())
    return out


def split_list(seqs: list[str], valid_fraction: float, seed: int) -> dict[str, list[str]]:
    import numpy as np

    idx = np.random.default_rng(seed).permutation(len(seqs))
    n_val = int(round(valid_fraction * len(seqs)))
    val, test = idx[:n_val], idx[n_val : 2 * n_val]
    train = idx[2 * n_val :]
    return {
        "train": [seqs[i] for i in train],
        "valid": [seqs[i] for i in val],
        "test": [seqs[i] for i in test],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--input", help="local FASTA or TSV/CSV (skip the download)")
    ap.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="fraction for valid and for test when --input is a FASTA",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    a = ap.parse_args(argv)

    from bioflow.data.sequences import encode
    from bioflow.io import read_fasta, write_fasta

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"promoters_{s}.fa" for s in SPLITS] + ["manifest.json"]
    guard(out, names, a.overwrite)
    if a.input:
        src = Path(a.input)
        source = f"local:{src}"
    else:
        src = zenodo_download(RECORD, [".tsv", ".csv", ".fa"], out)[0]
        source = f"zenodo:{RECORD}/{src.name}"
    if not src.exists():
        raise SystemExit(f"error: no input at {src}")
    if src.suffix in (".fa", ".fasta", ".fna"):
        splits = split_list([s for _, s in read_fasta(src)], a.valid_fraction, a.seed)
    else:
        splits = read_table(src)
    counts = {}
    for split, seqs in splits.items():
        if seqs:
            try:
                encode(seqs, "dna", names=[f"{split}#{i}" for i in range(len(seqs))])
            except ValueError as err:
                raise SystemExit(f"error: {err}") from err
        write_fasta(out / f"promoters_{split}.fa", seqs)
        counts[split] = len(seqs)
    lengths = sorted({len(s) for v in splits.values() for s in v})
    write_manifest(
        out,
        "promoters",
        source,
        names[:-1],
        {"counts": counts, "lengths": lengths, "alphabet": "ACGT"},
    )
    print(f"wrote {sum(counts.values())} promoters to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
