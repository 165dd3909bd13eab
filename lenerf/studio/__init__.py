"""The app's engine (no UI code): :class:`Studio` (generators, edits, previews, turntables, training jobs) and the
background training queue. ``app.py`` is a Gradio layout over this."""
from .jobs import ComputeGate, TrainingQueue, TrainJob
from .service import Limits, Studio, check_prompt, check_seed, describe_job

__all__ = ["ComputeGate", "Limits", "Studio", "TrainJob", "TrainingQueue", "check_prompt", "check_seed",
           "describe_job"]
