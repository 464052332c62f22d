"""How well the heatmap points at what was edited: the 4x4 class-activation map against the same
map read at an 8 px step (detection/explain.py), on DFDC fakes whose source crop is in the set.

    python -m bench.explain               # 300 fakes (fixed seed)
    python -m bench.explain --fakes 120 --seed 1 --candidates   # also the maps not chosen

A DFDC fake is its source video with the face swapped, and both crops come from the same frame,
so |fake - source| shows where the edit is. For each fake the model calls FAKE (not UNCERTAIN)
whose crop differs from its source by 3 to 40 grey levels on average (below: no visible edit;
above: not the same frame), over the face region the service explains:
- pointing game: the map's peak falls in the most edited fifth of the region's pixels (chance:
  0.20);
- energy inside: share of the map's mass in that fifth (a flat map: 0.20);
- correlation: Pearson's r between the map and the smoothed edit map;
- ms per face: time to make the map (the fine map is 16 forward passes).
``--candidates`` adds the other ways to a finer map that were tried (PyTorch needed): Grad-CAM
with a backward pass at earlier blocks (features[6]: 4x4, [5] and [4]: 8x8), the CAM at a 256 px
input (8x8; the model was trained at 128) and occlusion (a 32 px grey patch moved by 8 px, 169
forward passes).
Saved to var/bench/explain.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.data import BENCH_DIR, DFDC

TOP_SHARE = 0.2  # the "edited" part of a region: its most changed fifth of pixels


def pairs(n: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """(fake, its source real) crop paths, one per source video, shuffled with ``seed``."""
    with open(DFDC / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    real = {row["videoname"]: row["file"] for row in rows if row["label"] == "real"}
    seen, out = set(), []
    fakes = [row for row in rows if row["label"] == "fake" and row["original"] in real]
    random.Random(seed).shuffle(fakes)
    for row in fakes:
        if row["original"] in seen:
            continue
        seen.add(row["original"])
        out.append((DFDC / row["file"], DFDC / real[row["original"]]))
        if len(out) >= n:
            break
    return out


def scores(heat: np.ndarray, edit: np.ndarray) -> dict[str, float]:
    mask = edit >= np.quantile(edit, 1.0 - TOP_SHARE)
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    total = float(heat.sum())
    return {
        "hit": float(mask[peak]),
        "energy": float(heat[mask].sum() / total) if total > 0 else TOP_SHARE,
        "r": float(np.corrcoef(heat.ravel(), edit.ravel())[0, 1]) if heat.std() > 0 else 0.0,
    }


def candidates(analyzer) -> dict[str, Any]:
    """The finer maps tried and not chosen: name -> f(image, region, crop) -> map over crop."""
    import torch

    from detection.explain import crop_map
    from detection.model import ModelConfig, fake_probability, preprocess
    from detection.network import ScoreAndCam, load_checkpoint
    from shared.config import settings

    torch.set_num_threads(1)
    model, config, _ = load_checkpoint(settings.weights_path)
    real = config.real_index
    fakes = [i for i in range(len(config.labels)) if i != real]

    def gradcam_at(block: int):
        def run(_image, _region, crop):
            captured = {}
            layer = model.model.features[block]
            hook = layer.register_forward_hook(lambda _m, _i, out: captured.setdefault("a", out))
            try:
                with torch.enable_grad():
                    logits = model(torch.from_numpy(preprocess([crop], config)))
                    target = logits[0, fakes].mean() - logits[0, real]
                    grads = torch.autograd.grad(target, captured["a"])[0]
            finally:
                hook.remove()
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * captured["a"]).sum(dim=1))[0].detach().numpy()
            return crop_map(cam, *crop.shape[:2])

        return run

    def cam_at_256(_image, _region, crop):
        bigger = ModelConfig.from_dict({**config.to_dict(), "input_size": 256})
        with torch.inference_mode():
            _, cam = ScoreAndCam(model)(torch.from_numpy(preprocess([crop], bigger)))
        return crop_map(cam[0].numpy(), *crop.shape[:2])

    def occlusion(_image, _region, crop, patch: int = 32, stride: int = 8):
        detector = analyzer.detector
        x = preprocess([crop], config)[0]
        size = config.input_size
        spots = [
            (y, x0)
            for y in range(0, size - patch + 1, stride)
            for x0 in range(0, size - patch + 1, stride)
        ]
        views = []
        for y, x0 in spots:
            view = x.copy()
            view[:, y : y + patch, x0 : x0 + patch] = 0.0  # the mean colour, once normalised
            views.append(view)
        from detection.model import class_probabilities

        logits = np.concatenate(
            [detector.engine.run(np.stack(views[i : i + 32]))[0] for i in range(0, len(views), 32)]
        )
        drop = fake_probability(detector.class_probabilities([crop]), config)[0] - fake_probability(
            class_probabilities(logits, config), config
        )
        heat = np.zeros((size, size), np.float32)
        count = np.zeros((size, size), np.float32)
        for (y, x0), d in zip(spots, drop, strict=True):
            heat[y : y + patch, x0 : x0 + patch] += max(float(d), 0.0)
            count[y : y + patch, x0 : x0 + patch] += 1
        return crop_map(heat / np.maximum(count, 1), *crop.shape[:2])

    return {
        "gradcam_block6_4x4": gradcam_at(6),
        "gradcam_block5_8x8": gradcam_at(5),
        "gradcam_block4_8x8": gradcam_at(4),
        "cam_256px_8x8": cam_at_256,
        "occlusion_32px_step8": occlusion,
    }


def measure(n: int, seed: int = 0, with_candidates: bool = False) -> dict[str, Any]:
    from detection.analyzer import get_analyzer
    from detection.faces import crop_region
    from detection.media import decode_image

    analyzer = get_analyzer()
    detector = analyzer.detector
    maps = {
        "coarse_4x4": lambda _image, _region, crop: detector.gradcam(crop),
        "fine_16x16": lambda image, region, _crop: detector.fine_gradcam(image, region),
    }
    if with_candidates:
        maps.update(candidates(analyzer))
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in maps}
    skipped = {"no_face": 0, "not_called_fake": 0, "no_visible_edit": 0, "misaligned": 0}
    for fake_path, real_path in pairs(n, seed):
        fake = decode_image(fake_path, 10**8)
        real = decode_image(real_path, 10**8)
        faces = analyzer.faces.detect(fake)
        if not faces or real.shape != fake.shape:
            skipped["no_face"] += 1
            continue
        diff = np.abs(fake.astype(np.float32) - real.astype(np.float32)).mean(axis=2)
        if diff.mean() < 3.0:
            skipped["no_visible_edit"] += 1
            continue
        if diff.mean() > 40.0:
            skipped["misaligned"] += 1
            continue
        box = max(faces, key=lambda f: f.box[2] * f.box[3]).box
        x0, y0, x1, y1 = crop_region(fake.shape, box, analyzer.face_padding)
        crop = np.ascontiguousarray(fake[y0:y1, x0:x1])
        if analyzer.verdict(float(detector.score([crop])[0])) != "FAKE":
            skipped["not_called_fake"] += 1
            continue
        edit = cv2.GaussianBlur(diff, (0, 0), 4.0)[y0:y1, x0:x1]
        for name, make in maps.items():
            t0 = time.perf_counter()
            heat = make(fake, (x0, y0, x1, y1), crop)
            ms = (time.perf_counter() - t0) * 1000
            rows[name].append({**scores(heat, edit), "ms": ms})
    out: dict[str, Any] = {"fakes_tried": n, "seed": seed}
    out["fakes_measured"] = len(rows["fine_16x16"])
    out["skipped"] = skipped
    for name, found in rows.items():
        out[name] = {
            "pointing_game": round(statistics.fmean(r["hit"] for r in found), 3),
            "energy_inside": round(statistics.fmean(r["energy"] for r in found), 3),
            "correlation": round(statistics.fmean(r["r"] for r in found), 3),
            "ms_per_face_median": round(statistics.median(r["ms"] for r in found), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fakes", type=int, default=300, help="fake crops tried [300]")
    parser.add_argument("--seed", type=int, default=0, help="which fakes [0]")
    parser.add_argument("--candidates", action="store_true", help="also the maps not chosen")
    args = parser.parse_args(argv)
    result = measure(args.fakes, args.seed, args.candidates)
    names = [
        name for name in result if isinstance(result[name], dict) and "correlation" in result[name]
    ]
    print(f"{'map':<22} {'pointing':>9} {'energy in':>10} {'corr r':>7} {'ms/face':>8}")
    for name in names:
        row = result[name]
        print(
            f"{name:<22} {row['pointing_game']:>9.3f} {row['energy_inside']:>10.3f} "
            f"{row['correlation']:>7.3f} {row['ms_per_face_median']:>8.1f}"
        )
    print(
        f"{result['fakes_measured']} of {result['fakes_tried']} fakes; skipped {result['skipped']}"
    )
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "-candidates" if args.candidates else ""
    (BENCH_DIR / f"explain{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
