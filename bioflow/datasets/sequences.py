"""Synthetic sequence data sets: planted motifs and the Dirichlet-FM categorical toy."""

from __future__ import annotations

import numpy as np


def motif_sequences(
    n: int = 1000,
    *,
    length: int = 50,
    motif: str = "TATAAT",
    motif_fraction: float = 0.5,
    gc: float = 0.5,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """Random DNA with ``motif`` planted at a random position in a fraction of sequences.

    Parameters
    ----------
    n
        Number of sequences.
    length
        Sequence length (>= ``len(motif)``).
    motif
        DNA motif to plant.
    motif_fraction
        Fraction of sequences that receive the motif (label 1).
    gc
        GC content of the background.
    seed
        Random seed.

    Returns
    -------
    (list[str], numpy.ndarray)
        Sequences and labels ``(n,)``: 1 if the sequence contains the motif, else 0
        (background sequences that contain it by chance are labelled 1 too).

    Examples
    --------
    >>> seqs, y = motif_sequences(10, length=20, seed=1)
    >>> len(seqs), len(seqs[0]), y.shape
    (10, 20, (10,))
    """
    from bioflow.datasets._checks import check_count

    check_count("n", n)
    check_count("length", length)
    if not isinstance(motif, str):
        raise ValueError(f"motif must be a non-empty DNA string, got {motif!r}")
    motif = motif.upper()
    if set(motif) - set("ACGT") or not motif:
        raise ValueError(f"motif must be a non-empty DNA string, got {motif!r}")
    if length < len(motif):
        raise ValueError(f"length {length} is shorter than the motif ({len(motif)})")
    if not 0 <= motif_fraction <= 1:
        raise ValueError(f"motif_fraction must be in [0, 1], got {motif_fraction}")
    if not 0 < gc < 1:
        raise ValueError(f"gc must be in (0, 1), got {gc}")
    rng = np.random.default_rng(seed)
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    idx = rng.choice(4, size=(n, length), p=p)
    letters = np.array(list("ACGT"))
    seqs = ["".join(letters[row]) for row in idx]
    planted = rng.random(n) < motif_fraction
    for i in np.flatnonzero(planted):
        pos = rng.integers(0, length - len(motif) + 1)
        s = seqs[i]
        seqs[i] = s[:pos] + motif + s[pos + len(motif) :]
    y = np.array([int(motif in s) for s in seqs])
    return seqs, y


def categorical_toy(
    K: int,
    *,
    length: int = 4,
    n: int = 10000,
    concentration: float = 1.0,
    seed: int = 0,
) -> tuple[list[str], np.ndarray, str]:
    """The toy task of Dirichlet flow matching: independent random categoricals per position.

    Each position ``l`` has its own target law ``pi_l ~ Dirichlet(concentration * 1_K)``;
    sequences draw each letter independently.

    Parameters
    ----------
    K
        Alphabet size (2 ... 1000).
    length
        Sequence length.
    n
        Number of sequences drawn.
    concentration
        Dirichlet concentration of the target laws.
    seed
        Random seed.

    Returns
    -------
    (list[str], numpy.ndarray, str)
        Sequences, the target laws ``(length, K)`` and the alphabet (``K`` distinct
        characters).

    Examples
    --------
    >>> seqs, probs, alphabet = categorical_toy(20, n=5)
    >>> len(alphabet), probs.shape, len(seqs[0])
    (20, (4, 20), 4)
    """
    from bioflow.datasets._checks import check_count

    if isinstance(K, bool) or not isinstance(K, int | np.integer) or not 2 <= K <= 1000:
        raise ValueError(f"K must be an integer in [2, 1000], got {K!r}")
    check_count("length", length)
    check_count("n", n)
    if not (isinstance(concentration, int | float) and 0 < concentration < float("inf")):
        raise ValueError(f"concentration must be a finite number > 0, got {concentration!r}")
    rng = np.random.default_rng(seed)
    alphabet = "".join(chr(0x100 + i) for i in range(K))
    probs = rng.dirichlet(np.full(K, concentration), size=length)
    cols = [rng.choice(K, size=n, p=probs[l_]) for l_ in range(length)]
    idx = np.stack(cols, axis=1)
    letters = np.array(list(alphabet))
    return ["".join(letters[row]) for row in idx], probs, alphabet
