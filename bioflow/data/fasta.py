"""FASTA files: read records, write sequences (the public names live in ``io``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence


def read_fasta(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Records ``(name, sequence)`` of a FASTA file (multi-line sequences joined).

    Sequences are upper-cased; whitespace is dropped.  ``name`` is the header up to the
    first whitespace.

    Raises
    ------
    ValueError
        If the file is missing, empty, has sequence before the first header, or a record
        without sequence.

    Examples
    --------
    >>> from bioflow.data.fasta import read_fasta, write_fasta
    >>> write_fasta("x.fa", ["ACGT"], names=["s1"])  # doctest: +SKIP
    >>> read_fasta("x.fa")  # doctest: +SKIP
    [('s1', 'ACGT')]
    """
    if not os.path.exists(path):
        raise ValueError(f"no FASTA file at {os.fspath(path)!r}")
    records: list[tuple[str, list[str]]] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                name = line[1:].split()[0] if line[1:].strip() else f"record{len(records) + 1}"
                records.append((name, []))
            elif not records:
                raise ValueError(
                    f"{os.fspath(path)!r} line {lineno}: sequence before the first '>' header"
                )
            else:
                records[-1][1].append("".join(line.split()).upper())
    if not records:
        raise ValueError(f"{os.fspath(path)!r} holds no FASTA records")
    out = []
    for name, parts in records:
        seq = "".join(parts)
        if not seq:
            raise ValueError(f"{os.fspath(path)!r}: record {name!r} has no sequence")
        out.append((name, seq))
    return out


def write_fasta(
    path: str | os.PathLike,
    sequences: Iterable[str],
    *,
    names: Sequence[str] | None = None,
    width: int = 80,
) -> None:
    """Write sequences to a FASTA file (names default to ``seq0``, ``seq1``, ...).

    Examples
    --------
    >>> write_fasta("designs.fa", ["ACGT", "GGCC"])  # doctest: +SKIP
    """
    seqs = list(sequences)
    if names is None:
        names = [f"seq{i}" for i in range(len(seqs))]
    if len(names) != len(seqs):
        raise ValueError(f"{len(names)} names for {len(seqs)} sequences")
    with open(path, "w") as fh:
        for name, s in zip(names, seqs, strict=True):
            fh.write(f">{name}\n")
            for i in range(0, max(len(s), 1), width):
                fh.write(s[i : i + width] + "\n")
