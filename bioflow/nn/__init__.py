"""Plain ``torch.nn`` building blocks shared by the model families."""

from bioflow.nn.embeddings import FourierFeatures, SinusoidalTimeEmbedding
from bioflow.nn.fields import MLPVectorField, ResidualMLPVectorField, make_activation
from bioflow.nn.population import PopulationEncoder, knn_edges
from bioflow.nn.sequence import DilatedConvNet, SequenceClassifier, SequenceTransformer

__all__ = [
    "DilatedConvNet",
    "FourierFeatures",
    "MLPVectorField",
    "PopulationEncoder",
    "ResidualMLPVectorField",
    "SequenceClassifier",
    "SequenceTransformer",
    "SinusoidalTimeEmbedding",
    "knn_edges",
    "make_activation",
]
