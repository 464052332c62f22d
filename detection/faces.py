"""Find faces in an RGB frame and cut padded square crops around them.

The detector is YuNet, the small CNN of libfacedetection, through the ``yuface`` wheel: its
weights are compiled into the wheel's library (BSD-3; nothing is downloaded). Chosen over OpenCV's
Haar cascade, MediaPipe BlazeFace, dlib's HOG and MTCNN by recall on DFDC face crops and video
frames and by single-thread speed (``python -m bench.faces``; docs/performance.md, "Face
detection").

Detection runs on a copy downscaled to at most DETECT_MAX_SIDE pixels on its longer side; boxes
are mapped back to the original pixels and clipped to the frame.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

# yuface runs on OpenMP, whose threads spin while they wait: beside the model's own threads
# (and the decoder's) on a 2-core machine, one detection took ~300 ms with the default thread
# count and ~34 ms with one. Set before the library loads; an explicit value is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from yuface import detect as _yunet_detect  # noqa: E402

# Detection resolution. Recall on the shared videos and DFDC crops is the same at 320, 480 and
# 640 px; cost grows with pixels (9-13, 19-26 and 30-45 ms per 1080p frame, one thread, two runs
# on a busy 2-core machine; Haar took 218-324 ms). 480 keeps
# smaller faces: a tight face pasted into a 6000 px photo was found in 16/20 cases at 36 px
# (448 px in the photo) at 480, in 9/20 at 320. A face filling the whole image is found as well.
DETECT_MAX_SIDE = 480
MIN_SCORE = 0.5  # YuNet confidence in 0..1; its own default


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in original pixels
    score: float  # detector confidence in 0..1


def detection_size(height: int, width: int, max_side: int = DETECT_MAX_SIDE) -> tuple[int, int]:
    """(height, width) of the copy that detection runs on: the image itself when it is small
    enough, else scaled down to ``max_side`` on its longer side (never to zero pixels)."""
    scale = min(1.0, max_side / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


class FaceDetector:
    """YuNet face detector; one instance per process. Calls are serialised with a lock, since the
    native library is not documented as thread-safe (workers are processes, so it never waits)."""

    def __init__(self, min_score: float = MIN_SCORE, max_side: int = DETECT_MAX_SIDE) -> None:
        self.min_score = min_score
        self.max_side = max_side
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        small_h, small_w = detection_size(height, width, self.max_side)
        if (small_h, small_w) != (height, width):
            small = cv2.resize(rgb, (small_w, small_h), interpolation=cv2.INTER_AREA)
        else:
            small = rgb
        bgr = np.ascontiguousarray(small[:, :, ::-1])  # YuNet takes BGR
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # yuface warns above 960 px; we never pass that
            scores, boxes, _ = _yunet_detect(bgr, self.min_score)
        # Boxes can stick out of the image (negative x or y for a face cut by the edge): clip.
        sx, sy = width / small_w, height / small_h
        faces = []
        for (x, y, w, h), score in zip(boxes.tolist(), scores.tolist(), strict=True):
            x0, y0 = max(0.0, x * sx), max(0.0, y * sy)
            x1, y1 = min(float(width), (x + w) * sx), min(float(height), (y + h) * sy)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            box = (int(x0), int(y0), int(round(x1 - x0)), int(round(y1 - y0)))
            faces.append(Face(box, score / 100.0))
        return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


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
