from __future__ import annotations

import cv2
import numpy as np
import pytest

from detection.faces import (
    PHOTO_TILE,
    FaceDetector,
    crop_face,
    crop_region,
    detection_size,
    photo_scale,
)
from detection.media import decode_image, probe_video, sample_frames


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def crop(face_crops) -> np.ndarray:
    return decode_image(face_crops["real"][0], 10**7)


def _inside(box, shape) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= shape[1] and y + h <= shape[0]


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_finds_one_plausible_face_in_real_video_frames(detector, video_paths):
    for path in video_paths:
        for frame in sample_frames(path, probe_video(path), 0.5, 5):
            faces = detector.detect(frame.rgb)
            where = f"{path.name} frame {frame.frame_number}"
            assert faces, f"{where}: no face"
            assert len(faces) <= 2, f"{where}: {len(faces)} faces"
            short = min(frame.rgb.shape[:2])
            for face in faces:
                assert _inside(face.box, frame.rgb.shape), f"{where}: {face.box}"
                side = max(face.box[2:])
                # talking heads: a face is several percent of the frame, never most of it
                assert 0.05 * short < side < 0.7 * short, f"{where}: {face.box}"
                assert 0.5 <= face.score <= 1.0


def test_finds_the_face_filling_a_face_crop(detector, face_crops):
    paths = face_crops["real"] + face_crops["fake"]
    found = 0
    for path in paths:
        rgb = decode_image(path, 10**7)
        for face in detector.detect(rgb):
            x, y, w, h = face.box
            centred = x < 112 < x + w and y < 112 < y + h
            found += centred and max(w, h) > 0.5 * rgb.shape[0] and _inside(face.box, rgb.shape)
    assert found >= len(paths) - 1, f"{found}/{len(paths)}"


