from __future__ import annotations

import pytest

from shared.errors import BadRequest, MediaError, UnsupportedMedia
from shared.media import decode_image, probe_video, sample_frames, sniff
from tests import media


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


@pytest.mark.parametrize(
    ("mode", "fmt", "save"),
    [
        ("CMYK", "JPEG", {}),
        ("L", "PNG", {}),
        ("I;16", "PNG", {}),
        ("P", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("LA", "PNG", {}),
        ("RGB", "TIFF", {}),
    ],
)
def test_decode_odd_modes_to_rgb(tmp_path, mode, fmt, save):
    path = tmp_path / "img"
    path.write_bytes(media.image_bytes(mode=mode, fmt=fmt, **save))
    rgb = decode_image(path, max_pixels=10**7)
    assert rgb.shape == (48, 64, 3) and rgb.dtype.name == "uint8"


def test_decode_sixteen_bit_keeps_contrast(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(media.image_bytes(mode="I;16", fmt="PNG"))
    rgb = decode_image(path, max_pixels=10**7)
    assert rgb.std() > 20  # scaled to 8 bits, not clipped to white


def test_decode_truncated_image_fails_cleanly(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(media.image_bytes(fmt="JPEG", size=(400, 300))[:600])
    with pytest.raises(MediaError) as info:
        decode_image(path, max_pixels=10**7)
    assert info.value.code == "image_corrupt"


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(media.png_bomb())
    with pytest.raises(MediaError) as info:
        decode_image(path, max_pixels=40_000_000)
    assert info.value.code == "image_too_large"


def test_every_shared_video_decodes_and_yields_sampled_frames(video_paths):
    assert len(video_paths) == 9
    for path in video_paths:
        info = probe_video(path)
        frames = list(sample_frames(path, info, sample_fps=1.0, max_frames=1000))
        assert len(frames) == info.expected_samples(1.0, 1000), path.name
        assert [f.index for f in frames] == list(range(len(frames)))
        assert all(abs(f.timestamp_s - f.index) < 0.05 for f in frames), path.name
        assert frames[0].rgb.shape == (info.height, info.width, 3)


def test_portrait_video_is_upright(video_paths):
    portrait = next(p for p in video_paths if p.name == "brtujopkby.mp4")
    frame = next(sample_frames(portrait, probe_video(portrait), 1.0, 1))
    height, width = frame.rgb.shape[:2]
    assert height > width


def test_max_frames_caps_sampling(video_paths):
    info = probe_video(video_paths[0])
    assert len(list(sample_frames(video_paths[0], info, 5.0, 7))) == 7


def test_corrupt_video_fails_cleanly(tmp_path, video_paths):
    path = tmp_path / "cut.mp4"
    path.write_bytes(video_paths[0].read_bytes()[:2000])
    with pytest.raises(MediaError):
        info = probe_video(path)
        list(sample_frames(path, info, 1.0, 10))


def test_rotation_metadata_is_honoured(tmp_path, face_crops):
    path = media.write_video(tmp_path / "phone.mp4", frames=10, size=(320, 240),
                             face_from=face_crops["real"][0], rotate_90=True)
    info = probe_video(path)
    assert (info.width, info.height) == (240, 320)
    frame = next(sample_frames(path, info, 1.0, 1))
    assert frame.rgb.shape == (320, 240, 3)


@pytest.mark.parametrize("name", ["western_fake.mp4", "yhffcuhhjy.mp4"])
def test_ranges_of_samples_decode_to_the_same_frames_as_one_pass(video_paths, name):
    import numpy as np

    path = next(p for p in video_paths if p.name == name)
    info = probe_video(path)
    whole = list(sample_frames(path, info, 2.0, 1000))
    pieces = [f for first, end in ((0, 7), (7, 15), (15, 1000))
              for f in sample_frames(path, info, 2.0, 1000, first=first, end=end)]
    assert [(f.index, f.frame_number) for f in pieces] == [(f.index, f.frame_number) for f in whole]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(pieces, whole, strict=True))


def test_sampling_never_exceeds_the_frame_rate(video_paths):
    info = probe_video(video_paths[0])
    frames = list(sample_frames(video_paths[0], info, 1000.0, 40))
    assert [f.frame_number for f in frames] == list(range(40))
