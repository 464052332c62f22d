"""The real/fake classifier: network, checkpoint format and preprocessing, all in this one file.

The network is torchvision's EfficientNet-B0 wrapped the way the prototype wrapped it
(``DeepFakeImageDetector``: the backbone under the attribute ``model`` and a classifier
``Sequential(Dropout, Linear(1280, 2))``), so the prototype's checkpoints keep loading.
Class index 0 is FAKE and 1 is REAL.

Our own checkpoints are plain dicts (loadable with ``torch.load(..., weights_only=True)``)
that carry the ``ModelConfig`` beside the weights, so a checkpoint rebuilds its own model:

    {"format": "rrr-checkpoint/1", "config": {...ModelConfig...}, "state_dict": {...},
     "metadata": {...free-form provenance...}}

Preprocessing is numpy + OpenCV only (no torch), so the same function feeds every engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CHECKPOINT_FORMAT = "rrr-checkpoint/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABELS = ("FAKE", "REAL")  # class index -> label, fixed by the prototype's checkpoint
FAKE_INDEX = 0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network and feed it; stored inside every checkpoint."""

    name: str = "efficientnet_b0"
    version: str = "unversioned"
    input_size: int = 224  # square side of the face crop fed to the network
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, inputs scaled to [0, 1] first
    std: tuple[float, float, float] = IMAGENET_STD
    labels: tuple[str, str] = LABELS
    dropout: float = 0.2  # torchvision's default for B0
    threshold: float = 0.5  # probability_fake at or above which a face is called FAKE
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std", "labels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("mean", "std", "labels"):
            data[key] = list(data[key])
        return data


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
        h, w = crop.shape[:2]
        # INTER_AREA when shrinking avoids aliasing; INTER_LINEAR when enlarging small faces.
        interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        resized = cv2.resize(crop, (size, size), interpolation=interp)  # (S, S, 3)
        batch[i] = resized.transpose(2, 0, 1).astype(np.float32) / 255.0  # (3, S, S)
    batch -= mean
    batch /= std
    return batch


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# torch part: imported only by processes that run the network (never by the API).

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models import efficientnet_b0  # noqa: E402


class DeepFakeImageDetector(nn.Module):
    """EfficientNet-B0 with a 2-way head, in the prototype's attribute layout."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.model = efficientnet_b0(weights=None)  # never download: weights come from our files
        self.model.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(1280, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, 3, S, S) -> (N, 2) logits, index 0 = FAKE


def build_model(config: ModelConfig) -> DeepFakeImageDetector:
    if config.name != "efficientnet_b0":
        raise ValueError(f"unknown architecture {config.name!r}; this build knows efficientnet_b0")
    return DeepFakeImageDetector(dropout=config.dropout)


def _extract_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """Accept our format and the prototype's (a bare state_dict, maybe wrapped or DataParallel)."""
    state = raw
    if isinstance(raw, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(raw.get(key), dict):
                state = raw[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("checkpoint holds no state_dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("model.") for k in state):
        # a bare torchvision efficientnet_b0 state_dict: put it under the wrapper's attribute
        state = {f"model.{k}": v for k, v in state.items()}
    return state


def load_checkpoint(path: str | Path) -> tuple[DeepFakeImageDetector, ModelConfig, dict]:
    """Load a checkpoint (ours or the prototype's) into an eval-mode model on the CPU.

    :returns: (model, config, metadata); metadata is empty for prototype checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights not found at {path}; set RRR_WEIGHTS_PATH to a checkpoint file "
            "(see weights/README.md)"
        )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    config = ModelConfig()
    metadata: dict = {}
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        config = ModelConfig.from_dict(raw.get("config", {}))
        metadata = dict(raw.get("metadata", {}))
    model = build_model(config)
    model.load_state_dict(_extract_state_dict(raw), strict=True)
    model.eval()
    return model, config, metadata


def save_checkpoint(
    model: nn.Module, config: ModelConfig, path: str | Path, metadata: dict | None = None
) -> None:
    """Write a self-describing checkpoint (weights + config + metadata); fp32, CPU tensors."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "state_dict": state,
            "metadata": metadata or {},
        },
        tmp,
    )
    tmp.replace(path)


def export_onnx(model: nn.Module, config: ModelConfig, path: str | Path, opset: int = 17) -> None:
    """Write the network as ONNX (batch dimension dynamic) with ``config`` in its metadata, so
    ONNX Runtime can serve it without the checkpoint."""
    import json

    import onnx

    from shared.detector import ONNX_CONFIG_KEY

    path = Path(path)
    tmp = path.with_suffix(".tmp.onnx")
    dummy = torch.zeros(1, 3, config.input_size, config.input_size)
    torch.onnx.export(
        model.eval(),
        (dummy,),
        str(tmp),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,  # the TorchScript exporter needs no extra packages and handles B0 fully
    )
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = ONNX_CONFIG_KEY, json.dumps(config.to_dict())
    onnx.save(graph, str(path))
    tmp.unlink(missing_ok=True)