def test_blank_and_noise_images_have_no_face(detector):
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_tiny_and_degenerate_images_are_handled(detector):
    for shape in [(1, 1, 3), (8, 8, 3), (3, 5000, 3), (5000, 2, 3), (0, 10, 3)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_small_face_in_a_huge_image_is_mapped_back_to_its_pixels(detector, crop):
    canvas = np.full((4000, 6000, 3), 90, np.uint8)
    x0, y0 = 4100, 2300
    canvas[y0 : y0 + 600, x0 : x0 + 600] = cv2.resize(crop, (600, 600))
    faces = detector.detect(canvas)
    assert len(faces) == 1, faces
    x, y, w, h = faces[0].box
    # mapped back to the photo's pixels: centred on the pasted face, about its size
    assert x0 < x + w / 2 < x0 + 600 and y0 < y + h / 2 < y0 + 600, faces[0].box
    assert 0.5 * 600 < max(w, h) < 1.5 * 600, faces[0].box


def test_face_the_coarse_pass_misses_is_found_by_the_second(detector, crop):
    # 144 px in a 1080p frame is 24 px at the coarse 320 px: too small for YuNet there
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    x0, y0, side = 900, 500, 144
    frame[y0 : y0 + side, x0 : x0 + side] = cv2.resize(
        crop, (side, side), interpolation=cv2.INTER_AREA
    )
    assert FaceDetector(max_side=320).detect(frame) == []
    faces = detector.detect(frame)
    assert len(faces) == 1, faces
    x, y, w, h = faces[0].box
    assert x0 < x + w / 2 < x0 + side and y0 < y + h / 2 < y0 + side, faces[0].box


def _paste(canvas: np.ndarray, face: np.ndarray, x0: int, y0: int, side: int) -> tuple:
    canvas[y0 : y0 + side, x0 : x0 + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_AREA
    )
    return (x0, y0, side, side)


def _only_the_large_face_as_a_frame_every_face_as_a_photo(
    detector: FaceDetector, photo: np.ndarray, placed: list[tuple]
) -> None:
    """``placed[0]`` is the large face: searched as a video frame, ``photo`` shows only it;
    searched as a still photo, every placed face, each once, inside the picture."""
    as_frame = detector.detect(photo)
    assert [_iou(f.box, placed[0]) > 0.3 for f in as_frame] == [True], as_frame
    faces = detector.detect(photo, photo=True)
    assert len(faces) == len(placed), faces
    for where in placed:
        assert sum(_iou(f.box, where) > 0.3 for f in faces) == 1, (where, faces)
    assert all(_inside(f.box, photo.shape) for f in faces)


def test_every_face_of_a_large_group_photo_is_found_once(detector, face_crops):
    """A 12 MP photo: one face of 900 px and four of 150 px, one of them across the right edge
    of the first tile of the photo search. As a video frame only the large face is found (the
    small ones are 18 px at the second pass's scale); as a photo every face, each once."""
    crops = [decode_image(p, 10**7) for p in face_crops["real"][:5]]
    photo = np.full((3000, 4000, 3), 90, np.uint8)
    tile_edge = int(PHOTO_TILE / photo_scale(3000, 4000))
    placed = [
        _paste(photo, crops[0], 1200, 1500, 900),
        _paste(photo, crops[1], 300, 400, 150),
        _paste(photo, crops[2], tile_edge - 75, 600, 150),
        _paste(photo, crops[3], 800, 2500, 150),
        _paste(photo, crops[4], 3500, 2700, 150),
    ]
    _only_the_large_face_as_a_frame_every_face_as_a_photo(detector, photo, placed)


def test_small_faces_beside_a_large_one_in_a_web_sized_photo(detector, face_crops):
    """A 1600 x 1200 photo, too small for tiles of the old search: a face of 480 px and two of
    96 px. The coarse pass (320 px) finds the large face, and the small ones are 19 px there;
    as a video frame that is all, as a photo the finer search finds every face, each once."""
    crops = [decode_image(p, 10**7) for p in face_crops["real"][:3]]
    photo = np.full((1200, 1600, 3), 90, np.uint8)
    placed = [
        _paste(photo, crops[0], 1100, 20, 480),
        _paste(photo, crops[1], 150, 300, 96),
        _paste(photo, crops[2], 600, 900, 96),
    ]
    _only_the_large_face_as_a_frame_every_face_as_a_photo(detector, photo, placed)


@pytest.mark.parametrize("side", [333, 640])
def test_photos_up_to_twice_the_coarse_pass_are_searched_as_before(
    detector, crop, side, monkeypatch
):
    """A face crop (odd sizes included) is searched at half size, as a frame is: no tiles."""

    def no_tiles(*_):
        raise AssertionError(f"a {side} px photo was searched in tiles")

    monkeypatch.setattr(detector, "_detect_tiled", no_tiles)
    image = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    assert len(detector.detect(image, photo=True)) == 1


def test_photo_search_is_never_coarser_than_the_second_pass():
    assert photo_scale(1200, 1600) == 0.5
    assert photo_scale(600, 800) == pytest.approx(480 / 800)  # finer than half size
    assert photo_scale(3000, 4000) == pytest.approx((1_000_000 / 12_000_000) ** 0.5)
    assert photo_scale(200, 300) == 1.0


def test_a_face_larger_than_a_tile_is_one_box_in_a_photo(detector, crop):
    photo = np.full((4000, 6000, 3), 90, np.uint8)
    where = _paste(photo, crop, 1500, 1000, 2000)  # 408 px in the search: across two tiles
    faces = detector.detect(photo, photo=True)
    assert len(faces) == 1 and _iou(faces[0].box, where) > 0.3, faces


def test_no_face_in_a_large_noisy_photo(detector):
    noise = np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    assert detector.detect(noise, photo=True) == []
    assert detector.detect(np.full((3000, 4000, 3), 128, np.uint8), photo=True) == []


def test_boxes_match_across_scales(detector, video_paths):
    path = video_paths[0]
    frame = next(iter(sample_frames(path, probe_video(path), 1.0, 1))).rgb
    big = cv2.resize(frame, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    (small_face,) = detector.detect(frame)[:1]
    scaled = tuple(3 * v for v in small_face.box)
    assert max(_iou(scaled, f.box) for f in detector.detect(big)) > 0.8


def test_face_cut_by_the_left_and_top_edges_stays_inside(detector, crop):
    cut = np.ascontiguousarray(crop[80:, 110:])  # YuNet reports x, y < 0 here
    faces = detector.detect(cut)
    assert faces, "a face cut by the frame edge should still be found"
    for face in faces:
        assert _inside(face.box, cut.shape), face.box


def test_detection_size_downscales_only_large_images():
    assert detection_size(1080, 1920) == (270, 480)
    assert detection_size(1920, 1080) == (480, 270)
    assert detection_size(224, 224) == (224, 224)
    assert detection_size(2, 100000) == (1, 480)
    # the coarse pass: half size, at most 320 px
    assert detection_size(224, 224, 320, 0.5) == (112, 112)
    assert detection_size(1080, 1920, 320, 0.5) == (180, 320)


def test_crop_is_padded_in_proportion_and_clipped():
    frame = np.zeros((400, 600, 3), np.uint8)
    crop = crop_face(frame, (250, 150, 100, 100), padding=0.25)
    assert crop.shape == (150, 150, 3)
    edge = crop_face(frame, (0, 0, 100, 100), padding=0.25)
    assert edge.shape == (125, 125, 3)
    # a tall box is framed by a square on its longer side
    assert crop_region(frame.shape, (250, 100, 80, 120), padding=0.0) == (230, 100, 350, 220)
