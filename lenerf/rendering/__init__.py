"""Ray sampling, importance sampling and compositing: works with any :class:`lenerf.fields.Field`."""
from .marcher import composite_mask, gather_samples, march, weighted_samples
from .rays import ray_box_limits, sample_rays
from .renderer import RenderOutput, RenderSettings, eval_samples, merge_samples, render

__all__ = ["RenderOutput", "RenderSettings", "composite_mask", "eval_samples", "gather_samples", "march",
           "merge_samples", "ray_box_limits", "render", "sample_rays", "weighted_samples"]
