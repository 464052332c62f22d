"""Calibration and the unsure band: fitted on validation data only.

- Temperature scaling (Guo et al., ICML 2017): one scalar T divides the logits so that the
  softmax's probabilities match observed frequencies. With two classes it keeps the ranking
  (AUC); with several fake classes P(fake) = 1 - P(REAL) can reorder a little.
- Expected calibration error (ECE) and reliability bins, per source.
- The unsure band: faces whose calibrated probability lies within a margin of the threshold are
  UNCERTAIN; the margin is the largest that keeps the unsure share on validation data under a
  budget, so "unsure" cannot become a way to avoid answering.
"""

from __future__ import annotations

import numpy as np

from detection.model import ModelConfig, class_probabilities, fake_probability

RELIABILITY_BINS = 10


def fit_temperature(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.25, 10] minimising the validation negative log-likelihood.

    ``log_probs`` are (N, C) log class probabilities at T = 1 (logits up to a per-row constant,
    which the softmax ignores); ``labels`` are class indices.
    """
    if len(labels) == 0:
        return 1.0

    def nll(t: float) -> float:
        z = log_probs / t
        z = z - z.max(axis=1, keepdims=True)
        log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_softmax[np.arange(len(labels)), labels].mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(10.0), 121))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    lo, hi = best / 1.03, best * 1.03  # golden-section refinement inside one grid step
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(30):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float((lo + hi) / 2)


def calibrated(probs_t1: np.ndarray, config: ModelConfig) -> np.ndarray:
    """P(fake) under ``config.temperature`` from class probabilities computed at T = 1."""
    log_probs = np.log(np.clip(probs_t1, 1e-12, 1.0))
    return fake_probability(class_probabilities(log_probs, config), config)


def reliability(p_fake: np.ndarray, is_fake: np.ndarray, bins: int = RELIABILITY_BINS) -> dict:
    """Equal-width bins of P(fake): count, mean predicted and observed fake rate; and the ECE
    (the count-weighted mean gap between the two)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_fake, edges[1:-1]), 0, bins - 1)
    rows, gap = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n == 0:
            rows.append({"bin": [round(float(edges[b]), 2), round(float(edges[b + 1]), 2)], "n": 0})
            continue
        predicted, observed = float(p_fake[mask].mean()), float(is_fake[mask].mean())
        gap += n * abs(predicted - observed)
        rows.append(
            {
                "bin": [round(float(edges[b]), 2), round(float(edges[b + 1]), 2)],
                "n": n,
                "mean_predicted": round(predicted, 4),
                "observed_fake": round(observed, 4),
            }
        )
    return {"ece": round(gap / max(1, len(p_fake)), 4), "bins": rows}


def unsure_mask(p_fake: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    return np.abs(p_fake - threshold) < margin


def fit_unsure_margin(p_fake: np.ndarray, threshold: float, max_share: float) -> float:
    """The widest margin around ``threshold`` leaving at most ``max_share`` of ``p_fake`` unsure."""
    if len(p_fake) == 0 or max_share <= 0:
        return 0.0
    distances = np.sort(np.abs(p_fake - threshold))
    k = int(np.floor(max_share * len(distances)))
    # unsure means |p - threshold| < margin, so the (k+1)-th smallest distance admits k faces
    return float(distances[k]) if k < len(distances) else 1.0


def unsure_tradeoff(
    p_fake: np.ndarray,
    is_fake: np.ndarray,
    threshold: float,
    margins: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25),
) -> list[dict]:
    """For each margin: the unsure share and the accuracy of the confident answers."""
    out = []
    for margin in margins:
        unsure = unsure_mask(p_fake, threshold, margin)
        confident = ~unsure
        correct = (p_fake >= threshold) == is_fake
        out.append(
            {
                "margin": margin,
                "unsure_share": round(float(unsure.mean()), 4) if len(p_fake) else None,
                "confident_accuracy": round(float(correct[confident].mean()), 4)
                if confident.any()
                else None,
            }
        )
    return out
