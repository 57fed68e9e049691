"""FASTA files: read records, write sequences (the public names live in ``io``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence


def _open_text(path: str | os.PathLike):
    """Open a FASTA file as text: gzip by its magic bytes, UTF-8 with an optional BOM."""
    import gzip

    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def read_fasta(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Records ``(name, sequence)`` of a FASTA file (multi-line sequences joined).

    Sequences are upper-cased; whitespace is dropped.  ``name`` is the header up to the
    first whitespace.  Gzipped files (``.fa.gz``, recognised by their content), a UTF-8
    byte-order mark and Windows line ends are accepted.

    Raises
    ------
    ValueError
        If the file is missing, a directory, not text (binary), a truncated gzip, empty,
        has sequence before the first header, or a record without sequence.

    Examples
    --------
    >>> from bioflow.data.fasta import read_fasta, write_fasta
    >>> write_fasta("x.fa", ["ACGT"], names=["s1"])  # doctest: +SKIP
    >>> read_fasta("x.fa")  # doctest: +SKIP
    [('s1', 'ACGT')]
    """
    where = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"no FASTA file at {where!r}")
    if os.path.isdir(path):
        raise ValueError(f"{where!r} is a directory, not a FASTA file")
    records: list[tuple[str, list[str]]] = []
    lineno = 0
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if "\x00" in line:
                    raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte")
                line = line.strip()
                if not line or line.startswith(";"):
                    continue
                if line.startswith(">"):
                    head = line[1:].split()
                    records.append((head[0] if head else f"record{len(records) + 1}", []))
                elif not records:
                    raise ValueError(
                        f"{where!r} line {lineno}: sequence before the first '>' header"
                    )
                else:
                    records[-1][1].append("".join(line.split()).upper())
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{where!r} is not a text FASTA file (undecodable bytes near line {lineno + 1}: "
            f"{err.reason})"
        ) from err
    except (EOFError, OSError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(
            f"{where!r} is a truncated or corrupt gzip file ({type(err).__name__}: {err})"
        ) from err
    if not records:
        raise ValueError(f"{where!r} holds no FASTA records")
    out = []
    for name, parts in records:
        seq = "".join(parts)
        if not seq:
            raise ValueError(f"{where!r}: record {name!r} has no sequence")
        out.append((name, seq))
    return out


def write_fasta(
    path: str | os.PathLike,
    sequences: Iterable[str],
    *,
    names: Sequence[str] | None = None,
    width: int = 80,
    overwrite: bool = True,
) -> None:
    """Write sequences to a FASTA file (names default to ``seq0``, ``seq1``, ...).

    The file is written atomically (a temporary file beside ``path``, fsynced, then
    renamed): a writer killed midway leaves the previous file, never a truncated one.

    Parameters
    ----------
    path
        Output file; its folder must exist.
    sequences
        The sequences, a list of non-empty strings (not one string).
    names
        Record names (no line breaks), one per sequence.
    width
        Letters per line (>= 1).
    overwrite
        Replace an existing file (``False``: refuse).

    Raises
    ------
    ValueError
        For one string instead of a list, a non-string or empty sequence, a line break in
        a sequence or name, mismatched ``names``, ``width < 1``, a missing folder, or an
        existing file with ``overwrite=False``.

    Examples
    --------
    >>> write_fasta("designs.fa", ["ACGT", "GGCC"])  # doctest: +SKIP
    """
    from bioflow.core.files import atomic_open

    if isinstance(sequences, str | bytes):
        raise ValueError(
            f"sequences must be a list of strings, not one string ({sequences[:20]!r}...): "
            "wrap it in a list"
        )
    seqs = list(sequences)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width!r}")
    for i, s in enumerate(seqs):
        if not isinstance(s, str):
            raise ValueError(f"sequence {i} is a {type(s).__name__}, not a string: {s!r}")
        if not s:
            raise ValueError(f"sequence {i} is empty; FASTA records need at least one letter")
        if any(c in s for c in "\n\r>") or s != s.strip():
            raise ValueError(f"sequence {i} contains a line break, '>' or surrounding spaces")
    if names is None:
        names = [f"seq{i}" for i in range(len(seqs))]
    names = list(names)
    if len(names) != len(seqs):
        raise ValueError(f"{len(names)} names for {len(seqs)} sequences")
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n.strip() or "\n" in n or "\r" in n:
            raise ValueError(f"record name {i} ({n!r}) must be a non-empty one-line string")
    with atomic_open(path, "w", overwrite=overwrite) as fh:
        for name, s in zip(names, seqs, strict=True):
            fh.write(f">{name}\n")
            for i in range(0, len(s), width):
                fh.write(s[i : i + width] + "\n")
