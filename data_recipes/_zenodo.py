"""Zenodo downloads and the folder-output manifest of the sequence recipes (promoters, enhancers)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path


from _common import sha256sum as sha256  # noqa: E402


def guard(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Refuse to replace existing outputs unless ``overwrite``."""
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise SystemExit(
            f"error: {', '.join(existing)} already exist in {out_dir}; pass --overwrite to "
            "replace them"
        )


def zenodo_download(record: str, want: list[str], dest: Path) -> list[Path]:
    """Download the files of Zenodo ``record`` whose names contain one of ``want``."""
    with urllib.request.urlopen(f"https://zenodo.org/api/records/{record}", timeout=60) as r:
        meta = json.load(r)
    got = []
    for f in meta.get("files", []):
        name = f.get("key") or f.get("filename")
        if any(w in name for w in want):
            url = f["links"].get("self") or f["links"].get("download")
            target = dest / name
            urllib.request.urlretrieve(url, target)
            got.append(target)
    if not got:
        raise SystemExit(f"error: record {record} has no file matching {want}")
    return got


def write_manifest(out_dir: Path, recipe: str, source: str, files: list[str], extra: dict) -> Path:
    manifest = {
        "recipe": recipe,
        "source": source,
        "files": {
            n: {"sha256": sha256(out_dir / n), "bytes": (out_dir / n).stat().st_size} for n in files
        },
        **extra,
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path
