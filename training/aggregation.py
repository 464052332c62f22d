"""Candidate rules that turn a video's per-frame face scores into one P(FAKE), compared on
labelled videos by ``rrr eval --videos`` (the service uses the one chosen from that table:
``detection.analyzer.Analyzer.aggregate_video``).

Each rule takes the per-frame rows the worker stores (``faces``: box + probability_fake) and
returns a probability, or None when no frame has a face.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Frames = list[dict[str, Any]]


def _frame_max(frames: Frames) -> list[float]:
    return [f["probability_fake"] for f in frames if f["probability_fake"] is not None]


def mean_of_frame_max(frames: Frames) -> float | None:
    """Mean over frames with a face of the frame's most suspicious face."""
    scores = _frame_max(frames)
    return float(np.mean(scores)) if scores else None


def median_of_frame_max(frames: Frames) -> float | None:
    scores = _frame_max(frames)
    return float(np.median(scores)) if scores else None


def top_quarter_mean(frames: Frames) -> float | None:
    """Mean of the most suspicious quarter of frames: a manipulation in part of the video."""
    scores = sorted(_frame_max(frames), reverse=True)
    return float(np.mean(scores[: max(1, len(scores) // 4)])) if scores else None


def _iou(a: list[int], b: list[int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - ix * iy
    return ix * iy / union if union else 0.0


def tracks(frames: Frames, min_iou: float = 0.3) -> list[list[float]]:
    """Faces linked across consecutive sampled frames by box overlap: one list of scores per
    person on screen (greedy, in frame order)."""
    open_tracks: list[tuple[list[int], list[float]]] = []
    closed: list[list[float]] = []
    for frame in frames:
        next_open = []
        unmatched = list(open_tracks)
        for face in frame["faces"]:
            best = max(unmatched, key=lambda t: _iou(t[0], face["box"]), default=None)
            if best is not None and _iou(best[0], face["box"]) >= min_iou:
                unmatched.remove(best)
                best[1].append(face["probability_fake"])
                next_open.append((face["box"], best[1]))
            else:
                next_open.append((face["box"], [face["probability_fake"]]))
        closed += [scores for _, scores in unmatched]
        open_tracks = next_open
    return closed + [scores for _, scores in open_tracks]


def max_identity_mean(frames: Frames, min_frames: int = 3) -> float | None:
    """Each person's mean score, the video's score is the most suspicious person's (DFDC fakes
    often swap one face among several). Tracks shorter than ``min_frames`` (detector noise) are
    ignored unless nothing longer exists."""
    found = tracks(frames)
    if not found:
        return None
    long_enough = [t for t in found if len(t) >= min_frames] or found
    return float(max(np.mean(t) for t in long_enough))


RULES: dict[str, Callable[[Frames], float | None]] = {
    "mean_of_frame_max": mean_of_frame_max,
    "median_of_frame_max": median_of_frame_max,
    "top_quarter_mean": top_quarter_mean,
    "max_identity_mean": max_identity_mean,
}


def compare_rules(videos: list[tuple[str, Frames]], threshold: float) -> dict[str, Any]:
    """videos: (label FAKE/REAL, frames) -> per rule: videos right at ``threshold``, and the
    margin (smallest distance to the threshold among the right ones: how close a call was)."""
    table = {}
    for name, rule in RULES.items():
        scores = [(label, rule(frames)) for label, frames in videos]
        judged = [(label, p) for label, p in scores if p is not None]
        right = [abs(p - threshold) for label, p in judged if (p >= threshold) == (label == "FAKE")]
        table[name] = {
            "correct": len(right),
            "of": len(judged),
            "min_margin": round(min(right), 4) if right else None,
            "scores": [None if p is None else round(p, 4) for _, p in scores],
        }
    return table
