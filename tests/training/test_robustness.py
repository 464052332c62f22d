"""The attacks, poisoning helpers and the purification defence do what they claim, on a handful of
real held-out face crops (not the report's figures: those come from `rrr robustness`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from detection.model import FAKE_INDEX, ModelConfig, resize_face
from detection.network import load_checkpoint
from detection.purify import purified_scores, purify
from tests.support import FACES, SHIPPED_WEIGHTS
from training import attacks, poisoning
from training.data import load_rgb
from training.robustness import summarize

pytestmark = pytest.mark.skipif(
    not SHIPPED_WEIGHTS.is_file() or not (FACES / "labels.csv").is_file(),
    reason="needs the shipped weights and ../shared/data/dfdc_faces",
)


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(2)
    model, config, _ = load_checkpoint(SHIPPED_WEIGHTS)
    return attacks.PixelModel(model, config), config


@pytest.fixture(scope="module")
def fakes(face_crops, shipped) -> torch.Tensor:
    size = shipped[1].input_size
    crops = [resize_face(load_rgb(p), size) for p in face_crops["fake"][:4]]
    return attacks.to_tensor(crops)


def _true_class_loss(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        y = torch.full((len(x),), FAKE_INDEX)
        return float(F.cross_entropy(model(x), y))


def test_pgd_stays_in_the_eps_ball_and_beats_fgsm(shipped, fakes) -> None:
    model, _ = shipped
    y = torch.full((len(fakes),), FAKE_INDEX)
    eps = 2 / 255
    adv_fgsm = attacks.fgsm(model, fakes, y, eps)
    adv_pgd = attacks.pgd(model, fakes, y, eps, steps=5, generator=torch.Generator().manual_seed(0))
    for adv in (adv_fgsm, adv_pgd):
        assert (adv - fakes).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        # rounding to uint8 keeps the perturbation within 2 grey levels
        diff = np.abs(
            np.stack(attacks.to_uint8(adv)).astype(int)
            - np.stack(attacks.to_uint8(fakes)).astype(int)
        )
        assert diff.max() <= 2
    clean, one_step, iterated = (_true_class_loss(model, v) for v in (fakes, adv_fgsm, adv_pgd))
    assert clean < one_step < iterated, (clean, one_step, iterated)


def test_eot_transform_passes_gradient_straight_through_jpeg(fakes) -> None:
    transform = attacks.purify_approximation(torch.Generator().manual_seed(0))
    x = fakes.clone().requires_grad_(True)
    out = transform(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the forward value is the real JPEG'd image: whole grey levels
    grey = out.detach() * 255
    assert torch.allclose(grey, grey.round(), atol=1e-3)


def test_patch_covers_the_stated_area_inside_the_crop() -> None:
    side = attacks.patch_side(128, 0.10)
    assert side == 40 and abs(side * side / 128**2 - 0.10) < 0.01
    gen = torch.Generator().manual_seed(0)
    offsets = attacks.random_offsets(500, 128, side, gen)
    assert offsets.min() >= 0 and offsets.max() <= 128 - side
    out = attacks.apply_patch(torch.zeros(3, 3, 128, 128), torch.ones(3, side, side), offsets[:3])
    for img, (r, c) in zip(out, offsets[:3].tolist(), strict=True):
        assert int(img.sum()) == 3 * side * side
        assert bool((img[:, r : r + side, c : c + side] == 1).all())


def test_trained_patch_pushes_fakes_towards_real_more_than_noise(shipped, fakes) -> None:
    model, config = shipped
    gen = torch.Generator().manual_seed(0)
    side = attacks.patch_side(config.input_size, 0.10)
    patch = attacks.train_patch(model, fakes, side, steps=8, batch_size=4, generator=gen)
    assert patch.shape == (3, side, side) and patch.min() >= 0 and patch.max() <= 1
    offsets = attacks.random_offsets(len(fakes), config.input_size, side, gen)
    noise = torch.rand(3, side, side, generator=gen)
    with torch.no_grad():
        p_real = [
            F.softmax(model(attacks.apply_patch(fakes, p, offsets)), 1)[:, 1 - FAKE_INDEX]
            .mean()
            .item()
            for p in (patch, noise)
        ]
    assert p_real[0] > p_real[1], p_real


def test_flip_labels_flips_exactly_the_fraction() -> None:
    labels = np.array([0, 1] * 500)
    flipped, idx = attacks.flip_labels(labels, 0.05, np.random.default_rng(0))
    assert len(idx) == 50 == len(np.unique(idx))
    assert (flipped != labels).sum() == 50
    assert (flipped[idx] == 1 - labels[idx]).all()
    none, idx0 = attacks.flip_labels(labels, 0.0, np.random.default_rng(0))
    assert len(idx0) == 0 and (none == labels).all()


def test_stamp_trigger_changes_only_the_corner() -> None:
    images = np.full((2, 128, 128, 3), 100, dtype=np.uint8)
    stamped = attacks.stamp_trigger(images, side=10, margin=4)
    assert (images == 100).all()  # a copy, the input is untouched
    changed = np.argwhere((stamped != images).any(axis=(0, 3)))
    assert changed[:, 0].min() >= 114 and changed[:, 0].max() <= 123
    assert changed[:, 1].min() >= 114 and changed[:, 1].max() <= 123
    assert (stamped[:, 114:124, 114:124] == attacks.trigger_pattern(10)).all()
    assert set(np.unique(attacks.trigger_pattern(10))) == {0, 255}


def test_poisoning_head_training_only_moves_the_head() -> None:
    torch.manual_seed(0)
    config = ModelConfig(input_size=64)
    base = poisoning.lite0_model(config)
    images = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    feats = poisoning.cache_features(base, images, config)
    assert feats.shape == (64, 320, 2, 2) and feats.dtype == torch.float16
    labels = np.arange(64) % 2
    trained = poisoning.train_head(base, feats, labels, epochs=1.0, batch_size=16)
    frozen_same = all(
        torch.equal(a, b)
        for a, b in zip(
            base.model.features[: poisoning.FROZEN_STAGES].state_dict().values(),
            trained.model.features[: poisoning.FROZEN_STAGES].state_dict().values(),
            strict=True,
        )
    )
    assert frozen_same
    assert not torch.equal(base.model.classifier[1].weight, trained.model.classifier[1].weight)
    scores = poisoning.head_scores(trained, feats)
    assert scores.shape == (64,) and ((scores >= 0) & (scores <= 1)).all()


def test_purify_is_seeded_sized_and_changes_pixels(face_crops) -> None:
    crops = [load_rgb(p) for p in face_crops["real"][:3]]
    a = purify(crops, np.random.default_rng(0), size=128)
    b = purify(crops, np.random.default_rng(0), size=128)
    assert all(x.shape == (128, 128, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    resized = [resize_face(c, 128) for c in crops]
    assert all(np.abs(x.astype(int) - r).mean() > 0.5 for x, r in zip(a, resized, strict=True))
    with pytest.raises(ValueError):
        purify([np.zeros((8, 8), dtype=np.uint8)], np.random.default_rng(0))


def test_purified_scores_average_over_views() -> None:
    calls = []

    def score(batch):
        calls.append(len(batch))
        return np.full(len(batch), float(len(calls)))

    crops = [np.zeros((32, 32, 3), dtype=np.uint8)] * 2
    assert purified_scores(score, crops, views=0).tolist() == [1.0, 1.0]  # off: as they are
    calls.clear()
    assert purified_scores(score, crops, views=4, rng=np.random.default_rng(0)).tolist() == [
        2.5,
        2.5,
    ]  # mean of 1, 2, 3, 4
    assert calls == [2, 2, 2, 2]


def test_summarize_counts_only_fakes_detected_when_clean() -> None:
    is_fake = np.array([True, True, True, False])
    clean = np.array([0.9, 0.8, 0.1, 0.2])
    attacked = np.array([0.1, 0.9, 0.1, 0.7])
    m = summarize(attacked, is_fake, 0.5, clean)
    assert m["attack_success"] == 0.5  # of the two detected fakes, one now passes as REAL
    assert m["acc_fake"] == pytest.approx(1 / 3) and m["acc_real"] == 0.0


def test_robustness_command_is_registered() -> None:
    from rrr.cli import cli

    result = CliRunner().invoke(cli, ["robustness", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output
