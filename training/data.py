"""Face-crop data for training: labels CSV, group-disjoint split, pre-decoding and augmentation."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detection.model import KIND_LABELS, LABELS, native_crop, resize_face

SPLIT_SALT = "rrr-split-v1"  # changing it changes every split; it is recorded in the weights
SPLIT_FRACTIONS = (80, 10, 10)  # train / val / test, in percent of groups
SPLITS = ("train", "val", "test")
LABEL_TO_INDEX = {name.lower(): i for i, name in enumerate(LABELS)}  # "fake" -> 0, "real" -> 1
REAL_INDEX = LABELS.index("REAL")  # 1 in every class list: the two-class and the signal models


@dataclass(frozen=True)
class Sample:
    """One labelled face crop."""

    path: Path
    label: int  # class index in the model's labels: 1 = REAL, any other = a kind of fake
    group: str
    source: str = ""  # which data set it came from, when the table says
    kind: str = ""  # real / face_swap / synthetic, when the table says
    split: str = ""  # train / val / test, when the table fixes it

    @property
    def is_fake(self) -> bool:
        return self.label != REAL_INDEX


def table_has_kinds(labels_csv: str | Path) -> bool:
    """Whether a labels CSV names the kind of each fake (a staged multi-source table)."""
    with open(labels_csv, newline="") as fh:
        return "kind" in (csv.DictReader(fh).fieldnames or [])


def read_labels(
    labels_csv: str | Path,
    data_dir: str | Path | None = None,
    labels: tuple[str, ...] = LABELS,
) -> list[Sample]:
    """Read a labels CSV (columns ``file,label`` and optionally ``group``, ``source``, ``kind``,
    ``split``) into samples whose class index follows ``labels``.

    ``file`` is relative to ``data_dir`` (default: the CSV's folder). Without a ``group`` column
    each file is its own group. With more than two ``labels`` the ``kind`` column decides the
    class (see ``detection.model.KIND_LABELS``).
    """
    labels_csv = Path(labels_csv)
    root = Path(data_dir) if data_dir is not None else labels_csv.parent
    if not labels_csv.is_file():
        raise FileNotFoundError(f"labels CSV not found: {labels_csv}")
    samples: list[Sample] = []
    with open(labels_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{labels_csv} lacks column(s): {', '.join(sorted(missing))}")
        for row in reader:
            label = row["label"].strip().lower()
            if label not in LABEL_TO_INDEX:
                raise ValueError(f"{labels_csv}: unknown label {row['label']!r} for {row['file']}")
            group = (row.get("group") or "").strip() or row["file"]
            kind = (row.get("kind") or "").strip()
            if len(labels) > 2:
                if kind not in KIND_LABELS:
                    raise ValueError(f"{labels_csv}: unknown kind {kind!r} for {row['file']}")
                index = labels.index(KIND_LABELS[kind])
            else:
                index = LABEL_TO_INDEX[label]
            samples.append(
                Sample(
                    root / row["file"],
                    index,
                    group,
                    (row.get("source") or "").strip(),
                    kind,
                    (row.get("split") or "").strip(),
                )
            )
    if not samples:
        raise ValueError(f"{labels_csv} holds no rows")
    return samples


def split_of(group: str, salt: str = SPLIT_SALT) -> str:
    """Stable split for a group: a hash bucket, so it never depends on row order or machine."""
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{group}".encode()).digest()[:8], "big") % 100
    train, val, _ = SPLIT_FRACTIONS
    if bucket < train:
        return "train"
    return "val" if bucket < train + val else "test"


def split_samples(samples: list[Sample], salt: str = SPLIT_SALT) -> dict[str, list[Sample]]:
    """Partition samples into train/val/test by group (a fake and its source real stay together)."""
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for sample in samples:
        out[sample.split or split_of(sample.group, salt)].append(sample)
    return out


def split_summary(splits: dict[str, list[Sample]], salt: str = SPLIT_SALT) -> dict:
    """JSON-able description of a split: rule, counts per class and the groups of each part."""
    summary: dict = {
        "rule": f"sha256('{salt}:' + group) first 8 bytes mod 100: <{SPLIT_FRACTIONS[0]} train, "
        f"<{SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]} val, else test",
        "salt": salt,
        "counts": {},
        "groups": {},
    }
    for name, items in splits.items():
        n_fake = sum(1 for s in items if s.is_fake)
        groups = sorted({s.group for s in items})
        summary["counts"][name] = {
            "images": len(items),
            "fake": n_fake,
            "real": len(items) - n_fake,
            "groups": len(groups),
        }
        summary["groups"][name] = groups
    return summary


def write_split(splits: dict[str, list[Sample]], path: str | Path, salt: str = SPLIT_SALT) -> None:
    """Write the split summary as JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(split_summary(splits, salt), indent=1))


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as an RGB uint8 array."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def predecode(samples: list[Sample], size: int, desc: str = "decode") -> np.ndarray:
    """Decode and resize every crop once into a (N, S, S, 3) uint8 array.

    Decoding once saves the JPEG decode on every epoch (CPU is the bottleneck).
    """
    images = np.empty((len(samples), size, size, 3), dtype=np.uint8)
    for i, sample in enumerate(tqdm(samples, desc=desc, unit="img", mininterval=5)):
        # resized as serving resizes, so training sees what serving sees
        images[i] = resize_face(load_rgb(sample.path), size)
    return images


def predecode_native(samples: list[Sample], desc: str = "decode") -> list[np.ndarray]:
    """Decode every crop once at the resolution a patch view keeps (``native_crop``)."""
    return [
        native_crop(load_rgb(s.path)) for s in tqdm(samples, desc=desc, unit="img", mininterval=5)
    ]


def left_out(sample: Sample, specs: list[str] | tuple[str, ...]) -> bool:
    """Whether a leave-out list drops this sample: "SOURCE" drops the whole source,
    "SOURCE:fake" only its fakes (a generator never seen, beside real photos that were)."""
    for spec in specs:
        source, _, part = spec.partition(":")
        if sample.source == source and (not part or (part == "fake") == sample.is_fake):
            return True
    return False


SMALL_FACE_PX = (24, 64)  # the sides a shrunk training face is drawn from, inclusive


def shrink_to(rgb: np.ndarray, side: int) -> np.ndarray:
    """The crop as a distant face: shrunk to ``side`` px and left small (the model's
    preprocessing enlarges it, as it does a small face in a photo)."""
    return cv2.resize(np.ascontiguousarray(rgb), (side, side), interpolation=cv2.INTER_AREA)


def shrink_face(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``shrink_to`` a side drawn from SMALL_FACE_PX (training's small faces)."""
    return shrink_to(rgb, int(rng.integers(SMALL_FACE_PX[0], SMALL_FACE_PX[1] + 1)))


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cheap, label-preserving augmentation for deepfake crops (whole-image ops, no cropping).

    JPEG re-compression, blur and down-up scaling mimic the re-encoding a face sees in the wild,
    so the model cannot rely on one compression fingerprint.
    """
    out = rgb
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.3:
        size = out.shape[0]
        small = max(8, int(size * rng.uniform(0.5, 0.9)))
        out = cv2.resize(np.ascontiguousarray(out), (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.15:
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (3, 3), float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.3:
        # brightness/contrast: x * a + b, clipped
        alpha, beta = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
        out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(30, 96))
        # OpenCV's JPEG codec expects BGR; converting keeps its luma/chroma split correct
        bgr = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)
