"""Grad-CAM: where in a face crop the classifier looked when it called it FAKE.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization" (ICCV 2017). The map is taken at the last convolutional block of EfficientNet-B0
(``model.features[-1]``, 7x7 at 224 input) for the FAKE logit, so red means "this region pushed
the verdict towards FAKE". One implementation serves ``rrr explain`` and the image jobs' heatmap.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image

from shared.model import FAKE_INDEX, DeepFakeImageDetector, ModelConfig, preprocess


def gradcam(model: DeepFakeImageDetector, config: ModelConfig, crop: np.ndarray) -> np.ndarray:
    """RGB uint8 face crop -> (H, W) float32 map in [0, 1], same size as the crop."""
    layer = model.model.features[-1]
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output: torch.Tensor) -> None:
        output.retain_grad()
        captured["activations"] = output

    handle = layer.register_forward_hook(keep)
    try:
        x = torch.from_numpy(preprocess([crop], config))  # (1, 3, S, S)
        with torch.enable_grad():
            logits = model(x)  # (1, 2)
            model.zero_grad(set_to_none=True)
            logits[0, FAKE_INDEX].backward()
    finally:
        handle.remove()
    activations = captured["activations"]  # (1, C, h, w)
    assert activations.grad is not None, "no gradient reached the last convolutional block"
    weights = activations.grad.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    cam = torch.relu((weights * activations).sum(dim=1))[0].detach().numpy()  # (h, w)
    if cam.max() > 0:
        cam = cam / cam.max()
    height, width = crop.shape[:2]
    return cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


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
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
