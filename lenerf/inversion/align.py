"""Face detection and FFHQ-style alignment with OpenCV's Haar cascades (their weights ship inside the
``opencv-python-headless`` 4.x wheel, so this works with no network; 5.x wheels no longer carry them).

Humans: the largest frontal face, its two eyes (eye cascade inside the face box; a box-relative estimate when
fewer than two are found) and a box-relative mouth position, then the FFHQ crop: a square oriented along the eye
line, centred slightly below the eyes, of side max(4 x eye distance, 3.6 x eye-to-mouth distance). Cats: the
largest cat face (frontal cat cascade), a square of twice its size around it (AFHQ-like framing).
EG3D's own preprocessing re-centres FFHQ crops with a 3D face reconstruction we cannot ship; the remaining
framing/camera mismatch is absorbed by optimising the camera during inversion.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import InputError

MIN_FACE = 48  # pixels: smaller faces carry too little detail to invert


@dataclass
class AlignedFace:
    image: Image.Image  # size x size RGB crop
    box: tuple[int, int, int, int]  # detected face (x, y, w, h) in the photo, or the whole photo for "center"
    quad: np.ndarray  # [4, 2] crop corners in the photo (top-left, bottom-left, bottom-right, top-right)
    eyes: np.ndarray | None = None  # [2, 2] (left, right) in the photo
    notes: list[str] = field(default_factory=list)


def _cascade(name: str):
    try:
        import cv2
    except ImportError:
        raise InputError("face detection needs opencv-python-headless 4.x: pip install 'opencv-python-headless<5'") \
            from None
    path = cv2.data.haarcascades + name
    c = cv2.CascadeClassifier(path)
    if c.empty():
        raise InputError(f"OpenCV's {name} is missing (opencv-python-headless 5.x no longer ships the Haar "
                         "cascades): pip install 'opencv-python-headless<5'")
    return c


def detect_faces(photo: Image.Image, kind: str = "human") -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h), largest first, at least :data:`MIN_FACE` // 2 pixels."""
    import cv2
    gray = cv2.equalizeHist(np.asarray(photo.convert("L")))
    if kind == "human":
        boxes = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(gray, 1.1, 5, minSize=(24, 24))
    elif kind == "cat":
        boxes = _cascade("haarcascade_frontalcatface.xml").detectMultiScale(gray, 1.05, 4, minSize=(24, 24))
    else:
        raise InputError(f"kind must be 'human' or 'cat', got {kind!r}")
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


def _eyes(photo: Image.Image, box) -> tuple[np.ndarray, bool]:
    import cv2
    x, y, w, h = box
    gray = np.asarray(photo.convert("L"))[y:y + int(0.6 * h), x:x + w]
    found = _cascade("haarcascade_eye.xml").detectMultiScale(gray, 1.1, 5, minSize=(max(8, w // 10),) * 2)
    centres = sorted(((ex + ew / 2 + x, ey + eh / 2 + y) for ex, ey, ew, eh in found), key=lambda p: p[0])
    if len(centres) >= 2:
        left, right = np.array(centres[0]), np.array(centres[-1])
        d = right - left
        if 0.25 * w < d[0] < 0.7 * w and abs(d[1]) < 0.25 * w:
            return np.stack([left, right]), True
    return np.array([[x + 0.3 * w, y + 0.38 * h], [x + 0.7 * w, y + 0.38 * h]]), False


def _crop_quad(photo: Image.Image, quad: np.ndarray, size: int) -> Image.Image:
    """Resample the quadrilateral ``quad`` of the photo into a size x size square; outside the photo the border is
    mirrored (so no black corners reach the generator)."""
    w, h = photo.size
    pad = int(np.ceil(max(0, -quad.min(), (quad[:, 0] - w).max(), (quad[:, 1] - h).max()))) + 4
    arr = np.pad(np.asarray(photo), ((pad, pad), (pad, pad), (0, 0)), mode="reflect" if pad < min(w, h) else "edge")
    q = (quad + pad).flatten().tolist()
    return Image.fromarray(arr).transform((size, size), Image.QUAD, q, Image.BILINEAR)


def align_face(photo: Image.Image, kind: str = "human", crop: str = "auto", size: int = 512) -> AlignedFace:
    """Detect the largest face and crop it to the FFHQ (human) or AFHQ-like (cat) framing.

    ``crop``: "auto" (detect), or "center" (no detection: the centred square, for photos that are already a
    close-up crop)."""
    w, h = photo.size
    if crop == "center":
        s = min(w, h)
        x0, y0 = (w - s) / 2, (h - s) / 2
        quad = np.array([[x0, y0], [x0, y0 + s], [x0 + s, y0 + s], [x0 + s, y0]])
        return AlignedFace(_crop_quad(photo, quad, size), (int(x0), int(y0), s, s), quad, None,
                           ["no detection: centred square crop"])
    if crop != "auto":
        raise InputError(f"crop must be 'auto' or 'center', got {crop!r}")
    boxes = detect_faces(photo, kind)
    if not boxes:
        what = "face" if kind == "human" else "cat face"
        raise InputError(f"no {what} found in the photo. Use a well-lit, roughly frontal photo; for a close-up that "
                         "is already cropped, choose the centre crop (--crop center)")
    if kind == "human" and len(boxes) > 1:  # Haar cascades give false positives: prefer boxes with two eyes
        boxes = sorted(boxes, key=lambda b: (not _eyes(photo, b)[1], -b[2] * b[3]))
    box = boxes[0]
    notes = [f"{len(boxes)} face candidates found: using the largest one with two visible eyes"
             if kind == "human" else f"{len(boxes)} cat faces found: using the largest"] if len(boxes) > 1 else []
    if box[2] < MIN_FACE:
        raise InputError(f"the face is too small ({box[2]} pixels wide, at least {MIN_FACE} needed); use a closer "
                         "or larger photo")
    x, y, bw, bh = box
    if kind == "cat":
        c, half = np.array([x + bw / 2, y + bh / 2]), bw
        quad = np.array([c + [-half, -half], c + [-half, half], c + [half, half], c + [half, -half]])
        return AlignedFace(_crop_quad(photo, quad, size), box, quad, None, notes)
    eyes, detected = _eyes(photo, box)
    if not detected:
        notes.append("eyes not found: using the face box's typical eye positions")
    mouth = np.array([x + 0.5 * bw, y + 0.78 * bh])
    eye_avg = eyes.mean(0)
    eye_to_eye, eye_to_mouth = eyes[1] - eyes[0], mouth - eye_avg
    xv = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    xv = xv / np.linalg.norm(xv) * max(np.linalg.norm(eye_to_eye) * 2.0, np.linalg.norm(eye_to_mouth) * 1.8)
    yv = np.array([-xv[1], xv[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - xv - yv, c - xv + yv, c + xv + yv, c + xv - yv])
    return AlignedFace(_crop_quad(photo, quad, size), box, quad, eyes, notes)
