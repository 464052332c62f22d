"""Staging several sources into one table, the equalising re-encoding, the re-encoding control
and the leave-one-source-out evaluation: on small mirrors built in the test from real crops."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detection.model import SIGNAL_LABELS
from detection.network import load_checkpoint
from shared.errors import ModelUnavailable
from training.data import load_rgb, read_labels, split_samples
from training.generalisation import evaluate_checkpoint, export_model, reencode
from training.sources import Equalise, stage
from training.train import TrainConfig, train

DFDC = Path("../shared/data/dfdc_faces")
pytestmark = pytest.mark.skipif(
    not (DFDC / "labels.csv").is_file(), reason="needs ../shared/data/dfdc_faces"
)


def _crops(n: int) -> list[Path]:
    with open(DFDC / "labels.csv", newline="") as fh:
        return [DFDC / row["file"] for row in csv.DictReader(fh)][::997][:n]


def _save(path: Path, source: Path, side: int, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(source).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    image.save(path, quality=quality)


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> dict[str, Path]:
    """Folders laid out like the public copies the sources come from; the classes differ in
    size and JPEG quality on purpose (as the real sources do)."""
    root = tmp_path_factory.mktemp("mirrors")
    crops = _crops(24)
    lfw = root / "lfw" / "data" / "raw" / "LFW_faceswap"
    for i, crop in enumerate(crops[:8]):
        _save(lfw / ("real" if i % 2 else "fake") / f"{i}.jpg", crop, 250, 90 if i % 2 else 97)
    sdfd = root / "sdfd" / "allImages"
    for i, crop in enumerate(crops[8:14]):
        _save(sdfd / f"anB-{i // 2},{i}.jpg", crop, 768, 75)
    gan = root / "gan" / "data"
    for i, crop in enumerate(crops[14:24]):
        _save(gan / ("real" if i % 2 else "fake") / f"{i}.jpg", crop, 1024, 95 if i % 2 else 80)
    (gan / "fake" / "blank.jpg").write_bytes(_jpeg(np.full((300, 300, 3), 127, np.uint8)))
    (gan / "real" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {
        "lfw_swap": root / "lfw",
        "sd21": root / "sdfd",
        "stylegan2": root / "gan",
        "dfdc": DFDC,
    }


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def staged(mirrors, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("staged")
    stage(mirrors, out, workers=1, limit=12)
    return out


def test_equalising_draws_size_and_quality_whatever_the_input_format() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (600, 600, 3), np.uint8)
    fine, coarse = _jpeg(pixels, 98), _jpeg(pixels, 40)
    equalise = Equalise()
    for seed in range(5):
        a = Image.open(io.BytesIO(equalise.apply(fine, seed)))
        b = Image.open(io.BytesIO(equalise.apply(coarse, seed)))
        # one draw per seed: the same size and the same JPEG tables for both inputs
        assert a.size == b.size and a.quantization == b.quantization
        assert max(a.size) <= equalise.max_side
    sizes = {Image.open(io.BytesIO(equalise.apply(fine, seed))).size for seed in range(8)}
    assert len(sizes) > 1  # and the draws do vary


def test_stage_builds_one_table_through_the_face_path(staged) -> None:
    with open(staged / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"file", "label", "kind", "source", "group", "split"}
    assert {r["source"] for r in rows} == {"dfdc", "lfw_swap", "sd21", "stylegan2"}
    kinds = {(r["source"], r["label"], r["kind"]) for r in rows}
    assert ("sd21", "fake", "synthetic") in kinds and ("lfw_swap", "fake", "face_swap") in kinds
    assert ("stylegan2", "real", "real") in kinds and ("dfdc", "fake", "face_swap") in kinds
    for row in rows:
        crop = Image.open(staged / row["file"])
        assert crop.format == "PNG" and max(crop.size) <= 256
    report = json.loads((staged / "staging.json").read_text())
    assert report["rows"] == len(rows)
    skipped = report["skipped"]
    assert skipped.pop("stylegan2/fake: no face") == 1
    assert list(skipped) == ["stylegan2/real: undecodable: OSError"]
    assert all(entry["licence"] for entry in report["sources"].values())
    # images of one SDFD prompt share a group, and a group never straddles splits
    samples = read_labels(staged / "labels.csv", staged, SIGNAL_LABELS)
    assert {s.group for s in samples if s.source == "sd21"} <= {f"sdfd/anB-{i}" for i in range(3)}
    groups = {name: {s.group for s in part} for name, part in split_samples(samples).items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert {s.label for s in samples} == {0, 1, 2}


def test_reencoding_control_touches_every_class_alike() -> None:
    crop = np.asarray(Image.open(_crops(1)[0]).convert("RGB"))
    out = reencode(crop)
    assert out.shape[2] == 3 and out.dtype == np.uint8
    assert abs(out.shape[0] - round(crop.shape[0] * 0.75)) <= 1
    assert np.array_equal(reencode(crop), out)  # deterministic: no class-dependent draw


def _tiny_run(staged: Path, run: Path, steps: int = 2, **options) -> None:
    """A few steps of training on the staged table: enough to write best.pt."""
    train(
        TrainConfig(
            data_dir=str(staged),
            run_dir=str(run),
            steps=steps,
            batch_size=4,
            init="lite0",
            threads=1,
            warmup_steps=1,
            val_every=steps,
            freeze_blocks=2,
            **options,
        )
    )


def test_leave_one_source_out_run_and_report(staged, tmp_path) -> None:
    run = tmp_path / "without-sd21"
    _tiny_run(staged, run, leave_out=["sd21"])
    split = json.loads((run / "splits.json").read_text())
    assert not any(g.startswith("sdfd/") for part in split["groups"].values() for g in part)
    report, fitted = evaluate_checkpoint(
        run / "best.pt", staged / "labels.csv", held_out=("sd21",), threads=1
    )
    assert fitted.labels == SIGNAL_LABELS and fitted.temperature > 0
    assert report["threshold_rule"] == "maximises balanced accuracy on the validation split"
    assert 0.0 <= fitted.unsure_margin <= 1.0
    left = report["sources"]["sd21"]
    assert left["part"] == "left_out" and left["n_fake"] > 0 and left["n_real"] == 0
    assert set(left["mean_signals"]) == {"face_swap", "synthetic"}
    control = left["reencoding_control"]
    assert 0.0 <= control["verdicts_changed"] <= 1.0
    assert report["sources"]["dfdc"]["part"] == "in_source"
    assert [r["margin"] for r in left["unsure_tradeoff"]][0] == 0.0

    strict, strict_fitted = evaluate_checkpoint(
        run / "best.pt",
        staged / "labels.csv",
        held_out=("sd21",),
        threads=1,
        control=False,
        max_reals_flagged=0.0,
    )
    assert strict["threshold_rule"].endswith("at most 0% of the real faces (mean over sources)")
    assert strict_fitted.threshold >= fitted.threshold


def test_loso_fold_passes_its_recipe_and_decision_rule_on(staged, tmp_path) -> None:
    """`rrr loso` trains each fold with the recipe's options (here small faces) and fits each
    fold's threshold under the same cap on real faces flagged as a shipped model would be."""
    from training.loso import run_loso

    out = tmp_path / "loso"
    results = run_loso(
        staged / "labels.csv",
        out,
        ["sd21"],
        steps=1,
        init="lite0",
        threads=1,
        batch_size=4,
        warmup_steps=1,
        small_faces=0.5,
        max_reals_flagged=0.0,
    )
    fold = out / "without-sd21"
    assert json.loads((fold / "train_config.json").read_text())["small_faces"] == 0.5
    report = results["folds"]["sd21"]
    assert report["threshold_rule"].endswith("at most 0% of the real faces (mean over sources)")
    written = json.loads((out / "loso.json").read_text())
    assert (written["small_faces"], written["max_reals_flagged"]) == (0.5, 0.0)
    assert "without sd21" in (out / "loso.md").read_text()


