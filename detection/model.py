"""The real/fake classifier's contract: its ``ModelConfig`` (input size, normalisation, labels,
threshold) and the one preprocessing function that turns face crops into its input.

Numpy + OpenCV only, no torch: the ONNX Runtime engine serves the model without PyTorch. The
network itself, its checkpoint format and the ONNX export are in ``detection/network.py``.
Class index 0 is FAKE and 1 is REAL.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABELS = ("FAKE", "REAL")  # class index -> label, fixed by the prototype's checkpoint
FAKE_INDEX = 0
ONNX_CONFIG_KEY = "rrr_model_config"  # ONNX metadata entry holding the ModelConfig as JSON
# Version 2 tells the kinds of fake apart; index 0 is still a fake class and 1 is REAL, so the
# prototype's two-class contract keeps its meaning. Each non-REAL class is a reported signal.
SIGNAL_LABELS = ("FACE_SWAP", "REAL", "SYNTHETIC")
KIND_LABELS = {"face_swap": "FACE_SWAP", "real": "REAL", "synthetic": "SYNTHETIC"}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network and feed it; stored inside every checkpoint."""

    name: str = "efficientnet_b0"
    version: str = "unversioned"
    input_size: int = 224  # square side of the face crop fed to the network
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, inputs scaled to [0, 1] first
    std: tuple[float, float, float] = IMAGENET_STD
    labels: tuple[str, ...] = LABELS
    dropout: float = 0.2  # torchvision's default for B0
    threshold: float = 0.5  # probability_fake at or above which a face is called FAKE
    # logits are divided by this before the softmax: fitted on validation data so that the
    # probabilities are calibrated (1.0 = as trained)
    temperature: float = 1.0
    # a face whose calibrated probability_fake lies within this distance of the threshold is
    # UNCERTAIN rather than FAKE or REAL (0 = always decide)
    unsure_margin: float = 0.0
    # what the network sees of a face crop: "face", the whole crop resized to input_size; or
    # "patch", its centre input_size square at close to native resolution (see ``model_view``)
    view: str = "face"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std", "labels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @property
    def real_index(self) -> int:
        return self.labels.index("REAL")

    @property
    def signals(self) -> tuple[str, ...]:
        """Names of the per-class scores reported beside probability_fake (v2: face_swap,
        synthetic); a two-class model reports none."""
        if len(self.labels) <= 2:
            return ()
        return tuple(label.lower() for label in self.labels if label != "REAL")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("mean", "std", "labels"):
            data[key] = list(data[key])
        return data


def resize_face(crop: np.ndarray, size: int) -> np.ndarray:
    """Square resize of an RGB crop to ``size``: the one resize rule of serving, training and
    purification. INTER_AREA when shrinking avoids aliasing; INTER_LINEAR enlarges small faces."""
    h, w = crop.shape[:2]
    if (h, w) == (size, size):
        return crop
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


PATCH_MAX_SIDE = 256  # a "patch" view first shrinks crops whose longer side exceeds this


def native_crop(crop: np.ndarray, max_side: int = PATCH_MAX_SIDE) -> np.ndarray:
    """A crop shrunk (never enlarged) so its longer side is at most ``max_side``: how much of
    the native resolution a patch view keeps, the same in training data and in serving."""
    h, w = crop.shape[:2]
    if max(h, w) <= max_side:
        return crop
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def patch_at(crop: np.ndarray, size: int, top: float = 0.5, left: float = 0.5) -> np.ndarray:
    """The ``size`` square of a native crop at relative position (top, left) in [0, 1]; a crop
    too small for one is resized whole, as the face view would."""
    h, w = crop.shape[:2]
    if min(h, w) < size:
        return resize_face(crop, size)
    y, x = round((h - size) * top), round((w - size) * left)
    return crop[y : y + size, x : x + size]


def model_view(crop: np.ndarray, config: ModelConfig) -> np.ndarray:
    """What the network sees of one RGB face crop, (S, S, 3).

    "face": the whole crop resized (the face's shape, blending edges, lighting). "patch": the
    centre of the crop without resizing it below ``PATCH_MAX_SIDE``, so a generator's
    pixel-level traces survive and the look of the whole portrait does not dominate.
    """
    if config.view == "patch":
        return patch_at(native_crop(crop), config.input_size)
    return resize_face(crop, config.input_size)


def preprocess(crops: list[np.ndarray], config: ModelConfig) -> np.ndarray:
    """RGB uint8 face crops of any size -> float32 batch (N, 3, S, S), normalised.

    The one preprocessing function: the worker, evaluation, export and benchmarks all call it.
    """
    size = config.input_size
    batch = np.empty((len(crops), 3, size, size), dtype=np.float32)
    mean = np.asarray(config.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(3, 1, 1)
    for i, crop in enumerate(crops):
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"face crop must be an RGB array (H, W, 3), got shape {crop.shape}")
        resized = model_view(crop, config)  # (S, S, 3)
        batch[i] = resized.transpose(2, 0, 1).astype(np.float32) / 255.0  # (3, S, S)
    batch -= mean
    batch /= std
    return batch


def class_probabilities(logits: np.ndarray, config: ModelConfig) -> np.ndarray:
    """(N, C) logits -> (N, C) calibrated class probabilities (softmax of logits / temperature)."""
    scaled = logits.astype(np.float64) / config.temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs


def fake_probability(probs: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Class probabilities -> P(the face is manipulated or synthetic) = 1 - P(REAL)."""
    return 1.0 - probs[:, config.real_index]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
