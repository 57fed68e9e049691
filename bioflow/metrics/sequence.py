"""Distances between sets of letter sequences: per-position marginal KL, k-mer spectra."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _tokens(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be letter indices (n, L) with n >= 1, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer letter indices, got dtype {a.dtype}")
    return a


def letter_frequencies(tokens: ArrayLike, n_letters: int, pseudocount: float = 0.0) -> np.ndarray:
    """Per-position letter frequencies ``(L, K)`` of sequences ``tokens`` ``(n, L)``.

    Examples
    --------
    >>> letter_frequencies([[0, 1], [0, 0]], 2).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    a = _tokens(tokens, "tokens")
    if a.min() < 0 or a.max() >= n_letters:
        raise ValueError(f"tokens must lie in [0, {n_letters}), got [{a.min()}, {a.max()}]")
    counts = np.stack([np.bincount(col, minlength=n_letters) for col in a.T]).astype(float)
    counts += pseudocount
    return counts / counts.sum(1, keepdims=True)


def marginal_kl(tokens: ArrayLike, probs: ArrayLike) -> float:
    """Mean over positions of ``KL(empirical letters of tokens || probs)``.

    Parameters
    ----------
    tokens
        Generated sequences as letter indices ``(n, L)``.
    probs
        Target letter distribution per position ``(L, K)`` (rows sum to 1).

    Returns
    -------
    float
        The KL in nats; its finite-sample floor is about ``(K - 1) / (2 n)``.

    Examples
    --------
    >>> round(marginal_kl([[0], [1]], [[0.5, 0.5]]), 6)
    0.0
    """
    p = np.asarray(probs, dtype=float)
    a = _tokens(tokens, "tokens")
    if p.ndim != 2 or p.shape[0] != a.shape[1]:
        raise ValueError(f"probs must be (L={a.shape[1]}, K), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise ValueError("probs must be finite, non-negative, with rows summing to 1")
    q = letter_frequencies(a, p.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q / p), 0.0)
    return float(terms.sum(1).mean())


def kmer_spectrum(tokens: ArrayLike, n_letters: int, k: int = 3) -> np.ndarray:
    """Normalised counts ``(K**k,)`` of the k-mers of sequences ``tokens`` ``(n, L)``.

    Examples
    --------
    >>> kmer_spectrum([[0, 1, 1]], 2, k=2).tolist()
    [0.0, 0.5, 0.0, 0.5]
    """
    a = _tokens(tokens, "tokens").astype(np.int64)
    if a.min() < 0 or a.max() >= n_letters:
        raise ValueError(f"tokens must lie in [0, {n_letters}), got [{a.min()}, {a.max()}]")
    if not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be in [1, L={a.shape[1]}], got {k}")
    if n_letters**k > 50_000_000:
        raise ValueError(f"K**k = {n_letters}**{k} bins is too many; lower k")
    codes = np.zeros((a.shape[0], a.shape[1] - k + 1), dtype=np.int64)
    for j in range(k):
        codes = codes * n_letters + a[:, j : a.shape[1] - k + 1 + j]
    counts = np.bincount(codes.ravel(), minlength=n_letters**k).astype(float)
    return counts / counts.sum()


def kmer_distance(a: ArrayLike, b: ArrayLike, n_letters: int, k: int = 3) -> float:
    """L1 distance between the k-mer spectra of two sets of sequences ``(n, L)``, ``(m, L')``.

    Ranges from 0 (same spectrum) to 2 (no k-mer in common).

    Examples
    --------
    >>> kmer_distance([[0, 1, 0]], [[1, 0, 1]], 2, k=2)
    0.0
    """
    return float(np.abs(kmer_spectrum(a, n_letters, k) - kmer_spectrum(b, n_letters, k)).sum())


def kmer_distances(
    a: ArrayLike, b: ArrayLike, n_letters: int, ks: tuple[int, ...] = (3, 4, 6)
) -> dict[int, float]:
    """:func:`kmer_distance` at several ``k``: ``{k: L1 distance}``.

    Examples
    --------
    >>> kmer_distances([[0, 1, 0]], [[1, 0, 1]], 2, ks=(1, 2))
    {1: 0.6666666666666666, 2: 0.0}
    """
    return {int(k): kmer_distance(a, b, n_letters, k=k) for k in ks}