def test_unseen_generator_fold_with_patch_view(staged, tmp_path) -> None:
    """SOURCE:fake leaves out a generator's fakes but keeps its real photos; a patch-view run
    trains, stores its view in the checkpoint and is reported on that source's fakes."""
    run = tmp_path / "without-stylegan2-fake"
    _tiny_run(staged, run, leave_out=["stylegan2:fake"], view="patch")
    split = json.loads((run / "splits.json").read_text())
    trained = {g for part in split["groups"].values() for g in part}
    rows = read_labels(staged / "labels.csv", staged, SIGNAL_LABELS)
    gan_fakes = {s.group for s in rows if s.source == "stylegan2" and s.is_fake}
    gan_reals = {s.group for s in rows if s.source == "stylegan2" and not s.is_fake}
    assert gan_fakes and not gan_fakes & trained
    assert gan_reals & trained  # its real photos are still seen
    _, config, _ = load_checkpoint(run / "best.pt")
    assert config.view == "patch"
    report, _ = evaluate_checkpoint(
        run / "best.pt", staged / "labels.csv", held_out=("stylegan2:fake",), threads=1
    )
    left = report["sources"]["stylegan2"]
    assert left["part"] == "left_out" and left["n_fake"] == len(
        [s for s in rows if s.source == "stylegan2" and s.is_fake]
    )
    test_reals = [
        s for s in split_samples(rows)["test"] if s.source == "stylegan2" and not s.is_fake
    ]
    assert left["n_real"] == len(test_reals)  # only the test split of its reals
    assert report["sources"]["dfdc"]["part"] == "in_source"


