"""Data layer: the only place that reads AnnData and FASTA (never imports models).

One shape per family: a reader (time course, population set, sequence set) and a batching
module (a LightningDataModule over a seeded batch stream).  Members load on first use.
"""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(
            ["cells_to_anndata", "match_labels", "read_adata", "read_representation"],
            ".anndata",
        ),
        **dict.fromkeys(["CellDynamicsDataModule", "CellPairDataset"], ".cells"),
        **dict.fromkeys(["read_fasta", "write_fasta"], ".fasta"),
        **dict.fromkeys(
            ["PopulationDataModule", "PopulationSet", "read_populations"], ".populations"
        ),
        **dict.fromkeys(
            ["ALPHABETS", "SequenceDataModule", "decode", "encode", "one_hot", "resolve_alphabet"],
            ".sequences",
        ),
        **dict.fromkeys(
            ["CellTimeSeries", "TimeSpec", "read_time_series", "resolve_time"], ".timecourse"
        ),
        **dict.fromkeys(["DataSpec", "PopulationSpec", "SequenceSpec", "TimeCourseSpec"], ".spec"),
        **dict.fromkeys(["H5Rows", "H5adView"], ".backed"),
    },
)
