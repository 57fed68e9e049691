"""Synthetic sequence data sets: planted motifs, a Markov chain with a planted motif (known
likelihood) and the Dirichlet-FM categorical toy."""

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


class MarkovMotif:
    """A DNA law with known likelihood: a first-order Markov chain with a planted motif.

    Each sequence is drawn from a stationary Markov chain over ``alphabet`` in which every
    letter is followed by its preferred successor (``successors[i]`` follows
    ``alphabet[i]``) with probability ``successor_prob`` and by each other letter with
    probability ``(1 - successor_prob) / (K - 1)``; the first letter is uniform.  The
    transition matrix is doubly stochastic, so every position's letter is uniform: all
    structure lies between positions.  Then, with probability ``motif_prob``, ``motif``
    overwrites a window chosen uniformly among the ``L - m + 1`` possible ones.

    The likelihood is exact: a sequence's probability is the mixture
    ``(1 - q) p_chain(x) + q / W * sum_w 1[x[w:w+m] = motif] p_chain(x outside w)``, where
    the chain's probability with the window marginalised out bridges the gap with the
    ``(m + 1)``-step transition matrix.

    Parameters
    ----------
    length
        Sequence length ``L`` (>= ``len(motif)``).
    successor_prob
        Probability that a letter is followed by its preferred successor, in ``(0, 1)``.
    successors
        The preferred successor of each letter of ``alphabet`` (a permutation of it).
    motif
        The planted motif (letters of ``alphabet``).
    motif_prob
        Probability ``q`` that a sequence receives the motif, in ``[0, 1]``.
    alphabet
        The letters (default DNA).

    Examples
    --------
    >>> law = MarkovMotif(length=8, motif="TATA")
    >>> seqs, y = law.sample(3, seed=0)
    >>> law.log_prob(seqs).shape
    (3,)
    """

    def __init__(
        self,
        length: int = 32,
        *,
        successor_prob: float = 0.7,
        successors: str = "CGTA",
        motif: str = "TATAAT",
        motif_prob: float = 0.3,
        alphabet: str = "ACGT",
    ):
        if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
            raise ValueError(f"alphabet must hold >= 2 distinct letters, got {alphabet!r}")
        if sorted(successors) != sorted(alphabet):
            raise ValueError(
                f"successors must be a permutation of the alphabet {alphabet!r}, got {successors!r}"
            )
        if not motif or set(motif) - set(alphabet):
            raise ValueError(f"motif must be a non-empty string over {alphabet!r}, got {motif!r}")
        if length < len(motif):
            raise ValueError(f"length {length} is shorter than the motif ({len(motif)})")
        if not 0 < successor_prob < 1:
            raise ValueError(f"successor_prob must be in (0, 1), got {successor_prob}")
        if not 0 <= motif_prob <= 1:
            raise ValueError(f"motif_prob must be in [0, 1], got {motif_prob}")
        self.length, self.alphabet, self.motif = int(length), alphabet, motif
        self.successor_prob, self.successors, self.motif_prob = (
            successor_prob,
            successors,
            motif_prob,
        )
        K = len(alphabet)
        T = np.full((K, K), (1 - successor_prob) / (K - 1))
        for i, s in enumerate(successors):
            T[i, alphabet.index(s)] = successor_prob
        self.transition = T
        self.initial = np.full(K, 1.0 / K)

    def __repr__(self) -> str:
        return (
            f"MarkovMotif(length={self.length}, successor_prob={self.successor_prob}, "
            f"successors={self.successors!r}, motif={self.motif!r}, "
            f"motif_prob={self.motif_prob}, alphabet={self.alphabet!r})"
        )

    def _encode(self, sequences) -> np.ndarray:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
            a = sequences
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"token arrays must be integer, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= len(self.alphabet)):
                raise ValueError(f"tokens must lie in [0, {len(self.alphabet)})")
        else:
            seqs = list(sequences)
            lut = {c: i for i, c in enumerate(self.alphabet)}
            rows = []
            for j, s in enumerate(seqs):
                bad = set(s) - set(lut)
                if bad:
                    raise ValueError(
                        f"sequence {j} has letters {sorted(bad)} outside {self.alphabet!r}"
                    )
                rows.append([lut[c] for c in s])
            if any(len(r) != self.length for r in rows):
                raise ValueError(f"every sequence must have length {self.length}")
            a = np.asarray(rows, dtype=np.int64).reshape(len(rows), self.length)
        if a.shape[0] == 0:
            raise ValueError("no sequences given")
        if a.shape[1] != self.length:
            raise ValueError(f"sequences must have length {self.length}, got {a.shape[1]}")
        return a

    def position_marginals(self) -> np.ndarray:
        """Exact letter law of every position, ``(L, K)`` (rows sum to 1).

        The chain's marginals are uniform; the motif shifts those of the positions its
        windows cover.
        """
        K, L, m = len(self.alphabet), self.length, len(self.motif)
        W = L - m + 1
        out = np.empty((L, K))
        chain = np.empty((L, K))
        chain[0] = self.initial
        for i in range(1, L):
            chain[i] = chain[i - 1] @ self.transition
        for i in range(L):
            out[i] = (1 - self.motif_prob) * chain[i]
            for w in range(W):
                if w <= i < w + m:
                    out[i, self.alphabet.index(self.motif[i - w])] += self.motif_prob / W
                else:
                    out[i] += self.motif_prob / W * chain[i]
        return out

    def sample(self, n: int, *, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """Draw ``n`` sequences.

        Returns
        -------
        (list[str], numpy.ndarray)
            Sequences and labels ``(n,)``: 1 if the sequence contains the motif (planted or
            by chance), else 0.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        K, L, m = len(self.alphabet), self.length, len(self.motif)
        x = np.empty((n, L), dtype=np.int64)
        x[:, 0] = rng.choice(K, size=n, p=self.initial)
        cum = self.transition.cumsum(1)
        for i in range(1, L):
            u = rng.random(n)
            x[:, i] = np.minimum((cum[x[:, i - 1]] < u[:, None]).sum(1), K - 1)
        planted = rng.random(n) < self.motif_prob
        starts = rng.integers(0, L - m + 1, size=n)
        mot = np.array([self.alphabet.index(c) for c in self.motif])
        for i in np.flatnonzero(planted):
            x[i, starts[i] : starts[i] + m] = mot
        letters = np.array(list(self.alphabet))
        seqs = ["".join(letters[row]) for row in x]
        return seqs, np.array([int(self.motif in s) for s in seqs])

    def log_prob(self, sequences) -> np.ndarray:
        """Exact log-probabilities (nats) of sequences (strings or letter indices ``(n, L)``).

        Returns
        -------
        numpy.ndarray
            ``(n,)``; ``-inf`` for a sequence the law cannot produce.
        """
        x = self._encode(sequences)
        n, L = x.shape
        m = len(self.motif)
        logT = np.log(self.transition)
        lt = logT[x[:, :-1], x[:, 1:]]  # (n, L - 1): log T[x_{i-1}, x_i] for i = 1..L-1
        C = np.concatenate([np.zeros((n, 1)), np.cumsum(lt, 1)], 1)  # C[:, j] = sum_{i<=j}
        lp0 = np.log(self.initial)[x[:, 0]]
        chain = lp0 + C[:, -1]
        if self.motif_prob == 0:
            return chain
        W = L - m + 1
        mot = np.array([self.alphabet.index(c) for c in self.motif])
        Tm1 = np.linalg.matrix_power(self.transition, m + 1)
        first = self.initial @ np.linalg.matrix_power(self.transition, m)  # law of x_m
        terms = np.full((n, W), -np.inf)
        for w in range(W):
            match = (x[:, w : w + m] == mot).all(1)
            if not match.any():
                continue
            if w == 0:
                val = np.zeros(n)
                if m < L:
                    val = np.log(first)[x[:, m]] + C[:, -1] - C[:, m]
            else:
                val = lp0 + C[:, w - 1]
                if w + m < L:
                    val = val + np.log(Tm1[x[:, w - 1], x[:, w + m]]) + C[:, -1] - C[:, w + m]
            terms[match, w] = val[match]
        with np.errstate(divide="ignore"):
            planted = np.log(self.motif_prob / W) + _logsumexp(terms, 1)
            return np.logaddexp(np.log1p(-self.motif_prob) + chain, planted)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    mx = a.max(axis, keepdims=True)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(a - safe).sum(axis, keepdims=True)) + safe
    return out.squeeze(axis)


def markov_motif_sequences(
    n: int = 2000,
    *,
    length: int = 32,
    successor_prob: float = 0.7,
    successors: str = "CGTA",
    motif: str = "TATAAT",
    motif_prob: float = 0.3,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """DNA from a Markov chain with a planted motif: a sequence task with known likelihood.

    Draws ``n`` sequences of :class:`MarkovMotif` (see there for the law); score any
    sequences exactly with ``MarkovMotif(length, ...).log_prob(sequences)``.  At the
    defaults (``length=32``, successor probability 0.7, ``TATAAT`` in 30%) the per-position
    letter laws are uniform, the data's mean negative log-likelihood is 30.6 nats (20,000
    draws) and about 29% of the sequences hold the motif.

    Parameters
    ----------
    n
        Number of sequences.
    length, successor_prob, successors, motif, motif_prob
        The law's parameters (see :class:`MarkovMotif`).
    seed
        Random seed.

    Returns
    -------
    (list[str], numpy.ndarray)
        Sequences and labels ``(n,)``: 1 if the sequence contains the motif.

    Examples
    --------
    >>> seqs, y = markov_motif_sequences(5, seed=1)
    >>> len(seqs), len(seqs[0]), y.shape
    (5, 32, (5,))
    >>> law = MarkovMotif(32)
    >>> bool(np.isfinite(law.log_prob(seqs)).all())
    True
    """
    law = MarkovMotif(
        length,
        successor_prob=successor_prob,
        successors=successors,
        motif=motif,
        motif_prob=motif_prob,
    )
    return law.sample(n, seed=seed)
