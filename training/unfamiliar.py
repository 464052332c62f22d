"""Can the model tell that a face is unlike anything it trained on? A study, not a verdict.

An honest "unsure" would also cover inputs outside the training data, not only scores near the
threshold. The usual cheap detectors of such inputs score each face by how far it lies from the
training faces: the energy of the logits, the largest softmax probability, a Mahalanobis
distance in the principal subspace of the pooled features, or the distance to the k-th nearest
training face. ``study`` fits each on the training split of the sources a checkpoint saw, sets
its cut where 5% of those sources' validation faces fall beyond it, and reports how many faces
of the sources it never saw fall beyond it too, and how well the score separates them (AUROC,
in-source test faces against left-out faces). A detector of unfamiliar input worth shipping
would mark far more left-out than in-source faces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from detection.model import class_probabilities, preprocess
from detection.network import load_checkpoint
from training.data import Sample, load_rgb, read_labels, split_samples
from training.metrics import roc_auc

FAMILIAR_SHARE = 0.95  # the cut: this share of in-source validation faces counts as familiar
PER_SOURCE = {"train": 800, "val": 400, "test": 400, "left_out": 400}
KNN_K = 10


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Free energy -T * logsumexp(logits / T): higher = less familiar."""
    z = logits.astype(np.float64) / temperature
    top = z.max(axis=1)
    return -temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


class FeatureReference:
    """The training faces' pooled features, against which a face's distance is measured."""

    def __init__(self, train_features: np.ndarray, components: int = 64) -> None:
        self.mean = train_features.mean(axis=0)
        _, s, vt = np.linalg.svd(train_features - self.mean, full_matrices=False)
        self.components = vt[:components]
        self.scale = s[:components] / np.sqrt(len(train_features))
        self.unit = train_features / np.linalg.norm(train_features, axis=1, keepdims=True)

    def mahalanobis(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) @ self.components.T / self.scale
        return (z**2).sum(axis=1)

    def knn_distance(self, features: np.ndarray, k: int = KNN_K) -> np.ndarray:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        distance = 1.0 - unit @ self.unit.T
        return np.sort(distance, axis=1)[:, min(k, distance.shape[1]) - 1]


def score_report(
    familiar_val: np.ndarray,
    familiar_test: np.ndarray,
    left_out: np.ndarray,
    left_out_sources: np.ndarray,
) -> dict:
    """The cut at FAMILIAR_SHARE of ``familiar_val`` and what falls beyond it."""
    cut = float(np.quantile(familiar_val, FAMILIAR_SHARE))
    labels = np.r_[np.zeros(len(familiar_test)), np.ones(len(left_out))]
    return {
        "auroc": round(roc_auc(labels, np.r_[familiar_test, left_out]), 4),
        "in_source_test_marked": round(float((familiar_test > cut).mean()), 4),
        "left_out_marked": {
            source: round(float((left_out[left_out_sources == source] > cut).mean()), 4)
            for source in sorted(set(left_out_sources.tolist()))
        },
    }


def _pick(samples: list[Sample], n: int, rng: np.random.Generator) -> list[Sample]:
    if len(samples) <= n:
        return samples
    return [samples[i] for i in sorted(rng.choice(len(samples), n, replace=False))]


def study(checkpoint: str | Path, table: str | Path, held_out: tuple[str, ...]) -> dict:
    """Every detector of unfamiliar faces, fitted without ``held_out``, tested on it."""
    model, config, _ = load_checkpoint(checkpoint)
    pooled: dict[str, torch.Tensor] = {}
    model.model.avgpool.register_forward_hook(lambda _m, _i, out: pooled.update(f=out.flatten(1)))
    samples = read_labels(table, Path(table).parent, config.labels)
    splits = split_samples(samples)
    rng = np.random.default_rng(0)
    seen = sorted({s.source for s in samples} - set(held_out))
    parts = {
        split: [
            s
            for source in seen
            for s in _pick([x for x in splits[split] if x.source == source], n, rng)
        ]
        for split, n in PER_SOURCE.items()
        if split != "left_out"
    }
    parts["left_out"] = [
        s
        for source in held_out
        for s in _pick([x for x in samples if x.source == source], PER_SOURCE["left_out"], rng)
    ]

    def run(rows: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
        logits, features = [], []
        for start in range(0, len(rows), 64):
            batch = preprocess([load_rgb(s.path) for s in rows[start : start + 64]], config)
            with torch.inference_mode():
                logits.append(model(torch.from_numpy(batch)).numpy())
            features.append(pooled["f"].numpy())
        return np.concatenate(logits), np.concatenate(features)

    out = {name: run(rows) for name, rows in parts.items()}
    reference = FeatureReference(out["train"][1])
    scores: dict[str, Callable[[tuple[np.ndarray, np.ndarray]], np.ndarray]] = {
        "energy": lambda r: energy(r[0], config.temperature),
        "max_softmax": lambda r: -class_probabilities(r[0], config).max(axis=1),
        "mahalanobis_64": lambda r: reference.mahalanobis(r[1]),
        f"knn_{KNN_K}": lambda r: reference.knn_distance(r[1]),
    }
    left_sources = np.array([s.source for s in parts["left_out"]])
    return {
        "checkpoint": str(checkpoint),
        "trained_on": seen,
        "held_out": list(held_out),
        "familiar_share": FAMILIAR_SHARE,
        "faces": {name: len(rows) for name, rows in parts.items()},
        "scores": {
            name: score_report(fn(out["val"]), fn(out["test"]), fn(out["left_out"]), left_sources)
            for name, fn in scores.items()
        },
    }


def markdown(report: dict) -> str:
    held = report["held_out"]
    head = "| score | AUROC | in-source test marked | " + " | ".join(f"{s} marked" for s in held)
    lines = [head + " |", "| --- " * (3 + len(held)) + "|"]
    for name, r in report["scores"].items():
        cells = [name, f"{r['auroc']:.3f}", f"{r['in_source_test_marked']:.1%}"]
        cells += [f"{r['left_out_marked'][s]:.1%}" for s in held]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
