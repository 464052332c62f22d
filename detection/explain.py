"""Heatmaps: where in a face crop the classifier looked when it called it FAKE.

The map is Grad-CAM (Selvaraju et al., ICCV 2017) at the last convolutional block of
EfficientNet-B0 (4x4 at the 128 px input) for the FAKE logit, so red means "this region pushed
the verdict towards FAKE". Every engine's network outputs it beside the scores
(``detection.network.ScoreAndCam`` explains why no backward pass is needed); this module scales it
to the crop and paints it over the image. One implementation serves ``rrr explain`` and the
image jobs' heatmap.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def crop_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A raw (h, w) activation map -> (height, width) float32 map in [0, 1] over the crop."""
    cam = np.maximum(cam.astype(np.float32), 0.0)
    peak = float(cam.max())
    if peak > 0:
        cam = cam / peak
    return cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)


def overlay(
    rgb: np.ndarray, maps: list[tuple[tuple[int, int, int, int], np.ndarray]], alpha: float = 0.45
) -> np.ndarray:
    """Blend each (crop box, map) onto the image with a colour scale; outside faces unchanged."""
    heat = np.zeros(rgb.shape[:2], dtype=np.float32)
    mask = np.zeros(rgb.shape[:2], dtype=bool)
    for (x0, y0, x1, y1), cam in maps:
        heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], cam[: y1 - y0, : x1 - x0])
        mask[y0:y1, x0:x1] = True
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    out = rgb.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * colours[mask]
    return out.clip(0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # zlib level 1: 25x faster than optimize=True (3 vs 71 ms on a 224 px face, 47 vs 450 ms
    # at 1792x1120) for files about a quarter larger; it sits on every image job's path
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
