"""The distance scores of the unfamiliar-input study, on features made in the test."""

import numpy as np

from training.unfamiliar import FeatureReference, energy, score_report


def test_energy_is_lower_for_confident_logits():
    confident = np.array([[8.0, -8.0]])
    torn = np.array([[0.1, 0.0]])
    assert energy(confident)[0] < energy(torn)[0]
    # -logsumexp by hand for one row
    assert np.isclose(energy(np.array([[1.0, 2.0]]))[0], -np.log(np.e + np.e**2))


def test_distances_grow_away_from_the_training_features():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (500, 32)) + 5.0
    reference = FeatureReference(train, components=8)
    near = rng.normal(0, 1, (50, 32)) + 5.0
    far = rng.normal(0, 1, (50, 32)) * 3 - 5.0
    assert reference.mahalanobis(far).mean() > 3 * reference.mahalanobis(near).mean()
    assert reference.knn_distance(far).mean() > reference.knn_distance(near).mean()


def test_score_report_counts_faces_beyond_the_cut_per_source():
    familiar_val = np.arange(100, dtype=float)  # cut at the 95th percentile: 94.05
    familiar_test = np.array([10.0, 99.0])
    left_out = np.array([200.0, 1.0, 300.0, 400.0])
    sources = np.array(["a", "a", "b", "b"])
    report = score_report(familiar_val, familiar_test, left_out, sources)
    assert report["in_source_test_marked"] == 0.5
    assert report["left_out_marked"] == {"a": 0.5, "b": 1.0}
    assert 0.5 < report["auroc"] < 1.0
