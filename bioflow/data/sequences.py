"""Batches of letter sequences: the stream and the DataModule.

The reader (alphabets, encoding, FASTA / list input) is :mod:`bioflow.data.sequence_set`;
its names are importable from here too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from bioflow.data.builtin import is_builtin
from bioflow.data.sequence_set import (
    ALPHABETS,
    _builtin_sequences,
    decode,
    encode,
    load_sequences,
    one_hot,
    resolve_alphabet,
)
from bioflow.data.spec import SequenceSpec
from bioflow.data.streams import SeededBatchStream, StreamDataModule, draw_rows

__all__ = [
    "ALPHABETS",
    "SequenceBatchStream",
    "SequenceDataModule",
    "decode",
    "encode",
    "load_sequences",
    "one_hot",
    "resolve_alphabet",
]


class SequenceBatchStream(SeededBatchStream):
    """Endless batches ``{"tokens": (b, L), "rows": (b,), "seed"}`` of training sequences.

    With ``targets`` the batches also hold ``"onehot"`` ``(b, L, K)`` and ``"y"`` ``(b,)``.
    Under DDP each rank draws from its own disjoint shard of the sequences.

    Parameters
    ----------
    tokens
        Letter indices ``(n, L)``.
    n_letters
        Alphabet size ``K``.
    batch_size, steps_per_epoch, seed
        Stream settings.
    rows
        Rows of ``tokens`` to draw from (default: all).
    targets
        Optional labels / values ``(n,)`` or ``(n, m)``.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        n_letters: int,
        batch_size: int,
        steps_per_epoch: int,
        seed: int,
        rows: np.ndarray | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        super().__init__(steps_per_epoch, seed)
        self.tokens, self.K, self.batch_size, self.targets = tokens, n_letters, batch_size, targets
        self.rows = np.arange(len(tokens)) if rows is None else np.asarray(rows)

    def shard(self, rank: int, world: int) -> torch.Tensor:
        """Rows of ``rank`` of ``world`` (disjoint; all rows when there are too few)."""
        perm = np.random.default_rng(self.seed).permutation(self.rows)
        part = perm[rank::world]
        return torch.as_tensor(part if len(part) else perm)

    def make_batch(self, shard: torch.Tensor, generator: torch.Generator) -> dict:
        rows = draw_rows(shard, self.batch_size, generator)
        tok = self.tokens[rows]
        batch = {"tokens": tok, "rows": rows}
        if self.targets is not None:
            batch["onehot"] = torch.nn.functional.one_hot(tok, self.K).float()
            batch["y"] = self.targets[rows]
        return batch


