"""Batch inference for training and evaluation through the service's own inference path
(``detection.detector.Detector``: the same preprocessing, engine call and softmax as the worker)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from detection.detector import Detector, TorchEngine
from detection.model import ModelConfig


def predict_fake_prob(
    model: torch.nn.Module,
    crops: Sequence[np.ndarray],
    config: ModelConfig,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Probability of FAKE for each RGB uint8 crop, exactly as the service would compute it."""
    was_training = model.training
    detector = Detector(TorchEngine(model), config)  # puts the model in eval mode
    out = np.empty(len(crops), dtype=np.float64)
    starts = range(0, len(crops), batch_size)
    for start in tqdm(starts, desc="predict", unit="batch", disable=not progress, mininterval=10):
        chunk = [crops[i] for i in range(start, min(start + batch_size, len(crops)))]
        out[start : start + len(chunk)] = detector.score(chunk)
    model.train(was_training)
    return out
