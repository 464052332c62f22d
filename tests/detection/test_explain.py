from __future__ import annotations

import numpy as np
import pytest
import torch

from detection.detector import Detector, OnnxEngine, TorchEngine
from detection.explain import crop_map, overlay
from detection.media import decode_image
from detection.model import FAKE_INDEX, preprocess
from detection.network import load_checkpoint
from shared.config import settings


def autograd_gradcam(model, config, crop: np.ndarray) -> np.ndarray:
    """Textbook Grad-CAM with a backward pass, to check the forward-only map against."""
    captured = {}
    layer = model.model.features[-1]
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.setdefault("a", out))
    try:
        x = torch.from_numpy(preprocess([crop], config))
        with torch.enable_grad():
            logits = model(x)
            if len(config.labels) == 2:
                target = logits[0, FAKE_INDEX]
            else:  # several fake classes: "some fake class" over REAL, as the heatmap explains
                real = config.real_index
                fakes = [i for i in range(len(config.labels)) if i != real]
                target = logits[0, fakes].mean() - logits[0, real]
            grads = torch.autograd.grad(target, captured["a"])[0]
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * captured["a"]).sum(dim=1))[0].detach().numpy()
    return crop_map(cam, *crop.shape[:2])


@pytest.fixture(scope="module")
def torch_model():
    return load_checkpoint(settings.weights_path)[:2]


def test_heatmap_equals_autograd_gradcam(face_crops, torch_model):
    model, config = torch_model
    crop = decode_image(face_crops["fake"][1], 10**7)
    expected = autograd_gradcam(model, config, crop)
    onnx_engine = Detector(OnnxEngine(settings.weights_path.with_suffix(".onnx"), 1), config)
    torch_engine = Detector(TorchEngine(model), config)
    for detector in (onnx_engine, torch_engine):
        cam = detector.gradcam(crop)
        assert cam.shape == crop.shape[:2] and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
        assert cam.std() > 0  # a real map, not a constant
        assert np.allclose(cam, expected, atol=1e-3), np.abs(cam - expected).max()


def test_overlay_changes_only_face_regions():
    image = np.full((100, 120, 3), 200, np.uint8)
    cam = np.ones((40, 50), np.float32)
    out = overlay(image, [((10, 20, 60, 60), cam)])
    assert (out[20:60, 10:60] != 200).any()
    assert (out[:20] == 200).all() and (out[:, 60:] == 200).all()
