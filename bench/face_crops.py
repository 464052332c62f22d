"""Does the classifier still see what it was trained on once a detector frames the face?

    python -m bench.face_crops --checkpoint weights/rrr-b0-v3.pt --n 1000

Scores N test-split DFDC crops (the group split of training/data.py, fixed seed) as whole images
(what the model was trained and evaluated on) and as detected-and-cropped images (what the
service does: largest face, square crop padded in proportion to the face) for the Haar cascade
the product used before and for the current detector, at several paddings. A crop with no face
found counts as wrong. Prints accuracy at the checkpoint's threshold and the mean |p - p_full|.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from bench.data import DFDC
from bench.faces import haar, load_rgb, product
from detection.detector import Detector
from detection.faces import crop_face
from training.data import read_labels, split_samples

DATA = DFDC


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="weights/rrr-b0-v3.pt")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paddings", default="0,0.1,0.15,0.25")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    samples = split_samples(read_labels(DATA / "labels.csv"))["test"]
    samples = random.Random(args.seed).sample(samples, min(args.n, len(samples)))
    model = Detector.from_checkpoint(Path(args.checkpoint), args.threads)
    threshold = model.config.threshold
    is_fake = np.array([s.label == 0 for s in samples])  # class 0 = FAKE
    paddings = [float(p) for p in args.paddings.split(",")]
    detectors = {"haar (before)": haar(), "rrr (now)": product()}

    images = [load_rgb(s.path) for s in samples]
    p_full = model.score(images)
    print(f"{len(samples)} test-split crops, threshold {threshold:.3f}")
    print(f"{'framing':<28} {'found':>6} {'accuracy':>9} {'mean |p - p_full|':>18}")
    acc = float(np.mean((p_full >= threshold) == is_fake))
    print(f"{'whole image':<28} {len(samples):>6} {acc:>9.3f} {0.0:>18.3f}")
    for name, detect in detectors.items():
        boxes = []
        for rgb in images:
            found = detect(rgb)
            best = max(found, key=lambda b: b[2] * b[3]) if found else None
            boxes.append(None if best is None else tuple(int(round(v)) for v in best[:4]))
        have = [i for i, b in enumerate(boxes) if b is not None]
        for padding in paddings:
            crops = [crop_face(images[i], boxes[i], padding) for i in have]
            p = model.score(crops) if crops else np.zeros(0)
            right = np.sum((p >= threshold) == is_fake[have])
            diff = float(np.mean(np.abs(p - p_full[have]))) if have else float("nan")
            label = f"{name} pad {padding:g}"
            print(f"{label:<28} {len(have):>6} {right / len(samples):>9.3f} {diff:>18.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
