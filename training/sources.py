"""Stage the training sources into one labelled table of face crops.

Every source image goes through the service's own face path (decode, YuNet, padded square crop)
so the model trains on what it will be shown. Before that, images of the sources whose classes
were made differently (format, JPEG quality, size) are *equalised*: each image, whatever its
class, is downscaled by a random factor and re-encoded as JPEG at a random quality, drawn from one
distribution for all. A model then cannot tell the classes apart by their files.

The table (``labels.csv``) has one row per staged crop:
``file,label,kind,source,group,split`` where ``kind`` is ``real``, ``face_swap`` or ``synthetic``,
``group`` is the identity, prompt or source video that must not straddle splits, and ``split``
is ``train``/``val``/``test`` by a salted hash of ``(source, group)``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import SPLIT_SALT, split_of

CROP_MAX_SIDE = 256  # crops are stored no larger than this (the network sees 128 px)
KINDS = ("real", "face_swap", "synthetic")


@dataclass(frozen=True)
class Equalise:
    """The random re-encoding applied alike to every image of both classes of a source.

    Every image is shrunk (never enlarged) by a random factor, its longer side capped, then
    saved as JPEG at a random quality: after that, size and compression say nothing about the
    class, since both classes draw them from one distribution and the last encoding dominates.
    """

    min_scale: float = 0.5  # the longer side is multiplied by a factor in [min_scale, 1]
    max_side: int = 768  # ... and then capped at this many pixels
    min_quality: int = 60
    max_quality: int = 95

    def apply(self, data: bytes, seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
        side = max(rgb.size)
        target = min(self.max_side, side * rng.uniform(self.min_scale, 1.0))
        if target < side:
            scale = target / side
            rgb = rgb.resize(
                (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                Image.Resampling.LANCZOS,
            )
        out = io.BytesIO()
        quality = int(rng.integers(self.min_quality, self.max_quality + 1))
        rgb.save(out, format="JPEG", quality=quality)
        return out.getvalue()


@dataclass(frozen=True)
class SourceFile:
    path: Path
    label: str  # "fake" or "real"
    kind: str  # one of KINDS
    source: str
    group: str


@dataclass(frozen=True)
class Source:
    """A training source: where its files are under its root and how to label them."""

    name: str
    description: str
    licence: str
    equalise: bool
    files: Callable[[Path], Iterator[SourceFile]]


def _dfdc_files(root: Path) -> Iterator[SourceFile]:
    with open(root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["label"].strip().lower()
            kind = "real" if label == "real" else "face_swap"
            yield SourceFile(root / row["file"], label, kind, "dfdc", row["group"])


def _lfw_files(root: Path) -> Iterator[SourceFile]:
    base = root / "data" / "raw" / "LFW_faceswap"
    # The file names carry no identity, so each image is its own group.
    for label, kind in (("real", "real"), ("fake", "face_swap")):
        for path in sorted((base / label).glob("*.jpg")):
            yield SourceFile(path, label, kind, "lfw_swap", f"lfw/{label}/{path.stem}")


def _sdfd_files(root: Path) -> Iterator[SourceFile]:
    # "anB-107,3.jpg": prompt "anB-107", image 3 of it; images of one prompt stay together.
    for path in sorted((root / "allImages").glob("*.jpg")):
        yield SourceFile(path, "fake", "synthetic", "sd21", "sdfd/" + path.stem.split(",")[0])


def _stylegan2_files(root: Path) -> Iterator[SourceFile]:
    for label, kind in (("real", "real"), ("fake", "synthetic")):
        for path in sorted((root / "data" / label).glob("*.jpg")):
            yield SourceFile(path, label, kind, "stylegan2", f"ffhq-tpdne/{label}/{path.stem}")


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "dfdc",
            "DFDC face crops (../shared/data/dfdc_faces): real video frames and face "
            "swaps of several methods",
            "DFDC Terms of Use: non-commercial research only",
            False,
            _dfdc_files,
        ),
        Source(
            "lfw_swap",
            "LFW photos and classic 3D-model face swaps of them "
            "(Rees451/faces-fake-vs-real, data/raw/LFW_faceswap only)",
            "LFW: research use",
            True,
            _lfw_files,
        ),
        Source(
            "sd21",
            "Stable Diffusion 2.1 faces, fake only (gebaltso/SDFD, allImages/)",
            "SDFD: research use, cite the SDFD paper",
            True,
            _sdfd_files,
        ),
        Source(
            "stylegan2",
            "FFHQ real faces and StyleGAN2 faces from thispersondoesnotexist "
            "(dinablachman/realorfake, data/)",
            "FFHQ: CC BY-NC-SA 4.0; StyleGAN2 outputs: "
            "NVIDIA Source Code License-NC (non-commercial)",
            True,
            _stylegan2_files,
        ),
    )
}


def _seed(source_file: SourceFile) -> int:
    key = f"{source_file.source}:{source_file.path.name}:{source_file.label}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _crop_name(source_file: SourceFile) -> str:
    digest = hashlib.sha256(str(source_file.path).encode()).hexdigest()[:16]
    return f"crops/{source_file.source}/{source_file.label}/{digest}.png"


_faces = None


def _stage_one(job: tuple[SourceFile, bool, Equalise, float, Path]) -> tuple[str, str]:
    """Stage one image: (crop file relative to the output, "") or ("", reason it was skipped)."""
    from detection.faces import FaceDetector, crop_face
    from detection.media import decode_image

    global _faces
    source_file, equalise, settings, padding, out_dir = job
    if _faces is None:
        _faces = FaceDetector()
    try:
        data = source_file.path.read_bytes()
        if equalise:
            data = settings.apply(data, _seed(source_file))
        rgb = _decode_bytes(data, decode_image)
    except Exception as exc:  # a broken file is skipped and reported, never fatal
        return "", f"undecodable: {exc.__class__.__name__}"
    faces = _faces.detect(rgb)
    if not faces:
        return "", "no face"
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    crop = crop_face(rgb, largest.box, padding)
    if max(crop.shape[:2]) > CROP_MAX_SIDE:
        image = Image.fromarray(crop)
        image.thumbnail((CROP_MAX_SIDE, CROP_MAX_SIDE), Image.Resampling.BOX)
        crop = np.asarray(image)
    name = _crop_name(source_file)
    target = out_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop).save(target, compress_level=1)
    return name, ""


def _decode_bytes(data: bytes, decode_image: Callable) -> np.ndarray:
    """Decode with the service's decoder (it reads paths: go through a temporary file)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".img") as fh:
        fh.write(data)
        fh.flush()
        return decode_image(Path(fh.name), 40_000_000)


