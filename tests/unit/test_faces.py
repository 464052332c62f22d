from __future__ import annotations

import numpy as np

from shared.faces import FaceDetector, crop_face
from shared.media import decode_image, probe_video, sample_frames


def test_finds_faces_in_real_video_frames(video_paths):
    detector = FaceDetector()
    for path in video_paths:
        frames = list(sample_frames(path, probe_video(path), 0.5, 5))
        with_face = sum(bool(detector.detect(frame.rgb)) for frame in frames)
        assert with_face >= len(frames) - 1, f"{path.name}: faces in {with_face}/{len(frames)}"


def test_finds_the_face_in_most_face_crops(face_crops):
    detector = FaceDetector()
    paths = face_crops["real"] + face_crops["fake"]
    found = sum(bool(detector.detect(decode_image(p, 10**7))) for p in paths)
    assert found >= 0.7 * len(paths)


def test_blank_frame_has_no_face():
    assert FaceDetector().detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_crop_is_padded_in_proportion_and_clipped():
    frame = np.zeros((400, 600, 3), np.uint8)
    crop = crop_face(frame, (250, 150, 100, 100), padding=0.25)
    assert crop.shape == (150, 150, 3)
    edge = crop_face(frame, (0, 0, 100, 100), padding=0.25)
    assert edge.shape == (125, 125, 3)
