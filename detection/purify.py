"""Input purification against adversarial perturbations: a random down-up rescale and a random
JPEG re-compression of each face crop before it is scored, optionally averaged over several
random views. Pure numpy + OpenCV (no torch), so any engine can use it.

It removes small high-frequency perturbations that were made against the bare model; it does not
stop an attacker who knows it is there (see docs/robustness.md, where both are
measured). Use it as ``purified_scores(detector.score, crops, views, rng, size)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from detection.model import resize_face

DEFAULT_SCALE_RANGE = (0.5, 0.8)  # down-up factor, drawn uniformly per crop and view
DEFAULT_QUALITY_RANGE = (50, 80)  # JPEG quality, drawn uniformly (inclusive) per crop and view


def down_up(crop: np.ndarray, factor: float) -> np.ndarray:
    """Shrink an RGB uint8 crop by ``factor`` (INTER_AREA) and enlarge it back (INTER_LINEAR)."""
    h, w = crop.shape[:2]
    small = (max(8, round(w * factor)), max(8, round(h * factor)))
    shrunk = cv2.resize(np.ascontiguousarray(crop), small, interpolation=cv2.INTER_AREA)
    return cv2.resize(shrunk, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    """Re-compress an RGB uint8 crop as JPEG at ``quality`` (1-100) and decode it again."""
    # OpenCV's codec expects BGR; converting keeps its luma/chroma split right
    bgr = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def purify(
    crops: Sequence[np.ndarray],
    rng: np.random.Generator,
    size: int | None = None,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    quality_range: tuple[int, int] = DEFAULT_QUALITY_RANGE,
) -> list[np.ndarray]:
    """One random purified view of each RGB uint8 crop: down-up rescale, then JPEG.

    :param size: resize each crop to the model's input side first (``ModelConfig.input_size``),
        so the strength of the purification does not depend on how large the face was.
    """
    out = []
    for crop in crops:
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 crop (H, W, 3), got {crop.dtype} {crop.shape}")
        view = resize_face(crop, size) if size else crop
        view = down_up(view, float(rng.uniform(*scale_range)))
        view = jpeg(view, int(rng.integers(quality_range[0], quality_range[1] + 1)))
        out.append(view)
    return out


def purified_scores(
    score: Callable[[list[np.ndarray]], np.ndarray],
    crops: Sequence[np.ndarray],
    views: int = 1,
    rng: np.random.Generator | None = None,
    size: int | None = None,
) -> np.ndarray:
    """Mean score over ``views`` purified views of each crop; ``score`` is e.g.
    ``Detector.score`` (P(FAKE) per crop) or ``Detector.class_probabilities`` (a row per crop).
    ``views=0`` scores the crops as they are (purification off)."""
    if views <= 0:
        return score(list(crops))
    rng = rng if rng is not None else np.random.default_rng()
    total = score(purify(crops, rng, size))
    for _ in range(views - 1):
        total = total + score(purify(crops, rng, size))
    return total / views