class SequenceDataModule(StreamDataModule):
    """Batches ``{"tokens": (b, L)}`` of equal-length sequences, for training and sampling.

    Training batches come from a seeded, rank-sharded stream (exact resume, disjoint DDP
    ranks).  With ``val_fraction > 0`` a seeded split of the sequences is held out;
    validation compares ``val_samples`` model samples with it (marginal KL, 3-mer
    spectrum distance).  ``predict`` samples ``predict_n`` sequences and writes them to the
    FASTA file ``predict_output``.

    Parameters
    ----------
    sequences
        List of strings, a FASTA path, or ``"builtin:motif_sequences"`` /
        ``"builtin:categorical_toy"`` (arguments in ``dataset_kwargs``).
    alphabet
        ``"dna"``, ``"protein"`` or a string of letters (a built-in dataset sets its own).
    batch_size
        Sequences per batch.
    targets
        Optional labels / values per sequence; batches then also hold ``"onehot"`` and
        ``"y"`` (for classifiers).
    steps_per_epoch
        Training batches per (virtual) epoch.
    val_fraction
        Share of the sequences held out for validation (0: validate on training ones).
    val_samples
        Sequences sampled (and reference sequences used) per validation.
    num_workers, seed
        Loader settings.
    dataset_kwargs
        Arguments of the generator of a built-in dataset.
    predict_n, predict_steps, predict_output
        ``predict`` draws ``predict_n`` sequences with ``predict_steps`` steps into the
        FASTA file ``predict_output``.

    Examples
    --------
    >>> dm = SequenceDataModule(["ACGT", "AAAA"], batch_size=2)
    >>> next(iter(dm.train_dataloader()))["tokens"].shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        sequences,
        alphabet: str = "dna",
        batch_size: int = 128,
        targets=None,
        steps_per_epoch: int = 100,
        val_fraction: float = 0.0,
        val_samples: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        dataset_kwargs: dict | None = None,
        predict_n: int = 1000,
        predict_steps: int = 100,
        predict_output: str | None = None,
    ):
        super().__init__()
        from bioflow.data.builtin import input_paths

        self.input_paths = input_paths(sequences)
        if is_builtin(sequences):
            seqs, alphabet, labels = _builtin_sequences(sequences, dataset_kwargs)
            names = [f"#{i}" for i in range(len(seqs))]
            targets = labels if targets is None else targets
        else:
            seqs, names = load_sequences(sequences)
        self.alphabet = resolve_alphabet(alphabet)
        self.tokens = torch.as_tensor(encode(seqs, self.alphabet, names=names))
        self.targets = None
        if targets is not None:
            y = torch.as_tensor(np.asarray(targets))
            if y.shape[0] != len(seqs):
                raise ValueError(f"targets has {y.shape[0]} entries for {len(seqs)} sequences")
            self.targets = y
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        for name, value in (
            ("predict_n", predict_n),
            ("predict_steps", predict_steps),
            ("steps_per_epoch", steps_per_epoch),
            ("val_samples", val_samples),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        n = len(seqs)
        perm = np.random.default_rng(seed).permutation(n)
        n_val = int(round(val_fraction * n))
        if val_fraction > 0 and not 1 <= n_val < n:
            raise ValueError(f"val_fraction={val_fraction} leaves no train or val sequences")
        self.val_rows = np.sort(perm[:n_val]) if n_val else None
        self.train_rows = np.sort(perm[n_val:])
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.val_samples, self.num_workers, self.seed = val_samples, num_workers, seed
        self.predict_n, self.predict_steps = predict_n, predict_steps
        self.predict_output = predict_output

    @property
    def seq_len(self) -> int:
        """Sequence length ``L``."""
        return int(self.tokens.shape[1])

    @property
    def data_spec(self) -> dict:
        """The data description, a plain dict (:class:`~bioflow.data.DataSpec`)."""
        return SequenceSpec(alphabet=self.alphabet, seq_len=self.seq_len).to_dict()

    def make_stream(self) -> SequenceBatchStream:
        return SequenceBatchStream(
            self.tokens,
            len(self.alphabet),
            self.batch_size,
            self.steps_per_epoch,
            self.seed,
            rows=self.train_rows,
            targets=self.targets,
        )

    def val_dataloader(self) -> DataLoader:
        rows = self.val_rows if self.val_rows is not None else self.train_rows
        rng = np.random.default_rng(self.seed + 1)
        if len(rows) > self.val_samples:
            rows = np.sort(rng.choice(rows, self.val_samples, replace=False))
        batch = {"tokens": self.tokens[rows], "seed": self.seed + 1}
        if self.targets is not None:
            batch["onehot"] = torch.nn.functional.one_hot(batch["tokens"], len(self.alphabet))
            batch["onehot"] = batch["onehot"].float()
            batch["y"] = self.targets[rows]
        return self.batches_loader([batch])

    def predict_dataloader(self) -> DataLoader:
        size = 1024
        chunks = [
            {
                "n": min(size, self.predict_n - s),
                "steps": self.predict_steps,
                "seed": self.seed + 7 + s,
            }
            for s in range(0, self.predict_n, size)
        ]
        return self.batches_loader(chunks)

    def write_predictions(
        self, predictions: list, path: str | None = None, *, overwrite: bool = False
    ) -> str:
        """Write sampled sequences (a list of lists of strings) to a FASTA file.

        The file is written atomically; an input file of this DataModule is never
        replaced, an existing file only with ``overwrite=True``.
        """
        from bioflow.core.files import check_output_path
        from bioflow.data.fasta import write_fasta

        path = path or self.predict_output
        if path is None:
            raise ValueError("set data.predict_output to the FASTA path to write")
        check_output_path(path, overwrite=overwrite, inputs=self.input_paths)
        seqs = [s for chunk in predictions for s in chunk]
        write_fasta(path, seqs, names=[f"sample{i}" for i in range(len(seqs))], overwrite=overwrite)
        return path
