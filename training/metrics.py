"""Binary classification metrics in numpy (FAKE is the positive class); no sklearn needed."""

from __future__ import annotations

import numpy as np


def roc_auc(is_fake: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given average ranks."""
    is_fake = np.asarray(is_fake, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(is_fake.sum()), int((~is_fake).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average rank over runs of equal scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[is_fake].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(is_fake: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, predicting FAKE when score >= t."""
    is_fake = np.asarray(is_fake, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], is_fake[order]
    last_of_run = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    thresholds = np.r_[np.inf, s[last_of_run]]
    return fpr, tpr, thresholds


def best_threshold(
    is_fake: np.ndarray,
    score: np.ndarray,
    max_reals_flagged: float | None = None,
    groups: np.ndarray | None = None,
) -> float:
    """Threshold maximising Youden's J (= balanced accuracy - 0.5) on the given scores.

    With ``max_reals_flagged``, only thresholds that flag at most that share of the real faces,
    averaged over ``groups`` (e.g. sources) with equal weights, are candidates: a rule for when
    flagging a real photo costs more than missing a fake. Equal weights keep a large group from
    hiding a small one's real faces, and one group of a few dozen from setting the rule alone.
    Returns the midpoint between the chosen score and the next lower one, so a threshold picked
    on validation does not sit exactly on one validation image's score.
    """
    fpr, tpr, thresholds = roc_curve(is_fake, score)
    j = tpr - fpr
    if max_reals_flagged is not None:
        flagged = reals_flagged_by_group(is_fake, score, thresholds, groups).mean(axis=0)
        j = np.where(flagged <= max_reals_flagged, j, -np.inf)
    i = int(np.argmax(j[1:])) + 1  # skip the (0, 0) point at +inf
    if not np.isfinite(j[i]):  # every score flags too many real faces: flag none
        return float(np.nextafter(thresholds[1], np.inf))
    t = thresholds[i]
    lower = thresholds[i + 1] if i + 1 < len(thresholds) else 0.0
    return float((t + lower) / 2.0)


def threshold_rule(max_reals_flagged: float | None) -> str:
    """How the threshold was chosen, in words, for reports and the shipped metadata."""
    rule = "maximises balanced accuracy on the validation split"
    if max_reals_flagged is None:
        return rule
    cap = f"{max_reals_flagged:.0%}"
    return f"{rule}, among thresholds flagging at most {cap} of the real faces (mean over sources)"


def reals_flagged_by_group(
    is_fake: np.ndarray, score: np.ndarray, thresholds: np.ndarray, groups: np.ndarray | None
) -> np.ndarray:
    """(groups with real faces, thresholds): each group's share of real faces at or above each
    threshold."""
    reals = ~np.asarray(is_fake, dtype=bool)
    groups = np.zeros(len(score), dtype=int) if groups is None else np.asarray(groups)
    rows = []
    for group in np.unique(groups[reals]):
        s = np.sort(score[reals & (groups == group)])
        rows.append(1.0 - np.searchsorted(s, thresholds, side="left") / len(s))
    return np.array(rows).reshape(-1, len(thresholds))


def classification_report(is_fake: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision, recall, F1, balanced accuracy, AUC and confusion matrix at threshold."""
    is_fake = np.asarray(is_fake, dtype=bool)
    pred_fake = np.asarray(score) >= threshold
    tp = int((pred_fake & is_fake).sum())
    fp = int((pred_fake & ~is_fake).sum())
    fn = int((~pred_fake & is_fake).sum())
    tn = int((~pred_fake & ~is_fake).sum())
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n,
        "n_fake": tp + fn,
        "n_real": tn + fp,
        "threshold": float(threshold),
        "accuracy": (tp + tn) / n if n else 0.0,
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "specificity": specificity,
        "roc_auc": roc_auc(is_fake, score),
        # rows: true class, columns: predicted class, in label order (FAKE, REAL)
        "confusion_matrix": {"labels": ["FAKE", "REAL"], "matrix": [[tp, fn], [fp, tn]]},
    }
