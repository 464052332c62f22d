from __future__ import annotations

import pytest

from api.sniff import sniff
from shared.errors import BadRequest, UnsupportedMedia
from tests.support import media


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (media.image_bytes(fmt="PNG"), "image"),
        (media.image_bytes(fmt="JPEG"), "image"),
        (media.image_bytes(fmt="WEBP"), "image"),
        (media.image_bytes(fmt="BMP"), "image"),
        (media.animated_gif(), "image"),
    ],
)
def test_sniff_recognises_images_by_content(data, kind):
    assert sniff(data[:8192]).kind == kind


def test_sniff_recognises_video(video_paths):
    assert sniff(video_paths[0].read_bytes()[:8192]).kind == "video"


def test_sniff_rejects_text_and_empty():
    with pytest.raises(UnsupportedMedia):
        sniff(b"<html><body>not an image</body></html>")
    with pytest.raises(BadRequest, match="empty"):
        sniff(b"")
