"""Attacks on the classifier, in pixel space: FGSM, PGD (L-infinity, random start, optional EOT),
a universal adversarial patch, label flipping and a backdoor trigger.

Images are float tensors (N, 3, S, S) in [0, 1] at the model's input side S; the ImageNet
normalisation happens inside ``PixelModel``, so gradients and the eps-ball are in pixel units.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detection.model import FAKE_INDEX, ModelConfig
from detection.purify import DEFAULT_QUALITY_RANGE, DEFAULT_SCALE_RANGE, jpeg

REAL_INDEX = 1 - FAKE_INDEX
Transform = Callable[[torch.Tensor], torch.Tensor]


class PixelModel(nn.Module):
    """[0, 1] RGB batch (N, 3, S, S) -> logits (N, 2): normalisation inside, differentiable."""

    def __init__(self, model: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)  # gradients w.r.t. the input only
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def to_tensor(crops: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 crops (N, S, S, 3) -> float (N, 3, S, S) in [0, 1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, S, S) in [0, 1] -> RGB uint8 crops, rounded to the nearest grey level (what an
    image file can carry; rounding keeps an L-inf perturbation of uint8 input inside its eps)."""
    arr = (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return list(arr.permute(0, 2, 3, 1).cpu().numpy())


def _input_grad(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    transform: Transform | None = None,
    samples: int = 1,
) -> torch.Tensor:
    """Gradient of the summed cross-entropy w.r.t. x (averaged over ``samples`` transforms)."""
    x = x.detach().requires_grad_(True)
    grad = torch.zeros_like(x)
    for _ in range(samples):
        inp = transform(x) if transform is not None else x
        loss = F.cross_entropy(model(inp), y, reduction="sum")
        grad += torch.autograd.grad(loss, x)[0]
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps that raises the loss of the true labels ``y``."""
    return (x + eps * _input_grad(model, x, y).sign()).clamp(0, 1).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    transform: Transform | None = None,
    eot_samples: int = 1,
) -> torch.Tensor:
    """Untargeted L-inf PGD (Madry et al.): ``steps`` signed steps of ``step_size`` (default
    2.5 * eps / steps), each projected back onto the eps-ball around x and onto [0, 1].

    With ``transform`` (a random, differentiable or straight-through stand-in for a defence),
    each step averages the gradient over ``eot_samples`` draws: EOT, an adaptive attack.
    """
    step_size = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
        x_adv = (x + eps * noise).clamp(0, 1)
    for _ in range(steps):
        grad = _input_grad(model, x_adv, y, transform, eot_samples)
        x_adv = x_adv + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1).detach()
    return x_adv


def purify_approximation(
    generator: torch.Generator,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    quality_range: tuple[int, int] = DEFAULT_QUALITY_RANGE,
) -> Transform:
    """A differentiable stand-in for ``detection.purify.purify`` for EOT/BPDA attacks: a random
    down-up rescale (area down, bilinear up: differentiable) and real JPEG whose gradient is
    passed straight through (BPDA, Athalye et al. 2018)."""

    def transform(x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        factor = (
            scale_range[0]
            + (scale_range[1] - scale_range[0]) * torch.rand(1, generator=generator).item()
        )
        small = max(8, round(side * factor))
        y = F.interpolate(
            F.interpolate(x, size=(small, small), mode="area"),
            size=(side, side),
            mode="bilinear",
            align_corners=False,
        )
        quality = int(
            torch.randint(quality_range[0], quality_range[1] + 1, (1,), generator=generator)
        )
        compressed = to_tensor([jpeg(c, quality) for c in to_uint8(y)]).to(x.device)
        return y + (compressed - y).detach()

    return transform


# --- universal patch ---------------------------------------------------------------------------


def patch_side(input_size: int, area_fraction: float) -> int:
    """Side of a square patch covering ``area_fraction`` of an input_size x input_size crop."""
    return max(1, round(math.sqrt(area_fraction) * input_size))


def random_offsets(n: int, input_size: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2) top-left corners (row, col) that keep a side x side patch inside the crop."""
    return torch.randint(0, input_size - side + 1, (n, 2), generator=generator)


def apply_patch(x: torch.Tensor, patch: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Paste ``patch`` (3, s, s) onto each image of x at its offset; differentiable in patch."""
    side = patch.shape[-1]
    out = x.clone()
    for i, (r, c) in enumerate(offsets.tolist()):
        out[i, :, r : r + side, c : c + side] = patch
    return out


def train_patch(
    model: nn.Module,
    images: torch.Tensor,
    side: int,
    steps: int,
    batch_size: int = 16,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    target: int = REAL_INDEX,
) -> torch.Tensor:
    """A universal patch (3, side, side) in [0, 1] that makes ``model`` say ``target`` wherever
    it is pasted: Adam on the targeted cross-entropy over random images and random placements
    (Brown et al. 2017, without rotation or scaling)."""
    generator = generator or torch.Generator().manual_seed(0)
    patch = torch.rand(3, side, side, generator=generator).requires_grad_(True)
    optimizer = torch.optim.Adam([patch], lr=lr)
    size = images.shape[-1]
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=generator)
        offsets = random_offsets(batch_size, size, side, generator)
        logits = model(apply_patch(images[idx], patch, offsets))
        loss = F.cross_entropy(logits, torch.full((batch_size,), target, dtype=torch.long))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            patch.clamp_(0, 1)
    return patch.detach()


# --- poisoning ---------------------------------------------------------------------------------


def flip_labels(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly round(fraction * n) labels (0 <-> 1), chosen uniformly at random.

    :returns: (new labels, indices flipped)
    """
    labels = np.asarray(labels)
    k = round(fraction * len(labels))
    idx = np.sort(rng.choice(len(labels), size=k, replace=False))
    out = labels.copy()
    out[idx] = 1 - out[idx]
    return out, idx


def trigger_pattern(side: int, cell: int = 2) -> np.ndarray:
    """A black/white checkerboard (side, side, 3) uint8 with ``cell``-pixel squares."""
    rows, cols = np.indices((side, side)) // cell
    board = ((rows + cols) % 2 * 255).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def stamp_trigger(images: np.ndarray, side: int, margin: int = 4) -> np.ndarray:
    """Copy of RGB uint8 images (N, S, S, 3) with the trigger in the bottom-right corner."""
    out = np.array(images, copy=True)
    size = out.shape[1]
    top = size - margin - side
    out[:, top : top + side, top : top + side] = trigger_pattern(side)
    return out
