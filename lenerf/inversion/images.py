"""Reading user photos robustly: any format PIL reads, EXIF orientation, odd modes, size limits, clear errors."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

MAX_SIDE = 2048  # larger photos are downscaled to this (faces stay far above the detector's minimum)
MIN_SIDE = 64
MAX_PIXELS = 100_000_000  # refuse decompression bombs before decoding


@dataclass
class Photo:
    """An RGB photo (PIL, 8 bit) and notes on what was done to it (shown to the user)."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)


def load_photo(src, max_side: int = MAX_SIDE) -> Photo:
    """Open ``src`` (path, bytes, file object or PIL image) as 8-bit RGB: EXIF orientation applied, first frame of
    an animation, 16-bit / CMYK / grayscale / palette / alpha converted, downscaled to ``max_side``.

    Raises :class:`InputError` with a message for the user for anything that is not a usable image."""
    notes: list[str] = []
    if isinstance(src, Image.Image):
        img = src
    else:
        if isinstance(src, (bytes, bytearray)):
            src = io.BytesIO(src)
        elif isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
            raise InputError(f"no such file: {src}")
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            img = Image.open(src)
            img.load()  # decode now: truncated or corrupt data fails here, not later
        except UnidentifiedImageError:
            raise InputError("this file is not an image PIL can read (expected JPEG, PNG, WebP, ...)") from None
        except Image.DecompressionBombError:
            raise InputError(f"the image is too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"the image file is damaged or truncated ({e})") from None
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
        notes.append(f"animated image: using its first frame of {img.n_frames}")
    try:
        rotated = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF: keep the pixels as stored
        rotated, _ = img, notes.append("unreadable EXIF orientation ignored")
    if rotated is not img and rotated.size != img.size:
        notes.append("rotated according to its EXIF orientation")
    img = rotated
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        img = Image.fromarray((a / hi * 255).round().clip(0, 255).astype("uint8"), "L")
        notes.append("16-bit image converted to 8 bit")
    elif img.mode == "F":
        import numpy as np
        a = np.asarray(img, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12)
        img = Image.fromarray((a * 255).round().astype("uint8"), "L")
        notes.append("floating-point image rescaled to 8 bit")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
        notes.append("transparency composited over white")
    if img.mode != "RGB":
        if img.mode in ("L", "1"):
            notes.append("grayscale image: colours cannot be recovered")
        elif img.mode == "CMYK":
            notes.append("CMYK image converted to RGB")
        img = img.convert("RGB")
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise InputError(f"the image is too small ({w}x{h}); at least {MIN_SIDE} pixels on each side are needed")
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
        notes.append(f"downscaled from {w}x{h} to {img.size[0]}x{img.size[1]}")
    return Photo(img, notes)
