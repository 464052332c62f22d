"""Heatmaps: where in a face crop the classifier looked when it called it FAKE.

The map is Grad-CAM (Selvaraju et al., ICCV 2017) at the last convolutional block of
EfficientNet-B0 for the FAKE logit, so red means "this region pushed the verdict towards FAKE".
Every engine's network outputs it beside the scores (``detection.network.ScoreAndCam`` explains
why no backward pass is needed). At the 128 px input that block is 4x4: one cell per 32 px, a
blur over a face. ``fine_map`` reads the same map at an 8 px step instead, by shift and stitch
(Long et al., CVPR 2015): the crop window is moved by a quarter cell 4x4 times, and the cells of
the 16 maps interleave into a 16x16 map, what the last block would show if it kept a stride of
8 px. No other network or export is needed; it costs 16 forward passes per face, so heatmaps
are drawn on demand. docs/explanations.md measures both against the DFDC fakes' own edits.
This module scales the map to the crop and paints it over the image; one implementation serves
``rrr explain`` and the image jobs' heatmap.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from detection.model import resize_face


def crop_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A raw (h, w) activation map -> (height, width) float32 map in [0, 1] over the crop."""
    cam = np.maximum(cam.astype(np.float32), 0.0)
    peak = float(cam.max())
    if peak > 0:
        cam = cam / peak
    return cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)


# each axis of the last block's grid is read at this many offsets: 4 turns its 32 px step into 8
FINE_FACTOR = 4


def shifted_crops(
    rgb: np.ndarray,
    region: tuple[int, int, int, int],
    cells: int,
    size: int,
    factor: int = FINE_FACTOR,
) -> list[np.ndarray]:
    """The ``factor`` x ``factor`` crops whose maps interleave into one ``cells * factor`` map
    of ``region`` (x0, y0, x1, y1), row by row, each already resized to the model's ``size``:
    the window moved by (k + 1/2) / factor - 1/2 cells of the last block on each axis (to the
    nearest pixel), so the stitched cells' centres fall on an even grid. Past the image's edge,
    the edge is mirrored. Only the region's surroundings are copied, and each crop is shrunk at
    once: a face in a 36-megapixel photo costs no copy of the photo."""
    x0, y0, x1, y1 = region
    width, height = x1 - x0, y1 - y0
    offsets = [(k + 0.5) / factor - 0.5 for k in range(factor)]
    pad = int(np.ceil(max(width, height) / cells / 2)) + 1
    img_h, img_w = rgb.shape[:2]
    ex0, ey0, ex1, ey1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    cx0, cy0, cx1, cy1 = max(0, ex0), max(0, ey0), min(img_w, ex1), min(img_h, ey1)
    around = cv2.copyMakeBorder(
        np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]),
        cy0 - ey0,
        ey1 - cy1,
        cx0 - ex0,
        ex1 - cx1,
        cv2.BORDER_REFLECT_101,
    )
    crops = []
    for oy in offsets:
        for ox in offsets:
            dx, dy = round(ox * width / cells), round(oy * height / cells)
            top, left = pad + dy, pad + dx
            window = np.ascontiguousarray(around[top : top + height, left : left + width])
            crops.append(resize_face(window, size))
    return crops


def stitch(cams: np.ndarray, factor: int = FINE_FACTOR) -> np.ndarray:
    """(factor**2, h, w) maps of the ``shifted_windows``, in their order -> one
    (h * factor, w * factor) map: cell (i, j) of window (ky, kx) lands at
    (i * factor + ky, j * factor + kx)."""
    n, h, w = cams.shape
    assert n == factor * factor, (n, factor)
    grid = cams.reshape(factor, factor, h, w)  # (ky, kx, i, j)
    return grid.transpose(2, 0, 3, 1).reshape(h * factor, w * factor)


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
