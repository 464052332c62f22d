"""The candidate video aggregation rules compared by `rrr eval --videos`."""

from __future__ import annotations

import pytest

from training.aggregation import compare_rules, max_identity_mean, mean_of_frame_max, tracks


def frame(*faces: tuple[int, float]) -> dict:
    """faces: (x position, probability_fake); boxes 100 px wide, far apart per x."""
    rows = [{"box": [x, 50, 100, 100], "probability_fake": p} for x, p in faces]
    return {"faces": rows, "probability_fake": max((p for _, p in faces), default=None)}


def test_tracks_follow_each_person_across_frames():
    frames = [frame((0, 0.1), (500, 0.9)), frame((5, 0.2), (505, 0.8)), frame(), frame((8, 0.3))]
    # the left person is lost in the empty frame, so their last face starts a new track
    assert sorted(tracks(frames)) == [[0.1, 0.2], [0.3], [0.9, 0.8]]


def test_identity_rule_follows_the_manipulated_person():
    # one swapped face among two people: the frame max is the fake face in every frame here,
    # but a real person with a noisy spike must not outweigh a steadily fake one
    frames = [frame((0, 0.2), (500, 0.7)) for _ in range(5)]
    assert max_identity_mean(frames) == pytest.approx(0.7)
    assert mean_of_frame_max(frames) == pytest.approx(0.7)
    assert max_identity_mean([frame(), frame()]) is None


def test_compare_rules_counts_right_calls():
    fake = [frame((0, 0.9)) for _ in range(4)]
    real = [frame((0, 0.2)) for _ in range(4)]
    table = compare_rules([("FAKE", fake), ("REAL", real), ("REAL", [frame()])], 0.5)
    assert table["mean_of_frame_max"]["correct"] == 2
    assert table["mean_of_frame_max"]["of"] == 2
    assert table["mean_of_frame_max"]["min_margin"] == pytest.approx(0.3)
    assert table["max_identity_mean"]["scores"][2] is None
