"""Find faces in an RGB frame and cut padded square crops around them.

The detector is OpenCV's frontal-face Haar cascade, whose weights ship inside the
opencv-python-headless wheel (nothing is downloaded). Detection runs on a downscaled grey copy;
boxes are mapped back to the original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DETECT_MAX_SIDE = 640  # detection resolution: Haar cost grows with pixels, recall barely does
# A tight face crop fills the whole image, where Haar's sliding window cannot fit around it;
# a mirrored border gives the window room.
BORDER_FRACTION = 0.2
MIN_FACE_FRACTION = 0.06  # ignore "faces" smaller than this share of the shorter side


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in original pixels
    score: float  # detector confidence (Haar: number of neighbour detections)


class FaceDetector:
    """Haar cascade face detector; one instance per process (it is not thread-safe)."""

    def __init__(self, min_neighbors: int = 5) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"could not load the face cascade from {path}")
        self.min_neighbors = min_neighbors

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        border = int(BORDER_FRACTION * max(grey.shape))
        padded = cv2.copyMakeBorder(grey, border, border, border, border, cv2.BORDER_REFLECT)
        min_side = max(20, int(MIN_FACE_FRACTION * min(grey.shape)))
        boxes, _, weights = self._cascade.detectMultiScale3(
            padded,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), weight in zip(boxes, weights, strict=False):
            # back to unpadded, then to original pixels; clip to the frame
            x0 = max(0.0, (x - border) / scale)
            y0 = max(0.0, (y - border) / scale)
            x1 = min(float(width), (x - border + w) / scale)
            y1 = min(float(height), (y - border + h) / scale)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            faces.append(Face((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), float(weight)))
        return _suppress_overlaps(faces)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def _suppress_overlaps(faces: list[Face], max_iou: float = 0.3) -> list[Face]:
    # The mirrored border can echo a face; keep the strongest of overlapping boxes.
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(_iou(face.box, k.box) <= max_iou for k in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: (f.box[0], f.box[1]))


def crop_region(
    shape: tuple[int, ...], box: tuple[int, int, int, int], padding: float
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a square centred on the box, enlarged by ``padding`` x face size on
    each side and clipped to the frame (padding proportional to the face, so small and large
    faces are framed alike)."""
    height, width = shape[:2]
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * padding)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(max(0.0, cx - side / 2.0)))
    y0 = int(round(max(0.0, cy - side / 2.0)))
    x1 = int(round(min(float(width), cx + side / 2.0)))
    y1 = int(round(min(float(height), cy + side / 2.0)))
    return x0, y0, x1, y1


def crop_face(rgb: np.ndarray, box: tuple[int, int, int, int], padding: float) -> np.ndarray:
    x0, y0, x1, y1 = crop_region(rgb.shape, box, padding)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])
