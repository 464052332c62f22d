from __future__ import annotations

import numpy as np
import pytest

from detection.media import SAMPLING_MODES, decode_image, probe_video, sample_frames
from shared.errors import MediaError
from shared.models import Sampling
from tests.support import media


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


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_like_the_jpeg_they_were_made_from(face_crops, fmt):
    original = decode_image(face_crops["real"][0], max_pixels=10**7)
    reencoded = decode_image(media.reencoded(face_crops["real"][0], fmt), max_pixels=10**7)
    assert reencoded.shape == original.shape
    assert np.abs(reencoded.astype(int) - original).mean() < 6  # lossy, but the same picture


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "JPEG"])
def test_a_photo_stored_sideways_decodes_upright(face_crops, fmt):
    upright = decode_image(media.reencoded(face_crops["real"][0], fmt), max_pixels=10**7)
    # stored turned a quarter left, with the orientation that turns it back to display
    sideways = media.reencoded(face_crops["real"][0], fmt, turned_left_with_orientation=True)
    shown = decode_image(sideways, max_pixels=10**7)
    assert shown.shape == upright.shape
    assert np.abs(shown.astype(int) - upright).mean() < 6


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_truncated_phone_photo_fails_cleanly(face_crops, fmt):
    with pytest.raises(MediaError) as info:
        decode_image(media.reencoded(face_crops["real"][0], fmt)[:600], max_pixels=10**7)
    assert info.value.code == "image_corrupt"


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
    path = media.write_video(
        tmp_path / "phone.mp4",
        frames=10,
        size=(320, 240),
        face_from=face_crops["real"][0],
        rotate_90=True,
    )
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
    pieces = [
        f
        for first, end in ((0, 7), (7, 15), (15, 1000))
        for f in sample_frames(path, info, 2.0, 1000, first=first, end=end)
    ]
    assert [(f.index, f.frame_number) for f in pieces] == [(f.index, f.frame_number) for f in whole]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(pieces, whole, strict=True))


def test_sampling_never_exceeds_the_frame_rate(video_paths):
    info = probe_video(video_paths[0])
    frames = list(sample_frames(video_paths[0], info, 1000.0, 40))
    assert [f.frame_number for f in frames] == list(range(40))


# ------------------------------------------------------------------ PyAV sampler, keyframes


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """8 s of the shared clips at 320x180, 30 fps, a keyframe every 20 frames and B-frames: a
    seek lands on keyframes other than the first, as in long videos."""
    from bench.videos import build_video

    path = tmp_path_factory.mktemp("gop") / "gop.mp4"
    return build_video(path, seconds=8, width=320, height=180, gop=20)


def _keyframe_numbers(path) -> set[int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, start = float(stream.average_rate), stream.start_time or 0
        return {
            round(float((p.pts - start) * stream.time_base) * rate)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        }


@pytest.mark.parametrize("sampling", ["exact", "keyframes"])
def test_one_sample_segments_equal_one_pass(gop_video, sampling):
    import numpy as np

    info = probe_video(gop_video)
    assert info.frame_count == 240 and info.fps == 30
    whole = list(sample_frames(gop_video, info, 3.0, 1000, sampling=sampling))
    assert len(whole) >= 8
    pieces = [
        f
        for k in range(info.expected_samples(3.0, 1000))
        for f in sample_frames(gop_video, info, 3.0, 1000, k, k + 1, sampling=sampling)
    ]
    assert [(f.index, f.frame_number, f.timestamp_s) for f in pieces] == [
        (f.index, f.frame_number, f.timestamp_s) for f in whole
    ]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(pieces, whole, strict=True))


