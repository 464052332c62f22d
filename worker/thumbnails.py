"""Small JPEGs kept with a job so that its page works when reopened or shared: a thumbnail of
every image (an image job's one, each batch item's) and, for every sampled video frame, the
frame with its face boxes drawn in. The service never serves uploads back; these are
size-bounded copies made from the pixels the model saw, stored beside the upload and purged
with the job (cancel, retention) like everything else under the job's storage prefix.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import cv2
import numpy as np

from shared.storage import Storage

log = logging.getLogger("rrr.worker")

# Longest side, in pixels, of what is kept: an image job's picture fills the result panel, a
# batch card or a video frame is smaller on the page. JPEG quality 80: no visible blocking at
# these sizes. A thumbnail that still encodes above MAX_BYTES is re-encoded at lower quality.
IMAGE_SIDE = 640
ITEM_SIDE = 320
FRAME_SIDE = 480
QUALITY = 80
MAX_BYTES = 160_000

# face outlines by verdict, as on the page (RGB)
COLOURS = {"FAKE": (220, 38, 38), "REAL": (22, 163, 74), "UNCERTAIN": (217, 119, 6)}


def shrink(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` with its longest side at most ``side`` pixels, and the scale applied."""
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def jpeg(rgb: np.ndarray) -> bytes:
    """RGB -> JPEG bytes of at most MAX_BYTES (lower quality until it fits)."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    for quality in (QUALITY, 65, 50, 35):
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        if len(data) <= MAX_BYTES:
            break
    return data.tobytes()


def image_thumbnail(rgb: np.ndarray, side: int = IMAGE_SIDE) -> bytes:
    return jpeg(shrink(rgb, side)[0])


def frame_image(rgb: np.ndarray, faces: list[dict[str, Any]], side: int = FRAME_SIDE) -> bytes:
    """The frame, shrunk, with each face's box in its verdict's colour and its number (as the
    page lists them: Face 1, Face 2, ...)."""
    small, scale = shrink(rgb, side)
    small = np.ascontiguousarray(small.copy() if small is rgb else small)
    thick = max(1, round(max(small.shape[:2]) / 200))
    for number, face in enumerate(faces, 1):
        x, y, w, h = (round(v * scale) for v in face["box"])
        colour = COLOURS.get(face.get("prediction", ""), (255, 255, 255))
        cv2.rectangle(small, (x, y), (x + w, y + h), colour, thick)
        cv2.putText(
            small,
            str(number),
            (x + thick + 1, max(y - 3 * thick, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * thick,
            colour,
            thick,
            cv2.LINE_AA,
        )
    return jpeg(small)


def keep(storage: Storage, key: str, data: bytes) -> bool:
    """Store a thumbnail; a failure to keep one is logged and never fails the job (the page
    then shows the result without that picture)."""
    try:
        storage.put(key, io.BytesIO(data), len(data))
        return True
    except Exception as exc:
        log.warning("could not keep %s: %s: %s", key, exc.__class__.__name__, exc)
        return False
