"""Find faces in an RGB frame and cut padded square crops around them.

The detector is YuNet, the small CNN of libfacedetection, through the ``yuface`` wheel: its
weights are compiled into the wheel's library (BSD-3; nothing is downloaded). Chosen over OpenCV's
Haar cascade, MediaPipe BlazeFace, dlib's HOG and MTCNN by recall on DFDC face crops and video
frames and by single-thread speed (``python -m bench.faces``; docs/performance.md, "Face
detection").

Detection runs on a shrunk copy: first a coarse one (half size, at most 320 px), then, only when
that finds no face, one of at most DETECT_MAX_SIDE pixels on its longer side; boxes are mapped
back to the original pixels and clipped to the frame. A still photo (``photo=True``) larger than
twice the coarse pass is searched instead in overlapping tiles of a finer copy after the coarse
pass, so the smaller faces of a group photo are found beside its largest one.
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

# Detection resolution. Cost grows with pixels (the wheel's library has no AVX2 kernels): one
# thread, one run on a busy 2-core machine (python -m bench.faces --pasted), a 224 px crop took
# 5.7 ms at its own size and 1.9 ms at half, a 1080p frame 18.2 ms at 480 px and 8.8 ms at 320.
# So a coarse pass runs first, at half size and at most 320 px; only when it finds nothing does
# a second pass run at up to DETECT_MAX_SIDE (never upscaled). That keeps what 480 px alone
# finds: the same 1,994 of 2,000 DFDC crops (half size alone: 1,991) and small faces pasted into
# large frames (144 px in 1080p: 17/20, 7/20 at 320 alone; 448 px in a 6000 px photo: 16/20,
# 7/20 at 320). The price: a frame without a face pays both passes, and a second, smaller face
# beside one that the coarse pass found is looked for at 320 px only.
COARSE_MAX_SIDE = 320
COARSE_MAX_SCALE = 0.5
DETECT_MAX_SIDE = 480
MIN_SCORE = 0.5  # YuNet confidence in 0..1; its own default

# Photos: at DETECT_MAX_SIDE a 4000 x 3000 photo is searched at 0.12 of its size, where YuNet
# misses most faces under about 250 px (python -m bench.faces --pasted: of 20 tight faces of
# 150 px, 1 found); and in a 1600 x 1200 photo the coarse pass (320 px), once it has found the
# largest face, leaves a 96 px one beside it unfound 18 times in 20. So a still image larger
# than twice COARSE_MAX_SIDE is searched again after the coarse pass, at up to half its size and
# at most PHOTO_PIXELS pixels, never coarser than the second pass (cost grows with pixels: about
# 0.05 s for 1600 x 1200, 0.25 s at the cap here), in tiles of at most PHOTO_TILE px (yuface
# warns that larger inputs degrade). The tiles overlap by more than the smallest face the
# coarse pass finds in the largest image accepted (about 30 px at 320 px), so every face is
# whole in a tile or found by the coarse pass. Figures: docs/performance.md, "Faces in photos".
PHOTO_MAX_SCALE = 0.5
PHOTO_PIXELS = 1_000_000
PHOTO_TILE = 960
PHOTO_TILE_OVERLAP = 256


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in original pixels
    score: float  # detector confidence in 0..1


def detection_size(
    height: int, width: int, max_side: int = DETECT_MAX_SIDE, max_scale: float = 1.0
) -> tuple[int, int]:
    """(height, width) of a copy that detection runs on: the image scaled by at most
    ``max_scale`` and to at most ``max_side`` on its longer side (never to zero pixels)."""
    scale = min(max_scale, max_side / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


def photo_scale(height: int, width: int, max_side: int = DETECT_MAX_SIDE) -> float:
    """The scale a still image is searched at for its smaller faces: up to PHOTO_MAX_SCALE and
    PHOTO_PIXELS pixels, and never coarser than the second pass (``max_side``)."""
    finest = min(PHOTO_MAX_SCALE, (PHOTO_PIXELS / max(1, height * width)) ** 0.5)
    return min(1.0, max(finest, max_side / max(1, height, width)))


def _distinct(faces: list[Face]) -> list[Face]:
    """One box per face, from passes that may each have found it: larger boxes first, and a box
    mostly (over half its area) inside one already kept is dropped: the same face seen again, or
    part of it cut by a tile's edge."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True):
        area = face.box[2] * face.box[3]
        if all(_overlap(face.box, other.box) <= 0.5 * area for other in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: (f.box[0], f.box[1]))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Area shared by two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


class FaceDetector:
    """YuNet face detector; one instance per process. Calls are serialised with a lock, since the
    native library is not documented as thread-safe (workers are processes, so it never waits)."""

    def __init__(self, min_score: float = MIN_SCORE, max_side: int = DETECT_MAX_SIDE) -> None:
        self.min_score = min_score
        self.max_side = max_side
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray, photo: bool = False) -> list[Face]:
        """Faces in an RGB image, left to right. ``photo``: a still image, worth the tiled
        search of a large one (video frames are not: their faces are as large as the frame's
        size allows and every frame counts against the video's time)."""
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        coarse_side = min(COARSE_MAX_SIDE, self.max_side)
        coarse = detection_size(height, width, coarse_side, COARSE_MAX_SCALE)
        faces = self._detect_at(rgb, coarse)
        if photo and COARSE_MAX_SCALE * max(height, width) > coarse_side:
            # The coarse pass was held to COARSE_MAX_SIDE, so smaller faces beside the ones it
            # found may have been too small for it: a finer search (at least as fine as the
            # second pass) finds them, and the coarse pass the faces that the tiles cut.
            scale = photo_scale(height, width, self.max_side)
            return _distinct(faces + self._detect_tiled(rgb, scale))
        fine = detection_size(height, width, self.max_side)
        if not faces and fine != coarse:
            faces = self._detect_at(rgb, fine)
        return faces

    def _detect_tiled(self, rgb: np.ndarray, scale: float) -> list[Face]:
        """Faces found in overlapping tiles of a copy at ``scale``, in original pixels."""
        height, width = rgb.shape[:2]
        small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
        small = cv2.resize(rgb, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sx, sy = width / small_w, height / small_h
        step = PHOTO_TILE - PHOTO_TILE_OVERLAP
        faces = []
        for top in range(0, max(1, small_h - PHOTO_TILE_OVERLAP), step):
            for left in range(0, max(1, small_w - PHOTO_TILE_OVERLAP), step):
                tile = small[top : top + PHOTO_TILE, left : left + PHOTO_TILE]
                for face in self._detect_at(tile, tile.shape[:2]):
                    x, y, w, h = face.box
                    box = (
                        int((x + left) * sx),
                        int((y + top) * sy),
                        min(int(round(w * sx)), width - int((x + left) * sx)),
                        min(int(round(h * sy)), height - int((y + top) * sy)),
                    )
                    faces.append(Face(box, face.score))
        return faces

    def _detect_at(self, rgb: np.ndarray, size: tuple[int, int]) -> list[Face]:
        height, width = rgb.shape[:2]
        small_h, small_w = size
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
