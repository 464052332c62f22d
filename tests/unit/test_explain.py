from __future__ import annotations

import numpy as np

from shared.explain import overlay
from shared.media import decode_image
from worker.pipeline import get_analyzer


def test_gradcam_map_matches_crop(face_crops):
    detector = get_analyzer().detector
    crop = decode_image(face_crops["fake"][1], 10**7)
    cam = detector.gradcam(crop)
    assert cam.shape == crop.shape[:2] and cam.dtype == np.float32
    assert cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
    assert cam.std() > 0  # a real map, not a constant


def test_overlay_changes_only_face_regions():
    image = np.full((100, 120, 3), 200, np.uint8)
    cam = np.ones((40, 50), np.float32)
    out = overlay(image, [((10, 20, 60, 60), cam)])
    assert (out[20:60, 10:60] != 200).any()
    assert (out[:20] == 200).all() and (out[:, 60:] == 200).all()
