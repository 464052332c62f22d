"""Calibration and the unsure band, on scores made in the test with a known truth."""

from __future__ import annotations

import numpy as np

from detection.model import SIGNAL_LABELS, ModelConfig, class_probabilities, fake_probability
from training.calibration import (
    fit_temperature,
    fit_unsure_margin,
    reliability,
    unsure_mask,
    unsure_tradeoff,
)


def _overconfident(n: int = 6000, true_t: float = 2.5, seed: int = 0):
    """Logits whose calibrated probabilities are softmax(logits / true_t), labels drawn so."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, 3))
    z = logits / true_t
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, labels


def test_temperature_recovers_the_true_one():
    logits, labels = _overconfident()
    assert abs(fit_temperature(logits, labels) - 2.5) < 0.25


def test_temperature_scaling_lowers_the_calibration_error():
    logits, labels = _overconfident()
    config = ModelConfig(labels=SIGNAL_LABELS)
    is_fake = (labels != config.real_index).astype(float)
    raw = fake_probability(class_probabilities(logits, config), config)
    fitted = ModelConfig(labels=SIGNAL_LABELS, temperature=fit_temperature(logits, labels))
    tuned = fake_probability(class_probabilities(logits, fitted), fitted)
    assert reliability(tuned, is_fake)["ece"] < 0.5 * reliability(raw, is_fake)["ece"]
    assert reliability(tuned, is_fake)["ece"] < 0.03


def test_reliability_bins_count_everything():
    p = np.array([0.05, 0.15, 0.95, 0.99, 0.5])
    out = reliability(p, np.array([0, 0, 1, 1, 1.0]))
    assert sum(b["n"] for b in out["bins"]) == 5
    assert 0 <= out["ece"] <= 1


def test_unsure_margin_keeps_to_its_budget_and_is_the_widest_that_does():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 5000)
    margin = fit_unsure_margin(p, 0.4, 0.08)
    share = unsure_mask(p, 0.4, margin).mean()
    assert share <= 0.08
    assert unsure_mask(p, 0.4, margin * 1.05).mean() > 0.075  # not needlessly narrow
    assert fit_unsure_margin(p, 0.4, 0.0) == 0.0


def test_confident_answers_get_more_accurate_as_the_band_widens():
    rng = np.random.default_rng(2)
    is_fake = rng.random(4000) < 0.5
    # scores informative but noisy around the threshold
    p = np.clip(np.where(is_fake, 0.65, 0.35) + rng.normal(0, 0.2, 4000), 0, 1)
    rows = unsure_tradeoff(p, is_fake, 0.5, margins=(0.0, 0.1, 0.2))
    shares = [r["unsure_share"] for r in rows]
    accuracy = [r["confident_accuracy"] for r in rows]
    assert shares[0] == 0.0 and shares[0] < shares[1] < shares[2]
    assert accuracy[0] < accuracy[1] < accuracy[2]
