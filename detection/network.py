"""The classifier's network in PyTorch: architecture, checkpoint format and ONNX export.

The network is torchvision's EfficientNet-B0 wrapped the way the prototype wrapped it
(``DeepFakeImageDetector``: the backbone under the attribute ``model`` and a classifier
``Sequential(Dropout, Linear(1280, 2))``), so the prototype's checkpoints keep loading.

Our own checkpoints are plain dicts (loadable with ``torch.load(..., weights_only=True)``)
that carry the ``ModelConfig`` beside the weights, so a checkpoint rebuilds its own model:

    {"format": "rrr-checkpoint/1", "config": {...ModelConfig...}, "state_dict": {...},
     "metadata": {...free-form provenance...}}

Only training, evaluation, export and the torch engine import this module; a worker on the
ONNX engine never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import efficientnet_b0

from detection.model import FAKE_INDEX, ONNX_CONFIG_KEY, ModelConfig

CHECKPOINT_FORMAT = "rrr-checkpoint/1"


class DeepFakeImageDetector(nn.Module):
    """EfficientNet-B0 with a 2-way head, in the prototype's attribute layout."""

    def __init__(self, dropout: float = 0.2, num_classes: int = 2) -> None:
        super().__init__()
        self.model = efficientnet_b0(weights=None)  # never download: weights come from our files
        self.model.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(1280, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, 3, S, S) -> (N, 2) logits, index 0 = FAKE


def build_model(config: ModelConfig) -> DeepFakeImageDetector:
    if config.name != "efficientnet_b0":
        raise ValueError(f"unknown architecture {config.name!r}; this build knows efficientnet_b0")
    return DeepFakeImageDetector(dropout=config.dropout, num_classes=len(config.labels))


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


class ScoreAndCam(nn.Module):
    """The classifier's logits plus its class-activation map for FAKE, in one forward pass.

    Grad-CAM (Selvaraju et al., ICCV 2017) at the last convolutional block weights each channel
    by the mean gradient of the FAKE logit. After that block, B0 only averages and applies a
    linear head, so that gradient is the head's FAKE row divided by h*w at every position:
    Grad-CAM there equals ReLU(sum_k W[FAKE, k] * A_k), the CAM of Zhou et al. (CVPR 2016),
    which needs no backward pass. Both engines run this module (the ONNX file is exported from
    it), so heatmaps need no PyTorch in the worker.
    """

    def __init__(self, model: DeepFakeImageDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.model.model
        activations = net.features(x)  # (N, 1280, h, w), after the last block's SiLU
        logits = net.classifier(torch.flatten(net.avgpool(activations), 1))  # (N, C)
        weight = net.classifier[-1].weight  # (C, 1280)
        if weight.shape[0] == 2:
            fake_row = weight[FAKE_INDEX]  # (1280,)
        else:
            # several fake classes: the evidence for "some fake class" over REAL, i.e. the mean
            # fake row minus the REAL row (REAL is index 1 in every class list we ship)
            fake_rows = torch.cat([weight[:1], weight[2:]])
            fake_row = fake_rows.mean(0) - weight[1]
        cam = torch.relu(torch.einsum("nchw,c->nhw", activations, fake_row))  # (N, h, w)
        return logits, cam


def export_onnx(model: nn.Module, config: ModelConfig, path: str | Path, opset: int = 17) -> None:
    """Write the network as ONNX (batch dimension dynamic; outputs ``logits`` and ``cam``, see
    ``ScoreAndCam``) with ``config`` in its metadata, so ONNX Runtime can serve it without the
    checkpoint."""
    import json

    import onnx

    path = Path(path)
    tmp = path.with_suffix(".tmp.onnx")
    dummy = torch.zeros(1, 3, config.input_size, config.input_size)
    torch.onnx.export(
        ScoreAndCam(model).eval(),
        (dummy,),
        str(tmp),
        input_names=["input"],
        output_names=["logits", "cam"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "cam": {0: "batch"}},
        opset_version=opset,
        dynamo=False,  # the TorchScript exporter needs no extra packages and handles B0 fully
    )
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = ONNX_CONFIG_KEY, json.dumps(config.to_dict())
    onnx.save(graph, str(path))
    tmp.unlink(missing_ok=True)
