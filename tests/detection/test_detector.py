"""The two inference engines give the same probabilities on real face crops."""

from __future__ import annotations

import numpy as np
import pytest

from detection.detector import Detector, OnnxEngine, TorchEngine
from detection.media import decode_image
from detection.network import export_onnx, load_checkpoint
from shared.config import settings


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, config, _ = load_checkpoint(settings.weights_path)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, config, path)
    return model, config, path


def test_onnx_matches_torch_on_real_crops(exported, face_crops):
    model, config, path = exported
    crops = [decode_image(p, 10**7) for p in face_crops["real"][:4] + face_crops["fake"][:4]]
    torch_p = Detector(TorchEngine(model), config).score(crops)
    onnx_p = Detector(OnnxEngine(path, 1), config).score(crops)
    assert np.allclose(torch_p, onnx_p, atol=1e-4), np.abs(torch_p - onnx_p).max()


def test_onnx_file_carries_its_config(exported):
    _, config, path = exported
    assert OnnxEngine(path, 1).config() == config


def test_onnx_engine_loads_beside_the_checkpoint(exported, tmp_path):
    _, config, path = exported
    weights = tmp_path / "w.pt"
    weights.write_bytes(settings.weights_path.read_bytes())
    (tmp_path / "w.onnx").write_bytes(path.read_bytes())
    detector = Detector.from_checkpoint(weights, 1, engine="onnx")
    assert detector.info.engine == "onnx" and detector.config == config
