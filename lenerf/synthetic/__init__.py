"""The synthetic heads world: a procedural generator with ground truth, MiniCLIP and an attribute classifier."""
from .world import ATTRIBUTES, LABELS, PALETTES, PARTS, SyntheticHeadField, SyntheticHeads, captions_for

__all__ = ["ATTRIBUTES", "LABELS", "PALETTES", "PARTS", "SyntheticHeadField", "SyntheticHeads", "captions_for"]
