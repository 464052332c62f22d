"""Training pipeline on a handful of real face crops: split, transplant, train, resume, eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detection.model import ModelConfig
from detection.network import build_model, load_checkpoint
from training.data import read_labels, split_of, split_samples
from training.evaluate import evaluate
from training.init import count_se_blocks, load_lite0_state, transplant_lite0
from training.metrics import best_threshold, roc_auc
from training.train import TrainConfig, train

DATA = Path("../shared/data/dfdc_faces")
pytestmark = pytest.mark.skipif(
    not (DATA / "labels.csv").is_file(), reason="needs ../shared/data/dfdc_faces"
)


def test_split_is_by_group_and_stable() -> None:
    samples = read_labels(DATA / "labels.csv", DATA)
    splits = split_samples(samples)
    groups = {name: {s.group for s in items} for name, items in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(v) for v in splits.values()) == len(samples)
    # roughly 80/10/10 and independent of row order
    assert 0.75 < len(splits["train"]) / len(samples) < 0.85
    assert split_of("abc.mp4") == split_of("abc.mp4")


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(y, s) == pytest.approx(pairwise)
    assert 0.0 <= best_threshold(y, s) <= 1.0


def test_threshold_under_a_cap_on_the_real_faces_flagged_per_source() -> None:
    """A small source's real photos score high (clean portraits): the best balanced accuracy
    flags many of them; with a cap on the share flagged, averaged over the sources, the
    threshold is the best one under it, and the small source weighs as much as the large one."""
    rng = np.random.default_rng(1)
    sources = np.r_[np.repeat("a", 1200), np.repeat("b", 200)]
    is_fake = np.r_[np.arange(1200) >= 600, np.arange(200) >= 100]
    real_mean = np.where(sources == "a", 0.2, 0.5)
    score = np.clip(np.where(is_fake, 0.7, real_mean) + rng.normal(0, 0.12, 1400), 0, 1)

    def flagged(t: float) -> float:
        return float(np.mean([(score[~is_fake & (sources == s)] >= t).mean() for s in ("a", "b")]))

    def balanced(t: float) -> float:
        return float((score[is_fake] >= t).mean() - (score[~is_fake] >= t).mean())

    free = best_threshold(is_fake, score)
    assert flagged(free) > 0.10
    capped = best_threshold(is_fake, score, max_reals_flagged=0.10, groups=sources)
    assert capped > free and flagged(capped) <= 0.10
    # no threshold under the cap does better (brute force over every distinct score)
    feasible = [t for t in np.unique(score) if flagged(t) <= 0.10]
    assert balanced(capped) == pytest.approx(max(balanced(t) for t in feasible))
    # pooled, without groups, the small source's reals are outweighed: a looser threshold
    pooled = best_threshold(is_fake, score, max_reals_flagged=0.10)
    assert float((score[~is_fake] >= pooled).mean()) <= 0.10 and pooled < capped
    # a real face with the top score: no threshold flags none of them but one above every score
    score[np.flatnonzero(~is_fake)[0]] = 2.0
    assert best_threshold(is_fake, score, max_reals_flagged=0.0, groups=sources) > 2.0


def test_lite0_transplant_matches_all_backbone_tensors() -> None:
    lite = load_lite0_state()
    model = build_model(ModelConfig())
    report = transplant_lite0(model, lite)
    assert report.lite0_total == 296
    assert report.matched == 294  # everything but Lite0's 1000-way classifier
    assert count_se_blocks(model) == 16
    assert len(report.b0_not_from_lite0) == 16 * 4 + 2  # SE fc1/fc2 weight+bias, new head

    # the folded stem, fed ImageNet-normalised pixels, equals Lite0's stem on 0.5/0.5 pixels
    pixels = torch.rand(1, 3, 33, 33)
    cfg = ModelConfig()
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    stem = model.model.features[0].eval()
    with torch.no_grad():
        ours = stem[1](stem[0]((pixels - mean) / std))
        bn = lite["_bn0.weight"], lite["_bn0.bias"], lite["_bn0.running_mean"]
        conv = F.conv2d((pixels - 0.5) / 0.5, lite["_conv_stem.weight"], stride=2, padding=1)
        theirs = F.batch_norm(conv, bn[2], lite["_bn0.running_var"], bn[0], bn[1], eps=1e-3)
    interior = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # padding differs at border
    assert torch.allclose(ours[interior], theirs[interior], atol=1e-4)

    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 64, 64))
    assert torch.equal(logits, torch.zeros_like(logits))  # zero-initialised head


def test_train_resume_and_evaluate(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = TrainConfig(
        data_dir=str(DATA),
        run_dir=str(run_dir),
        epochs=2,
        input_size=64,
        batch_size=16,
        limit=64,
        max_steps=3,
        warmup_steps=2,
        threads=2,
        resume=True,
    )
    first = train(cfg)
    assert first["stopped"] == "max_steps" and first["step"] == 3
    assert (run_dir / "last.pt").is_file() and (run_dir / "best.pt").is_file()

    split = json.loads((run_dir / "splits.json").read_text())
    parts = [set(split["groups"][k]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])

    cfg.max_steps = 5
    second = train(cfg)
    assert second["step"] == 5  # resumed from step 3, not restarted
    assert "resumed from" in (run_dir / "events.log").read_text()

    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 5

    out = tmp_path / "eval"
    shipped = tmp_path / "weights" / "model.pt"
    metrics = evaluate(
        checkpoint=run_dir / "best.pt",
        data_dir=DATA,
        labels_csv=DATA / "labels.csv",
        split="test",
        out_dir=out,
        limit=64,
        export_path=shipped,
        version="test",
    )
    for part in ("val", "test"):
        for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"):
            assert key in metrics[part]
        assert 0.0 <= metrics[part]["roc_auc"] <= 1.0
    assert sum(map(sum, metrics["test"]["confusion_matrix"]["matrix"])) == metrics["test"]["n"]
    for name in ("metrics.json", "roc.png", "confusion.png"):
        assert (out / name).stat().st_size > 0

    model, config, meta = load_checkpoint(shipped)
    assert config.input_size == 64 and config.version == "test"
    assert config.threshold == pytest.approx(metrics["threshold"])
    assert meta["metrics"]["test"]["roc_auc"] == round(metrics["test"]["roc_auc"], 4)
    side = json.loads(shipped.with_suffix(".json").read_text())
    assert len(side["sha256"]) == 64


def test_small_face_training_shrinks_crops_within_its_range(tmp_path: Path, monkeypatch) -> None:
    import training.train
    from training.data import SMALL_FACE_PX, shrink_face

    rng = np.random.default_rng(0)
    crop = np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    sides = {shrink_face(crop, rng).shape[:2] for _ in range(200)}
    assert all(h == w and SMALL_FACE_PX[0] <= h <= SMALL_FACE_PX[1] for h, w in sides)
    assert len(sides) > 20  # drawn across the range, not one size

    cfg = TrainConfig(
        data_dir=str(DATA),
        run_dir=str(tmp_path / "run"),
        input_size=64,
        batch_size=8,
        limit=32,
        max_steps=2,
        warmup_steps=1,
        threads=2,
        small_faces=1.0,
    )
    shrunk = []
    monkeypatch.setattr(
        training.train, "shrink_face", lambda rgb, rng: shrunk.append(1) or shrink_face(rgb, rng)
    )
    summary = train(cfg)
    assert summary["step"] == 2 and len(shrunk) == 2 * 8  # every crop of both batches
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta["train_config"]["small_faces"] == 1.0  # the recipe is recorded with the weights
