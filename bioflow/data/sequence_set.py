"""The sequence-set reader: alphabets, one-hot encoding, sequences from FASTA or lists."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from bioflow.data.builtin import load_builtin
from bioflow.data.fasta import read_fasta

ALPHABETS = {"dna": "ACGT", "protein": "ACDEFGHIKLMNPQRSTVWY"}


def resolve_alphabet(alphabet: str) -> str:
    """Letters of a named alphabet (``"dna"``, ``"protein"``) or of an explicit string.

    Examples
    --------
    >>> resolve_alphabet("dna")
    'ACGT'
    """
    letters = ALPHABETS.get(alphabet.lower(), alphabet) if isinstance(alphabet, str) else None
    if not letters or len(set(letters)) != len(letters) or len(letters) < 2:
        raise ValueError(
            f"alphabet must be one of {sorted(ALPHABETS)} or a string of >= 2 distinct "
            f"letters, got {alphabet!r}"
        )
    return letters


def encode(
    sequences: Sequence[str], alphabet: str = "dna", *, names: Sequence[str] | None = None
) -> np.ndarray:
    """Letter indices of equal-length sequences, shape ``(n, L)`` (int64).

    Lower case is accepted.  All sequences must have the same length: pad or crop them
    beforehand.

    Raises
    ------
    ValueError
        On an empty list, mixed lengths, or a letter outside the alphabet (naming the record
        and the 1-based position).

    Examples
    --------
    >>> encode(["ACGT", "ttaa"]).tolist()
    [[0, 1, 2, 3], [3, 3, 0, 0]]
    """
    letters = resolve_alphabet(alphabet)
    if isinstance(sequences, str):
        raise ValueError("sequences must be a list of strings, not one string")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("no sequences given")
    names = list(names) if names is not None else [f"#{i}" for i in range(len(seqs))]
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        first = len(seqs[0])
        bad = next(i for i, s in enumerate(seqs) if len(s) != first)
        raise ValueError(
            f"sequences have mixed lengths {sorted(lengths)[:5]}: record {names[bad]!r} has "
            f"length {len(seqs[bad])}, record {names[0]!r} has {first}; pad or crop them to "
            "one length"
        )
    if lengths == {0}:
        raise ValueError("sequences are empty strings")
    keys = {ord(c): i for i, c in enumerate(letters)}
    for i, c in enumerate(letters):  # other case too, unless it is a letter of its own
        for v in (c.upper(), c.lower()):
            if len(v) == 1:
                keys.setdefault(ord(v), i)
    codes_sorted = np.array(sorted(keys), dtype=np.int64)
    values = np.array([keys[c] for c in codes_sorted], dtype=np.int64)
    out = np.empty((len(seqs), len(seqs[0])), dtype=np.int64)
    for r, s in enumerate(seqs):
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos_ = np.searchsorted(codes_sorted, codes).clip(0, len(codes_sorted) - 1)
        bad = codes_sorted[pos_] != codes
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"record {names[r]!r} has letter {s[pos]!r} at position {pos + 1}, outside "
                f"the alphabet {letters!r}"
            )
        row = values[pos_]
        out[r] = row
    return out


def one_hot(sequences: Sequence[str], alphabet: str = "dna") -> np.ndarray:
    """One-hot encoding ``(n, L, K)`` (float32) of equal-length sequences.

    Examples
    --------
    >>> one_hot(["AC"]).tolist()
    [[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]]
    """
    idx = encode(sequences, alphabet)
    return np.eye(len(resolve_alphabet(alphabet)), dtype=np.float32)[idx]


def decode(x, alphabet: str = "dna") -> list[str]:
    """Strings from indices ``(n, L)`` or one-hot / simplex points ``(n, L, K)`` (argmax).

    Examples
    --------
    >>> decode([[0, 1, 2, 3]])
    ['ACGT']
    """
    letters = resolve_alphabet(alphabet)
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if a.ndim == 3:
        a = a.argmax(-1)
    if a.ndim != 2:
        raise ValueError(f"expected (n, L) indices or (n, L, K) points, got shape {a.shape}")
    return ["".join(letters[i] for i in row) for row in a]


def load_sequences(sequences) -> tuple[list[str], list[str]]:
    """Sequences and names from a list of strings or a FASTA path.

    Parameters
    ----------
    sequences
        A list of strings, or the path of a FASTA file.

    Returns
    -------
    sequences, names
        The strings as given (FASTA: upper-cased), and their names (FASTA headers, else
        ``"#0"``, ``"#1"``, ...).

    Examples
    --------
    >>> load_sequences(["ACG", "TTA"])
    (['ACG', 'TTA'], ['#0', '#1'])
    """
    if isinstance(sequences, str | os.PathLike) and (
        isinstance(sequences, os.PathLike) or os.path.exists(sequences)
    ):
        records = read_fasta(sequences)
        return [s for _, s in records], [n for n, _ in records]
    if isinstance(sequences, str):
        raise ValueError(f"{sequences!r} is neither an existing FASTA file nor a list of strings")
    seqs = list(sequences)
    return seqs, [f"#{i}" for i in range(len(seqs))]


def _builtin_sequences(name: str, kwargs: dict | None) -> tuple[list[str], str, np.ndarray | None]:
    """Sequences, alphabet and labels of a built-in sequence dataset."""
    out = load_builtin(name, "sequences", kwargs)
    if name.endswith("categorical_toy"):
        seqs, _, letters = out
        return seqs, letters, None
    seqs, labels = out
    return seqs, "ACGT", labels