@pytest.mark.parametrize("extension", ["mkv", "ts"])
def test_segments_equal_one_pass_in_other_containers(gop_video, tmp_path, extension):
    """Matroska indexes keyframes by presentation time, MPEG-TS has no index at all."""
    import av

    path = tmp_path / f"gop.{extension}"
    with av.open(str(gop_video)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    info = probe_video(path)
    whole = [(f.index, f.frame_number) for f in sample_frames(path, info, 3.0, 1000)]
    assert whole == [(k, 10 * k) for k in range(24)]
    pieces = [
        (f.index, f.frame_number)
        for k in range(24)
        for f in sample_frames(path, info, 3.0, 1000, k, k + 1)
    ]
    assert pieces == whole


def test_exact_samples_are_the_frames_of_a_full_decode(gop_video):
    """Keyframe intervals without a sample are skipped, never the frames a sample needs."""
    import av
    import numpy as np

    info = probe_video(gop_video)
    with av.open(str(gop_video)) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    samples = list(sample_frames(gop_video, info, 2.0, 1000, first=5, end=12))
    assert [f.frame_number for f in samples] == [15 * k for k in range(5, 12)]
    assert all(np.array_equal(f.rgb, every[f.frame_number]) for f in samples)
    for rate in (0.3, 0.7, 1.0, 7.0):
        samples = list(sample_frames(gop_video, info, rate, 1000))
        assert [f.frame_number for f in samples] == [
            info.frame_for_sample(k, rate) for k in range(info.expected_samples(rate, 1000))
        ]
        assert all(np.array_equal(f.rgb, every[f.frame_number]) for f in samples), rate


def test_keyframe_sampling_returns_keyframes_only_in_order(gop_video):
    info = probe_video(gop_video)
    keyframes = _keyframe_numbers(gop_video)
    assert sorted(keyframes) == list(range(0, 240, 20))
    # one sample per second, keyframes every 2/3 s: each sample takes the keyframe before it
    frames = list(sample_frames(gop_video, info, 1.0, 1000, sampling="keyframes"))
    assert [f.frame_number for f in frames] == [0, 20, 60, 80, 120, 140, 180, 200]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert all(f.frame_number in keyframes for f in frames)
    # faster than the keyframes: a keyframe is used once, the samples that would repeat it are
    # skipped; indices and timestamps only ever grow
    fast = list(sample_frames(gop_video, info, 6.0, 1000, sampling="keyframes"))
    assert [f.frame_number for f in fast] == sorted(keyframes)
    assert all(
        a.timestamp_s < b.timestamp_s and a.index < b.index
        for a, b in zip(fast, fast[1:], strict=False)
    )


def test_keyframe_sampling_on_a_shared_clip(video_paths):
    path = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    frames = list(sample_frames(path, probe_video(path), 1.0, 1000, sampling="keyframes"))
    assert [f.frame_number for f in frames] == sorted(_keyframe_numbers(path))


def test_unknown_sampling_is_refused(gop_video):
    with pytest.raises(ValueError):
        next(sample_frames(gop_video, probe_video(gop_video), 1.0, 10, sampling="fast"))


def test_rotated_frames_match_a_rotation_aware_decoder(tmp_path, face_crops):
    """OpenCV applies the display matrix itself: the same pixels, turned the same way."""
    import cv2
    import numpy as np

    path = media.write_video(
        tmp_path / "phone.mp4",
        frames=10,
        size=(320, 240),
        face_from=face_crops["real"][0],
        rotate_90=True,
    )
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, bgr = capture.read()
    capture.release()
    assert ok and bgr.shape == (320, 240, 3)
    frame = next(sample_frames(path, probe_video(path), 1.0, 1))
    diff = np.abs(frame.rgb.astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int))
    assert diff.mean() < 2.0


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda share, tmp: share[:2000], "video_corrupt"),
        (lambda share, tmp: share[:64] + b"\x00\x01" * 5000, "video_corrupt"),
        (
            lambda share, tmp: media.write_video(tmp / "v.mp4", frames=0).read_bytes(),
            "video_corrupt",
        ),
    ],
    ids=["truncated", "header-then-garbage", "no-frames"],
)
def test_bad_videos_raise_their_codes(tmp_path, video_paths, make, code):
    path = tmp_path / "bad.mp4"
    path.write_bytes(make(video_paths[0].read_bytes(), tmp_path))
    with pytest.raises(MediaError) as info:
        list(sample_frames(path, probe_video(path), 1.0, 10))
    assert info.value.code == code


def test_zero_rate_avi_is_refused_or_sampled(tmp_path):
    path = tmp_path / "zero.avi"
    path.write_bytes(media.avi_bytes(zero_rate=True, tmp=tmp_path))
    try:
        info = probe_video(path)
    except MediaError as exc:
        assert exc.code == "video_bad_fps"
    else:
        assert len(list(sample_frames(path, info, 1.0, 10))) == 1


def test_sampling_modes_are_the_ones_the_api_accepts():
    assert tuple(Sampling) == SAMPLING_MODES
