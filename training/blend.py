"""Self-blended faces: face-swap training examples made from real faces alone.

A face swap pastes one face's appearance into another frame and blends the seam. Whatever the
swapping method, that leaves the same kinds of trace: a boundary where two renderings meet, a
colour or sharpness mismatch inside it, a slight misalignment. Blending a real face with a
slightly altered copy of itself reproduces exactly those traces, with no identity change and no
method-specific artefact to memorise (Shiohara and Yamasaki, "Detecting Deepfakes with
Self-Blended Images", CVPR 2022). Trained on them beside real swaps, a detector learns the
seam rather than one generator's fingerprint, which is what carries over to swap methods it has
not seen.

The crops here are the service's padded square face crops, so the face sits in the middle and
fills most of the crop: the blend mask is a jittered, blurred ellipse around the centre.
"""

from __future__ import annotations

import cv2
import numpy as np


def _odd(value: float) -> int:
    n = max(3, int(value))
    return n if n % 2 else n + 1


def _altered_copy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 'source' face: the same face with another colour, sharpness and a small shift."""
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    gain = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    offset = rng.uniform(-12, 12, 3).astype(np.float32)
    out = out * gain + offset
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), float(rng.uniform(0.4, 1.2)))
    else:
        blurred = cv2.GaussianBlur(out, (3, 3), 1.0)
        out = out + float(rng.uniform(0.3, 1.0)) * (out - blurred)  # unsharp mask
    scale = float(rng.uniform(0.95, 1.05))
    tx, ty = rng.uniform(-0.03, 0.03, 2) * np.array([w, h])
    matrix = np.array(
        [[scale, 0, (1 - scale) * w / 2 + tx], [0, scale, (1 - scale) * h / 2 + ty]],
        dtype=np.float32,
    )
    return cv2.warpAffine(out, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def blend_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 mask in [0, 1]: an ellipse around the face, deformed and blurred."""
    mask = np.zeros((height, width), np.float32)
    center = (
        int(width * (0.5 + rng.uniform(-0.04, 0.04))),
        int(height * (0.5 + rng.uniform(0.0, 0.06))),
    )
    axes = (int(width * rng.uniform(0.26, 0.40)), int(height * rng.uniform(0.32, 0.46)))
    cv2.ellipse(mask, center, axes, float(rng.uniform(-12, 12)), 0, 360, 1.0, -1)
    # a smooth random warp, so the seam is not always a perfect ellipse
    grid = rng.uniform(-1, 1, (4, 4, 2)).astype(np.float32) * 0.05 * width
    flow = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    mask = cv2.remap(mask, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    mask = cv2.GaussianBlur(mask, (_odd(width * rng.uniform(0.04, 0.2)),) * 2, 0)
    return mask * float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))


def self_blend(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real RGB uint8 face crop -> the same size crop with a self-blended face."""
    h, w = rgb.shape[:2]
    mask = blend_mask(h, w, rng)[..., None]  # (H, W, 1)
    out = mask * _altered_copy(rgb, rng) + (1.0 - mask) * rgb.astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
