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


def test_every_face_of_a_group_photo_is_judged_alone_or_in_a_batch(analyzer, face_crops, tmp_path):
    """A 12 MP photo with three faces of 150 px beside one of 800 px: an image job and a batch
    item both judge all four (the photo search of detection/faces.py), each with its score."""
    photo = Image.new("RGB", (4000, 3000), (90, 90, 90))
    spots = [(2800, 1200, 800), (300, 400, 150), (1850, 600, 150), (900, 2500, 150)]
    for path, (x, y, side) in zip(face_crops["real"], spots, strict=False):
        photo.paste(Image.open(path).convert("RGB").resize((side, side)), (x, y))
    jpeg = tmp_path / "group.jpg"
    photo.save(jpeg, quality=90)
    result, _ = analyzer.analyze_image(jpeg)
    assert len(result["faces"]) == 4, result["faces"]
    assert sorted(min(f["box"][2:]) > 500 for f in result["faces"]) == [False, False, False, True]
    batch = analyzer.analyze_batch([("group.jpg", jpeg, None)], lambda done, total: True)
    assert batch["items"][0]["faces"] == result["faces"]


def test_purification_setting_changes_scores_only_when_on(analyzer, face_crops):
    from dataclasses import replace

    crop_paths = face_crops["fake"][:4]
    plain = [analyzer.analyze_image(p)[0]["probability_fake"] for p in crop_paths]
    purified = replace(analyzer, purify_views=1)
    views = [purified.analyze_image(p)[0]["probability_fake"] for p in crop_paths]
    assert views != plain  # a random down-up + JPEG view of each face was scored
    assert max(abs(a - b) for a, b in zip(views, plain, strict=True)) < 0.5


def _two_faces(face_crops, tmp_path, large: int = 220, small: int = 110) -> tuple:
    """A picture holding a real face crop at two sizes, side by side: (path, its faces)."""
    face = Image.open(face_crops["real"][0]).convert("RGB")
    canvas = Image.new("RGB", (large + small + 60, large + 40), (90, 90, 90))
    canvas.paste(face.resize((large, large)), (20, 20))
    canvas.paste(face.resize((small, small)), (large + 40, 20 + (large - small) // 2))
    path = tmp_path / "two.png"
    canvas.save(path)
    return path


def test_faces_too_small_to_judge_are_unsure_and_left_out_of_the_verdict(
    analyzer, face_crops, tmp_path
):
    from dataclasses import replace

    path = _two_faces(face_crops, tmp_path)
    every = replace(analyzer, min_face_px=0).analyze_image(path)[0]
    assert len(every["faces"]) == 2 and not any("too_small" in f for f in every["faces"])
    sides = sorted(min(f["box"][2:]) for f in every["faces"])
    cut = (sides[0] + sides[1]) // 2  # between the two faces' sizes

    result = replace(analyzer, min_face_px=cut).analyze_image(path)[0]
    small, large = sorted(result["faces"], key=lambda f: min(f["box"][2:]))
    assert small["too_small"] is True and small["prediction"] == "UNCERTAIN"
    assert "too_small" not in large
    # the scores are still reported; the verdict follows the face large enough to judge
    assert [f["probability_fake"] for f in result["faces"]] == [
        f["probability_fake"] for f in every["faces"]
    ]
    assert result["probability_fake"] == large["probability_fake"]
    assert "too_small" not in result

    none = replace(analyzer, min_face_px=sides[1] + 1).analyze_image(path)[0]
    assert all(f["too_small"] for f in none["faces"])
    assert none["prediction"] == "UNCERTAIN" and none["too_small"] is True
    assert none["probability_fake"] == max(f["probability_fake"] for f in none["faces"])


def test_video_verdict_leaves_out_frames_whose_faces_are_all_too_small(analyzer):
    from dataclasses import replace

    judged = {"probability_fake": 0.0, "box": [0, 0, 90, 90]}
    tiny = {"probability_fake": 0.0, "box": [0, 0, 20, 20], "too_small": True}

    def frame(i: int, p: float | None, *faces: dict) -> dict:
        return {
            "timestamp_s": float(i),
            "probability_fake": p,
            "faces": [{**f, "probability_fake": p} for f in faces],
        }

    strict = replace(analyzer, threshold=0.5, unsure_margin=0.0)
    frames = [
        frame(0, 0.1, judged),
        frame(1, 0.9, tiny),
        frame(2, 0.9, tiny),
        frame(3, 0.2, judged),
    ]
    result = strict.aggregate_video(frames, sample_fps=1.0)
    assert result["prediction"] == "REAL" and "too_small" not in result
    assert result["probability_fake"] == pytest.approx(0.15)  # frames 0 and 3 only
    assert result["frames_with_faces"] == 4
    assert result["suspicious_segments"] == []  # too small to flag a stretch either

    only_tiny = strict.aggregate_video([frame(0, 0.9, tiny), frame(1, None)], sample_fps=1.0)
    assert only_tiny["prediction"] == "UNCERTAIN" and only_tiny["too_small"] is True
    assert only_tiny["probability_fake"] == pytest.approx(0.9)


def test_a_frame_scores_its_faces_large_enough_to_judge():
    from detection.analyzer import frame_score

    assert frame_score([]) is None
    faces = [{"probability_fake": 0.9, "too_small": True}, {"probability_fake": 0.2}]
    assert frame_score(faces) == 0.2
    assert frame_score(faces[:1]) == 0.9
