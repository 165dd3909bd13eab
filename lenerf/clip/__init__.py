"""CLIP models (MiniCLIP or any open_clip ViT), differentiable preprocessing and relevance maps."""
from .models import ClipModel, load_clip
from .relevance import otsu_thresholds, relevance_maps

__all__ = ["ClipModel", "load_clip", "otsu_thresholds", "relevance_maps"]