def test_a_face_and_a_patch_model_fitted_and_shipped_as_a_pair(staged, tmp_path) -> None:
    """Two views scored together: each temperature fitted alone, the threshold on their mean;
    the shipped pair loads as one Detector and scores as the evaluation did."""
    from detection.detector import Detector

    runs = {}
    for view in ("face", "patch"):
        runs[view] = tmp_path / view
        _tiny_run(staged, runs[view], steps=1, view=view)
    face, patch = runs["face"] / "best.pt", runs["patch"] / "best.pt"
    report, fitted = evaluate_checkpoint(
        face, staged / "labels.csv", threads=1, control=False, partner=patch
    )
    assert fitted.extra["partner"] == {"file": "best.pt", "weight": 0.5}
    assert report["partner_config"]["view"] == "patch"
    shipped = tmp_path / "weights" / "pair.pt"
    shipped.parent.mkdir()
    export_model(face, fitted, report, shipped, "9", {}, partner=patch)
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["config"]["extra"]["threshold_rule"] == report["threshold_rule"]
    assert card["config"]["extra"]["partner"]["file"] == "pair-patch.pt"
    assert card["partner"]["file"] == "pair-patch.pt"
    assert (tmp_path / "weights" / "pair-patch.json").is_file()

    pair = Detector.from_checkpoint(shipped, threads=1, engine="torch")
    assert pair.partner is not None and pair.partner.config.view == "patch"
    assert pair.partner.config.temperature == report["partner_config"]["temperature"]
    crops = [load_rgb(p) for p in sorted((staged / "crops").rglob("*.png"))[:3]]
    alone = Detector(pair.engine, pair.config)
    mean = 0.5 * alone.class_probabilities(crops) + 0.5 * pair.partner.class_probabilities(crops)
    assert np.allclose(pair.class_probabilities(crops), mean)
    (tmp_path / "weights" / "pair-patch.pt").unlink()
    with pytest.raises(ModelUnavailable, match="pair-patch.pt"):
        Detector.from_checkpoint(shipped, threads=1, engine="torch")
