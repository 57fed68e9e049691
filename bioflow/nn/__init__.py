"""Plain ``torch.nn`` building blocks shared by the model families."""

from bioflow.nn.embeddings import FourierFeatures, SinusoidalTimeEmbedding
from bioflow.nn.fields import MLPVectorField, ResidualMLPVectorField, make_activation
from bioflow.nn.population import (
    KNNGraph,
    KNNGraphConv,
    PopulationEncoder,
    knn_edges,
    knn_indices,
)
from bioflow.nn.sequence import DilatedConvNet, SequenceClassifier, SequenceTransformer

__all__ = [
    "DilatedConvNet",
    "FourierFeatures",
    "KNNGraph",
    "KNNGraphConv",
    "MLPVectorField",
    "PopulationEncoder",
    "ResidualMLPVectorField",
    "SequenceClassifier",
    "SequenceTransformer",
    "SinusoidalTimeEmbedding",
    "knn_edges",
    "knn_indices",
    "make_activation",
]
