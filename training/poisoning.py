"""Cheap retraining for the poisoning study: freeze the Lite0-initialised B0 up to its last
MBConv stage, cache those features once, and train only the final 1x1 conv block + classifier.

One full B0 training takes ~70 min on our 2 CPU cores; with the cached features each poisoned run
takes about a minute, so the clean and poisoned runs share one exactly equal schedule.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detection.model import FAKE_INDEX, ModelConfig
from detection.network import DeepFakeImageDetector, build_model
from training.attacks import to_tensor
from training.init import transplant_lite0
from training.train import _lr_factor

FROZEN_STAGES = 8  # features[0..7] frozen (Lite0 init); features[8] (1x1 conv 320->1280) trained


def lite0_model(config: ModelConfig) -> DeepFakeImageDetector:
    """B0 with the ImageNet Lite0 transplant (training/init.py), head at zero, eval mode."""
    model = build_model(config)
    transplant_lite0(model, mean=config.mean, std=config.std)
    return model.eval()


@torch.no_grad()
def cache_features(
    model: DeepFakeImageDetector, images: np.ndarray, config: ModelConfig, batch_size: int = 64
) -> torch.Tensor:
    """RGB uint8 crops (N, S, S, 3) at the input side -> frozen features (N, 320, S/32, S/32),
    float16 to halve the memory."""
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    frozen = model.model.features[:FROZEN_STAGES].eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = (to_tensor(images[start : start + batch_size]) - mean) / std
        out.append(frozen(x).half())
    return torch.cat(out)


def head_logits(model: DeepFakeImageDetector, features: torch.Tensor) -> torch.Tensor:
    """The trained part of the network on cached features -> logits (N, 2)."""
    net = model.model
    x = net.features[FROZEN_STAGES:](features.float())
    return net.classifier(torch.flatten(net.avgpool(x), 1))


def train_head(
    base: DeepFakeImageDetector,
    features: torch.Tensor,
    labels: np.ndarray,
    epochs: float = 5.0,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.02,
    label_smoothing: float = 0.05,
    seed: int = 0,
) -> DeepFakeImageDetector:
    """A copy of ``base`` whose last block + classifier are trained on (features, labels) with
    AdamW, the project's warmup + cosine schedule and label smoothing; returns it in eval mode."""
    torch.manual_seed(seed)
    model = copy.deepcopy(base)
    trained = nn.ModuleList([model.model.features[FROZEN_STAGES:], model.model.classifier])
    model.requires_grad_(False)
    trained.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(features) // batch_size)
    total = max(1, round(epochs * steps_per_epoch))
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total))
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    trained.train()
    for step in range(total):
        epoch, pos = divmod(step, steps_per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(features))
        idx = torch.from_numpy(order[pos * batch_size : (pos + 1) * batch_size])
        loss = F.cross_entropy(
            head_logits(model, features[idx]), y_all[idx], label_smoothing=label_smoothing
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


@torch.no_grad()
def head_scores(
    model: DeepFakeImageDetector, features: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """P(FAKE) for cached features (eval mode)."""
    model.eval()
    out = [
        F.softmax(head_logits(model, features[s : s + batch_size]), dim=1)[:, FAKE_INDEX]
        for s in range(0, len(features), batch_size)
    ]
    return torch.cat(out).double().numpy()
