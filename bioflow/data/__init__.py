"""Data layer: the only place that reads AnnData and FASTA (never imports models).

One shape per family: a reader (time course, population set, sequence set) and a batching
module (a LightningDataModule over a seeded batch stream).
"""

from bioflow.data.anndata import cells_to_anndata, match_labels, read_adata, read_representation
from bioflow.data.cells import CellDynamicsDataModule, CellPairDataset
from bioflow.data.fasta import read_fasta, write_fasta
from bioflow.data.populations import PopulationDataModule, PopulationSet, read_populations
from bioflow.data.sequences import (
    ALPHABETS,
    SequenceDataModule,
    decode,
    encode,
    one_hot,
    resolve_alphabet,
)
from bioflow.data.spec import DataSpec, PopulationSpec, SequenceSpec, TimeCourseSpec
from bioflow.data.timecourse import CellTimeSeries, TimeSpec, read_time_series, resolve_time

__all__ = [
    "ALPHABETS",
    "CellDynamicsDataModule",
    "CellPairDataset",
    "CellTimeSeries",
    "DataSpec",
    "PopulationDataModule",
    "PopulationSet",
    "PopulationSpec",
    "SequenceDataModule",
    "SequenceSpec",
    "TimeCourseSpec",
    "TimeSpec",
    "cells_to_anndata",
    "decode",
    "encode",
    "match_labels",
    "one_hot",
    "read_adata",
    "read_fasta",
    "read_populations",
    "read_representation",
    "read_time_series",
    "resolve_alphabet",
    "resolve_time",
    "write_fasta",
]