def stage(
    roots: dict[str, Path],
    out_dir: Path,
    workers: int = 2,
    padding: float = 0.05,
    settings: Equalise | None = None,
    salt: str = SPLIT_SALT,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    equalise: bool | None = None,
) -> dict:
    """Stage the named sources (``{source name: its folder}``) into ``out_dir``.

    Writes ``labels.csv`` and ``staging.json`` (counts, skips, settings, licences) and returns
    the latter. Idempotent: crops are re-made from the sources each time. ``equalise``
    overrides each source's own choice (False: the control without re-encoding).
    """
    settings = settings or Equalise()
    unknown = set(roots) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; known: {sorted(SOURCES)}")
    files: list[tuple[SourceFile, bool]] = []
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise FileNotFoundError(f"folder for source {name!r} not found: {root}")
        found = list(SOURCES[name].files(Path(root)))
        if limit is not None:
            found = found[:: max(1, len(found) // limit)][:limit]
        if not found:
            raise ValueError(f"no images found for source {name!r} under {root}")
        files.extend((f, SOURCES[name].equalise if equalise is None else equalise) for f in found)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(f, eq, settings, padding, out_dir) for f, eq in files]
    rows, skipped = [], Counter()
    # spawned, not forked: a fork of a process whose OpenMP or torch threads already run can
    # deadlock
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as pool:
        results = pool.map(_stage_one, jobs, chunksize=16) if workers > 1 else map(_stage_one, jobs)
        for i, ((source_file, _), (name, reason)) in enumerate(zip(files, results, strict=True)):
            if progress:
                progress(i + 1, len(files))
            if reason:
                skipped[f"{source_file.source}/{source_file.label}: {reason}"] += 1
                continue
            rows.append(
                {
                    "file": name,
                    "label": source_file.label,
                    "kind": source_file.kind,
                    "source": source_file.source,
                    "group": source_file.group,
                    "split": split_of(
                        f"{source_file.source}:{source_file.group}"
                        if source_file.source != "dfdc"
                        else source_file.group,
                        salt,
                    ),
                }
            )
    with open(out_dir / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["file", "label", "kind", "source", "group", "split"]
        )
        writer.writeheader()
        writer.writerows(rows)
    counts: dict = {}
    for row in rows:
        key = counts.setdefault(row["source"], {}).setdefault(row["split"], Counter())
        key[row["label"]] += 1
    report = {
        "rows": len(rows),
        "counts": {s: {sp: dict(c) for sp, c in d.items()} for s, d in counts.items()},
        "skipped": dict(skipped),
        "equalise": settings.__dict__ if equalise is not False else None,
        "face_padding": padding,
        "split_salt": salt,
        "sources": {
            n: {
                "folder": os.fspath(r),
                "description": SOURCES[n].description,
                "licence": SOURCES[n].licence,
                "equalised": SOURCES[n].equalise,
            }
            for n, r in roots.items()
        },
    }
    (out_dir / "staging.json").write_text(json.dumps(report, indent=1))
    return report
