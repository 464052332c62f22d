"""The analyzer on real media, with the configured weights (plumbing, not accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detection.analyzer import Canceled, get_analyzer
from detection.media import probe_video
from shared.errors import MediaError


@pytest.fixture(scope="module")
def analyzer():
    return get_analyzer()


def test_image_result_has_every_field(analyzer, face_crops):
    result, heatmap = analyzer.analyze_image(face_crops["fake"][0], explain=True)
    assert result["prediction"] in ("FAKE", "REAL")
    assert 0.0 <= result["probability_fake"] <= 1.0
    assert result["probability_real"] == pytest.approx(1 - result["probability_fake"], abs=1e-5)
    assert result["confidence"] >= 0.5
    assert result["faces"] and all(len(face["box"]) == 4 for face in result["faces"])
    # the image verdict follows the most suspicious face
    assert result["probability_fake"] == max(f["probability_fake"] for f in result["faces"])
    assert set(result["model"]) == {"name", "version", "sha256", "engine"}
    assert set(result["timings_ms"]) >= {"decode", "detect", "infer", "total", "explain"}
    assert heatmap is not None and heatmap.startswith(b"\x89PNG")


def test_image_without_face_says_so(analyzer, tmp_path):
    path = tmp_path / "sky.png"
    Image.new("RGB", (320, 240), (120, 160, 220)).save(path)
    result, heatmap = analyzer.analyze_image(path, explain=True)
    assert result["prediction"] == "NO_FACE"
    assert result["probability_fake"] is None and result["faces"] == []
    assert heatmap is None


def test_same_crop_same_score(analyzer, face_crops):
    a, _ = analyzer.analyze_image(face_crops["real"][0])
    b, _ = analyzer.analyze_image(face_crops["real"][0])
    assert a["probability_fake"] == b["probability_fake"]


def test_batch_keeps_going_past_a_bad_item(analyzer, face_crops, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(face_crops["real"][0].read_bytes()[:300])
    items = [
        ("a.jpg", face_crops["real"][1], None),
        ("b.jpg", broken, None),
        ("c.txt", None, MediaError("not an image", code="unsupported_media_type")),
    ]
    seen = []
    result = analyzer.analyze_batch(items, lambda done, total: seen.append((done, total)) or True)
    assert seen[-1] == (3, 3)
    assert result["summary"]["total"] == 3 and result["summary"]["failed"] == 2
    assert result["items"][1]["error"]["code"] == "image_corrupt"
    assert result["items"][2]["error"]["code"] == "unsupported_media_type"


def test_video_frames_and_aggregate(analyzer, video_paths):
    path = next(p for p in video_paths if p.name == "knqhpwoigk.mp4")
    reports = []
    result, frames = analyzer.analyze_video(
        path, sample_fps=0.5, max_frames=100, progress=lambda d, t: reports.append((d, t)) or True
    )
    assert result["frames_analyzed"] == len(frames) == 5
    assert reports[0] == (0, 5) and reports[-1] == (5, 5)
    scored = [f["probability_fake"] for f in frames if f["probability_fake"] is not None]
    assert result["frames_with_faces"] == len(scored) >= 4
    assert result["probability_fake"] == pytest.approx(np.mean(scored), abs=1e-6)
    assert result["duration_s"] == pytest.approx(10.0, abs=0.1)


def test_video_keyframe_sampling_rows_carry_the_keyframes(analyzer, video_paths):
    path = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    exact, _ = analyzer.analyze_video(path, 1.0, 100, lambda d, t: True)
    result, frames = analyzer.analyze_video(path, 1.0, 100, lambda d, t: True, "keyframes")
    assert exact["sampling"] == "exact" and exact["frames_analyzed"] == 10
    assert result["sampling"] == "keyframes"
    # this clip's keyframes are frames 0 and 163 (5.439 s at 29.97 fps): samples 0 and 6
    assert [(f["index"], f["frame_number"], f["timestamp_s"]) for f in frames] == [
        (0, 0, 0.0),
        (6, 163, 5.439),
    ]
    assert result["frames_analyzed"] == 2


def test_video_progress_moves_frame_by_frame(analyzer, video_paths):
    """Every sampled frame is handed on as soon as it is scored (not in blocks of frames)."""
    path = next(p for p in video_paths if p.name == "knqhpwoigk.mp4")
    info = probe_video(path)
    calls = []
    analyzer.analyze_segment(path, info, 2.0, 100, 0, None, lambda rows: calls.append(rows) or True)
    assert len(calls) == 20 and all(len(rows) == 1 for rows in calls)
    assert [rows[0]["index"] for rows in calls] == list(range(20))


def test_video_stops_when_canceled(analyzer, video_paths):
    with pytest.raises(Canceled):
        analyzer.analyze_video(video_paths[0], 1.0, 100, progress=lambda d, t: d == 0)


def test_suspicious_segments_merge_consecutive_frames(analyzer):
    p = [0.9, 0.95, 0.1, None, 0.8, 0.2]
    frames = [{"timestamp_s": float(i), "probability_fake": v} for i, v in enumerate(p)]
    threshold = analyzer.threshold
    analyzer.threshold = 0.5
    try:
        result = analyzer.aggregate_video(frames, sample_fps=1.0)
    finally:
        analyzer.threshold = threshold
    assert result["suspicious_segments"] == [
        {"start_s": 0.0, "end_s": 2.0, "mean_probability_fake": pytest.approx(0.925)},
        {"start_s": 4.0, "end_s": 5.0, "mean_probability_fake": pytest.approx(0.8)},
    ]
    assert result["frames_with_faces"] == 5
    assert result["probability_fake"] == pytest.approx(np.mean([0.9, 0.95, 0.1, 0.8, 0.2]))


def test_batch_scores_faces_together_with_the_same_results(analyzer, face_crops):
    paths = face_crops["real"][:3] + face_crops["fake"][:3]
    items = [(p.name, p, None) for p in paths]
    batch = analyzer.analyze_batch(items, lambda done, total: True)
    alone = [analyzer.analyze_image(p)[0] for p in paths]
    for item, single in zip(batch["items"], alone, strict=True):
        assert item["faces"] == single["faces"]
        assert item["prediction"] == single["prediction"]


def test_purification_setting_changes_scores_only_when_on(analyzer, face_crops):
    from dataclasses import replace

    crop_paths = face_crops["fake"][:4]
    plain = [analyzer.analyze_image(p)[0]["probability_fake"] for p in crop_paths]
    purified = replace(analyzer, purify_views=1)
    views = [purified.analyze_image(p)[0]["probability_fake"] for p in crop_paths]
    assert views != plain  # a random down-up + JPEG view of each face was scored
    assert max(abs(a - b) for a, b in zip(views, plain, strict=True)) < 0.5
