"""EG3D in plain PyTorch: official checkpoints loaded safely (no code execution), no custom CUDA ops."""
from .generator import EG3D, OSGDecoder, TriPlaneField
from .official import OfficialCheckpoint, read_official_pickle

__all__ = ["EG3D", "OSGDecoder", "OfficialCheckpoint", "TriPlaneField", "read_official_pickle"]
