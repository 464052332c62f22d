from __future__ import annotations

import numpy as np
import pytest
import torch

from detection.model import ModelConfig, preprocess
from detection.network import DeepFakeImageDetector, build_model, load_checkpoint, save_checkpoint


def test_prototype_checkpoint_loads(tmp_path):
    # The prototype saved model.state_dict() of DeepFakeImageDetector: a bare dict of tensors.
    original = DeepFakeImageDetector()
    path = tmp_path / "prototype.pth"
    torch.save(original.state_dict(), path)
    model, config, metadata = load_checkpoint(path)
    assert config == ModelConfig() and metadata == {}
    x = torch.rand(2, 3, 224, 224)
    original.eval()
    with torch.inference_mode():
        assert torch.allclose(model(x), original(x), atol=1e-5)


def test_data_parallel_and_wrapped_checkpoints_load(tmp_path):
    original = DeepFakeImageDetector()
    state = {f"module.{k}": v for k, v in original.state_dict().items()}
    path = tmp_path / "dp.pth"
    torch.save({"model_state_dict": state, "epoch": 3}, path)
    model, _, _ = load_checkpoint(path)
    assert torch.equal(model.model.classifier[1].weight, original.model.classifier[1].weight)


def test_own_checkpoint_round_trips_config(tmp_path):
    config = ModelConfig(version="9", input_size=160, threshold=0.37)
    model = build_model(config)
    save_checkpoint(model, config, tmp_path / "ours.pt", {"trained_on": "test"})
    loaded, loaded_config, metadata = load_checkpoint(tmp_path / "ours.pt")
    assert loaded_config == config
    assert metadata == {"trained_on": "test"}
    assert isinstance(loaded.model.classifier[0], torch.nn.Dropout)
    assert loaded.model.classifier[1].out_features == 2


def test_missing_checkpoint_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="RRR_WEIGHTS_PATH"):
        load_checkpoint(tmp_path / "absent.pt")


def test_preprocess_resizes_and_normalises():
    config = ModelConfig(input_size=96)
    crops = [np.full((50, 30, 3), 255, np.uint8), np.zeros((300, 300, 3), np.uint8)]
    batch = preprocess(crops, config)
    assert batch.shape == (2, 3, 96, 96) and batch.dtype == np.float32
    white = (1.0 - np.array(config.mean)) / np.array(config.std)
    black = -np.array(config.mean) / np.array(config.std)
    assert np.allclose(batch[0, :, 0, 0], white, atol=1e-5)
    assert np.allclose(batch[1, :, 0, 0], black, atol=1e-5)


def test_preprocess_rejects_grey_crops():
    with pytest.raises(ValueError, match="RGB"):
        preprocess([np.zeros((10, 10), np.uint8)], ModelConfig())


def test_patch_view_keeps_native_pixels():
    from detection.model import PATCH_MAX_SIDE, model_view

    rng = np.random.default_rng(0)
    config = ModelConfig(input_size=64, view="patch")
    mid = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    # a crop under the cap: its centre, pixel for pixel
    assert np.array_equal(model_view(mid, config), mid[68:132, 58:122])
    # a large crop is first shrunk to the cap, then its centre taken
    big = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    assert model_view(big, config).shape == (64, 64, 3)
    assert PATCH_MAX_SIDE >= 64
    # a crop smaller than the input is resized whole, as the face view does
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert np.array_equal(model_view(small, config), model_view(small, ModelConfig(input_size=64)))
    # preprocess follows the view
    assert preprocess([mid], config).shape == (1, 3, 64, 64)
