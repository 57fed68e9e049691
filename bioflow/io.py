"""Reading and writing files: FASTA sequences and saved models.

FASTA reading and writing live in :mod:`bioflow.data.fasta`; models in
:mod:`bioflow.models.base`.  This module is the one public place for both.
"""

from bioflow.data.fasta import read_fasta, write_fasta
from bioflow.models.base import load_model

__all__ = ["load_model", "read_fasta", "write_fasta"]
