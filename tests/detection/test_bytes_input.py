"""Images read from an object store reach the analyzer as bytes, not as a path: the verdict, the
faces, the heatmap and the provenance are the same either way."""

from __future__ import annotations

import pytest

from detection.analyzer import get_analyzer
from shared.errors import MediaError


@pytest.fixture(scope="module")
def analyzer():
    return get_analyzer()


def _without_timings(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "timings_ms"} | {
        "provenance": {k: v for k, v in result["provenance"].items() if k != "elapsed_ms"}
    }


def test_bytes_and_path_give_the_same_result(analyzer, face_crops):
    crop = face_crops["fake"][0]
    from_path, heatmap_path = analyzer.analyze_image(crop, explain=True, mime="image/jpeg")
    from_bytes, heatmap_bytes = analyzer.analyze_image(
        crop.read_bytes(), explain=True, mime="image/jpeg"
    )
    assert from_path["faces"], "the crop should hold a face"
    assert _without_timings(from_bytes) == _without_timings(from_path)
    assert heatmap_bytes == heatmap_path


def test_corrupt_bytes_fail_like_a_corrupt_file(analyzer, face_crops):
    data = face_crops["real"][0].read_bytes()
    with pytest.raises(MediaError) as raised:
        analyzer.analyze_image(data[: len(data) // 3] + b"\0" * 10)
    assert raised.value.code == "image_corrupt"
