"""Real-image inversion: read a photo, find and align the face, invert it into a generator (w/w+, camera,
optional pivotal tuning), save an inversion package that ``lenerf edit --inversion`` accepts."""
from .align import AlignedFace, align_face, detect_faces
from .images import Photo, load_photo
from .invert import Inversion, InversionConfig, apply_delta, image_to_tensor, invert, psnr
from .perceptual import load_perceptual

__all__ = ["AlignedFace", "Inversion", "InversionConfig", "Photo", "align_face", "apply_delta", "detect_faces",
           "image_to_tensor", "invert", "load_perceptual", "load_photo", "psnr"]
