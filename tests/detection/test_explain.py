from __future__ import annotations

import numpy as np
import pytest
import torch

from detection.detector import Detector, OnnxEngine, TorchEngine
from detection.explain import crop_map, overlay, shifted_crops, stitch
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


def test_stitch_interleaves_shifted_maps():
    # window (ky, kx) holds value 10 * ky + kx + 100 * (cell row) + 1000 * (cell column)
    cams = np.array(
        [
            [[100 * i + 1000 * j + 10 * ky + kx for j in range(3)] for i in range(2)]
            for ky in range(4)
            for kx in range(4)
        ],
        np.float32,
    )
    fine = stitch(cams, 4)
    assert fine.shape == (8, 12)
    for row in range(8):
        for col in range(12):
            i, ky, j, kx = row // 4, row % 4, col // 4, col % 4
            assert fine[row, col] == 100 * i + 1000 * j + 10 * ky + kx


def test_fine_map_reads_the_same_map_at_a_finer_step(face_crops):
    from detection.analyzer import get_analyzer
    from detection.faces import crop_region

    analyzer = get_analyzer()
    rgb = decode_image(face_crops["fake"][1], 10**7)
    box = analyzer.faces.detect(rgb)[0].box
    region = crop_region(rgb.shape, box, analyzer.face_padding)
    x0, y0, x1, y1 = region
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    coarse = analyzer.detector.gradcam(crop)
    # one window, not moved: exactly the 4x4 map
    assert np.array_equal(analyzer.detector.fine_gradcam(rgb, region, factor=1), coarse)
    # shifted windows near the image's edge are mirrored, never cut short
    size = analyzer.detector.config.input_size
    assert all(c.shape == (size, size, 3) for c in shifted_crops(rgb, region, 4, size))
    fine = analyzer.detector.fine_gradcam(rgb, region)
    assert fine.shape == crop.shape[:2] and fine.dtype == np.float32
    assert fine.min() >= 0.0 and fine.max() <= 1.0 + 1e-6
    assert np.corrcoef(fine.ravel(), coarse.ravel())[0, 1] > 0.5  # the same evidence, sharper