def negative_log_likelihood(sequences, log_prob) -> float:
    """Mean negative log-likelihood (nats) of sequences under a known model.

    Parameters
    ----------
    sequences
        Whatever ``log_prob`` accepts (strings or letter indices ``(n, L)``), ``n >= 1``.
    log_prob
        Callable returning the exact log-probabilities ``(n,)`` of ``sequences``, e.g.
        :meth:`bioflow.datasets.MarkovMotif.log_prob`.

    Returns
    -------
    float
        ``-mean(log_prob(sequences))``; ``inf`` if some sequence is impossible under the model.
        On samples of the model itself it estimates the model's entropy, the floor that a
        faithful generator reaches; values below it mean the generator concentrates on likely
        sequences, values above it that it produces unlikely ones.

    Examples
    --------
    >>> import numpy as np
    >>> negative_log_likelihood([[0, 1]], lambda x: np.array([np.log(0.25)]))
    1.3862943611198906
    """
    if len(sequences) == 0:
        raise ValueError("sequences is empty")
    lp = np.asarray(log_prob(sequences), dtype=float)
    if lp.shape != (len(sequences),):
        raise ValueError(f"log_prob must return shape ({len(sequences)},), got {lp.shape}")
    return float(-lp.mean())


def _rows(sequences, name: str) -> list:
    if isinstance(sequences, np.ndarray):
        if sequences.ndim != 2:
            raise ValueError(
                f"{name} as an array must be letter indices (n, L), got {sequences.shape}"
            )
        rows = [r.tobytes() for r in np.ascontiguousarray(sequences)]
    else:
        rows = [s if isinstance(s, str) else tuple(s) for s in sequences]
    if not rows:
        raise ValueError(f"{name} is empty")
    return rows


def uniqueness(sequences) -> float:
    """Fraction of distinct sequences among ``sequences`` (strings or indices ``(n, L)``).

    Examples
    --------
    >>> uniqueness(["ACG", "ACG", "TTT", "GGA"])
    0.75
    """
    rows = _rows(sequences, "sequences")
    return len(set(rows)) / len(rows)


def novelty(sequences, reference) -> float:
    """Fraction of ``sequences`` that do not occur in ``reference`` (e.g. the training set).

    Both are strings or letter-index arrays ``(n, L)`` of the same kind.

    Examples
    --------
    >>> novelty(["ACG", "TTT"], ["ACG", "GGG"])
    0.5
    """
    rows = _rows(sequences, "sequences")
    ref = set(_rows(reference, "reference"))
    return sum(r not in ref for r in rows) / len(rows)


def motif_share(sequences, motif: str) -> float:
    """Fraction of sequences (strings) that contain ``motif`` anywhere.

    Examples
    --------
    >>> motif_share(["ATATAATC", "GGGG"], "TATAAT")
    0.5
    """
    seqs = list(sequences)
    if not seqs:
        raise ValueError("sequences is empty")
    if not isinstance(motif, str) or not motif:
        raise ValueError(f"motif must be a non-empty string, got {motif!r}")
    return sum(motif in s for s in seqs) / len(seqs)


def diversity(sequences, *, n_pairs: int = 2000, seed: int = 0) -> float:
    """Mean normalised Hamming distance between random pairs of equal-length sequences.

    Parameters
    ----------
    sequences
        Strings of equal length or letter indices ``(n, L)``, ``n >= 2``.
    n_pairs
        Random pairs (distinct indices) to average over.
    seed
        Seed of the pair draw.

    Examples
    --------
    >>> diversity(["AAAA", "AATT"], n_pairs=10)
    0.5
    """
    a = (
        np.asarray([list(s) for s in sequences])
        if not isinstance(sequences, np.ndarray)
        else sequences
    )
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"diversity needs >= 2 equal-length sequences, got shape {a.shape}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, a.shape[0], n_pairs)
    j = (i + rng.integers(1, a.shape[0], n_pairs)) % a.shape[0]  # j != i
    return float((a[i] != a[j]).mean())
