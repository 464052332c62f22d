"""``rrr robustness``: evasion, transfer, patch, ordinary-processing and poisoning attacks on the
shipped detector, and the input-purification defence, measured on the held-out test split.

Every score goes through ``detection.detector.Detector.score`` (the service's own inference path)
on uint8 crops; attacks are computed in [0, 1] pixel space at the model's input side with the
normalisation inside a differentiable wrapper (``training.attacks.PixelModel``).
"""

from __future__ import annotations

import csv
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detection.detector import Detector, TorchEngine
from detection.model import FAKE_INDEX
from detection.network import load_checkpoint
from detection.purify import (
    DEFAULT_QUALITY_RANGE,
    DEFAULT_SCALE_RANGE,
    down_up,
    jpeg,
    purified_scores,
)
from training import attacks, poisoning
from training.data import (
    SPLIT_SALT,
    Sample,
    load_rgb,
    predecode,
    read_labels,
    shrink_to,
    split_samples,
)
from training.metrics import best_threshold, roc_auc
from training.train import _subset


@dataclass
class RobustnessConfig:
    """Every knob of a robustness run; saved in report.json."""

    checkpoint: str = "weights/rrr-b0-v3.pt"
    data_dir: str = "../shared/data/dfdc_faces"
    labels_csv: str | None = None  # default: <data_dir>/labels.csv
    out_dir: str = "docs/robustness"
    videos_csv: str | None = "../shared/data/videos/labels.csv"
    n_attack: int = 120  # held-out crops (half fake) for white-box, transfer and EOT attacks
    n_clean: int = 400  # held-out crops (half fake) for processing, patch and defence cost
    eps: tuple[int, ...] = (1, 2, 4, 8)  # L-inf radii in grey levels (/255)
    pgd_steps: int = 8  # step size 2.5 * eps / steps, uniform random start in the eps-ball
    patch_area: float = 0.10  # fraction of the input crop covered by the universal patch
    patch_train: int = 256  # train-split fakes the patch is optimised on
    patch_steps: int = 100  # Adam steps (batch 16, lr 0.05)
    poison_train: int = 4000  # train-split crops per poisoning run (evenly spaced subset)
    poison_val: int = 1000  # val-split crops that choose each run's threshold
    poison_test: int | None = None  # test-split crops for poisoning metrics (None: all)
    poison_epochs: float = 4.0
    flip_rates: tuple[float, ...] = (0.01, 0.05, 0.10)
    backdoor_rates: tuple[float, ...] = (0.02, 0.10)  # share of training fakes stamped + REAL
    trigger_side: int = 10  # pixels at the input side (checkerboard, bottom-right corner)
    defence_views: tuple[int, ...] = (1, 4)
    eot_eps: tuple[int, ...] = (4, 8)
    eot_samples: int = 2
    video_variants: tuple[tuple[str, float, int], ...] = (
        ("x264 crf 35, full size", 1.0, 35),
        ("x264 crf 30, half size", 0.5, 30),
        ("x264 crf 30, quarter size", 0.25, 30),
    )
    sample_fps: float = 1.0
    threads: int = 2
    seed: int = 0
    extra: dict = field(default_factory=dict)


def quick_config(**overrides: Any) -> RobustnessConfig:
    """Tiny sizes that exercise every section in a minute or two (smoke runs, not figures)."""
    cfg = RobustnessConfig(
        n_attack=8,
        n_clean=16,
        eps=(4, 8),
        pgd_steps=2,
        patch_train=16,
        patch_steps=3,
        poison_train=256,
        poison_val=64,
        poison_test=128,
        poison_epochs=1.0,
        flip_rates=(0.10,),
        backdoor_rates=(0.10,),
        defence_views=(1,),
        eot_eps=(8,),
        eot_samples=1,
        video_variants=(("x264 crf 30, quarter size", 0.25, 30),),
    )
    return replace(cfg, **overrides)


# --- helpers -----------------------------------------------------------------------------------


def _balanced(samples: list[Sample], n: int) -> list[Sample]:
    """n/2 fakes then n/2 reals, evenly spaced through each class."""
    fakes = [s for s in samples if s.label == FAKE_INDEX]
    reals = [s for s in samples if s.label != FAKE_INDEX]
    return _subset(fakes, n // 2) + _subset(reals, n - n // 2)


def summarize(
    p_fake: np.ndarray,
    is_fake: np.ndarray,
    threshold: float,
    clean_p_fake: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy on fakes and on reals, AUC, and (given clean scores) the attack success rate:
    the share of fakes called FAKE when clean that are called REAL now."""
    p_fake, is_fake = np.asarray(p_fake), np.asarray(is_fake, dtype=bool)
    pred_fake = p_fake >= threshold
    out = {
        "acc_fake": float(pred_fake[is_fake].mean()) if is_fake.any() else float("nan"),
        "acc_real": float((~pred_fake[~is_fake]).mean()) if (~is_fake).any() else float("nan"),
        "auc": roc_auc(is_fake, p_fake) if is_fake.any() and (~is_fake).any() else float("nan"),
        "mean_p_fake_on_fakes": float(p_fake[is_fake].mean()) if is_fake.any() else float("nan"),
    }
    if clean_p_fake is not None and is_fake.any():
        detected = np.asarray(clean_p_fake)[is_fake] >= threshold
        flipped = ~pred_fake[is_fake][detected]
        out["attack_success"] = float(flipped.mean()) if detected.any() else float("nan")
    return out


def _batched(fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    return torch.cat(
        [fn(x[s : s + batch_size], y[s : s + batch_size]) for s in range(0, len(x), batch_size)]
    )


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# --- sections ----------------------------------------------------------------------------------


def evasion(
    model: attacks.PixelModel,
    score,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: RobustnessConfig,
    seed: int,
) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """FGSM and PGD at each eps made against ``model``, scored with ``score``.

    :returns: (metrics per attack name, adversarial uint8 crops per attack name)
    """
    gen = torch.Generator().manual_seed(seed)
    crops: dict[str, list[np.ndarray]] = {}
    for e in cfg.eps:
        eps = e / 255
        crops[f"fgsm/{e}"] = attacks.to_uint8(
            _batched(lambda a, b, eps=eps: attacks.fgsm(model, a, b, eps), x, y)
        )
        crops[f"pgd/{e}"] = attacks.to_uint8(
            _batched(
                lambda a, b, eps=eps: attacks.pgd(model, a, b, eps, cfg.pgd_steps, generator=gen),
                x,
                y,
            )
        )
        _log(f"  eps {e}/255 done")
    return {name: score(c) for name, c in crops.items()}, crops


def processing_transforms() -> dict[str, Any]:
    """Ordinary processing applied to the original crops before the service sees them."""

    def noise(sigma: float):
        def apply(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return np.clip(c + rng.normal(0, sigma, c.shape), 0, 255).astype(np.uint8)

        return apply

    import cv2

    out: dict[str, Any] = {f"JPEG q{q}": (lambda c, _r, q=q: jpeg(c, q)) for q in (90, 70, 50, 30)}
    out.update({f"down-up x{f}": (lambda c, _r, f=f: down_up(c, f)) for f in (0.5, 0.25)})
    out.update(
        {f"blur sigma {s}": (lambda c, _r, s=s: cv2.GaussianBlur(c, (0, 0), s)) for s in (1.0, 2.0)}
    )
    out.update({f"noise sigma {s}": noise(s) for s in (4.0, 8.0)})
    # a small face: the crop shrunk (YuNet's box is about 0.9 of a DFDC crop's side) and
    # enlarged again only by the model's own preprocessing, as a distant face in a photo is
    out.update(
        {f"shrunk to {n} px": (lambda c, _r, n=n: shrink_to(c, n)) for n in (64, 48, 40, 32, 24)}
    )
    return out


def reencode(src: Path, dst: Path, scale: float, crf: int) -> None:
    """Re-encode a video with libx264 (yuv420p, preset ultrafast) at ``scale`` x its size."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or 30
        stream = None
        for i, frame in enumerate(inp.decode(vin)):
            rgb = frame.to_ndarray(format="rgb24")
            rotation = getattr(frame, "rotation", 0) or 0
            if rotation % 360:
                rgb = np.ascontiguousarray(np.rot90(rgb, k=(rotation // 90) % 4))
            if stream is None:
                h, w = rgb.shape[:2]
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = (
                    max(2, round(w * scale) // 2 * 2),
                    max(2, round(h * scale) // 2 * 2),
                )
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "ultrafast"}
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                width=stream.width, height=stream.height, format="yuv420p"
            )
            vf.pts = i
            for packet in stream.encode(vf):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)


def videos_section(cfg: RobustnessConfig) -> dict:
    """The shared videos as they are and re-encoded, judged through the worker's code path."""
    from training.videos import analyzer_for, evaluate_videos

    labels = Path(cfg.videos_csv or "")
    analyzer = analyzer_for(Path(cfg.checkpoint), threads=cfg.threads)
    results = {"original": evaluate_videos(labels, analyzer, cfg.sample_fps)}
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with tempfile.TemporaryDirectory(prefix="rrr-reencode-") as tmp:
        for name, scale, crf in cfg.video_variants:
            folder = Path(tmp) / f"{scale}-{crf}"
            for row in rows:
                dst = folder / row["file"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                reencode(labels.parent / row["file"], dst, scale, crf)
            with open(folder / "labels.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["file", "label"])
                writer.writeheader()
                writer.writerows({"file": r["file"], "label": r["label"]} for r in rows)
            sizes = {r["file"]: (folder / r["file"]).stat().st_size for r in rows}
            res = evaluate_videos(folder / "labels.csv", analyzer, cfg.sample_fps)
            for r in res["results"]:
                r["bytes"] = sizes[r["file"]]
            results[name] = res
            _log(f"  videos: {name}: {res['correct']}/{res['videos']} right")
    return results


def poisoning_section(
    cfg: RobustnessConfig, config, splits: dict[str, list[Sample]], rng: np.random.Generator
) -> tuple[dict, torch.nn.Module]:
    """Clean, label-flipped and backdoored retrains with one schedule; returns the metrics and
    the clean run's model (the surrogate for the transfer attack)."""
    size = config.input_size
    base = poisoning.lite0_model(config)
    train_s = _subset(splits["train"], cfg.poison_train)
    val_s = _subset(splits["val"], cfg.poison_val)
    test_s = _subset(splits["test"], cfg.poison_test)
    train_img = predecode(train_s, size, "decode poison-train")
    test_img = predecode(test_s, size, "decode poison-test")
    feats = {
        "train": poisoning.cache_features(base, train_img, config),
        "val": poisoning.cache_features(base, predecode(val_s, size, "decode val"), config),
        "test": poisoning.cache_features(base, test_img, config),
    }
    y_train = np.array([s.label for s in train_s])
    val_fake = np.array([s.label == FAKE_INDEX for s in val_s])
    test_fake = np.array([s.label == FAKE_INDEX for s in test_s])
    # the trigger on every held-out fake, and on the training fakes that may be poisoned
    trig_test = poisoning.cache_features(
        base, attacks.stamp_trigger(test_img[test_fake], cfg.trigger_side), config
    )
    train_fakes = np.flatnonzero(y_train == FAKE_INDEX)
    order = rng.permutation(train_fakes)  # nested: a lower rate poisons a prefix of this order
    n_max = round(max(cfg.backdoor_rates, default=0) * len(train_fakes))
    trig_train = poisoning.cache_features(
        base, attacks.stamp_trigger(train_img[order[:n_max]], cfg.trigger_side), config
    )
    schedule = {"epochs": cfg.poison_epochs, "batch_size": 64, "lr": 1e-3}

    def run(labels: np.ndarray, train_feats: torch.Tensor) -> tuple[dict, torch.nn.Module]:
        t0 = time.monotonic()
        model = poisoning.train_head(base, train_feats, labels, cfg.poison_epochs, seed=cfg.seed)
        thr = best_threshold(val_fake, poisoning.head_scores(model, feats["val"]))
        p_test = poisoning.head_scores(model, feats["test"])
        p_trig = poisoning.head_scores(model, trig_test)
        res = summarize(p_test, test_fake, thr)
        res["accuracy"] = float(((p_test >= thr) == test_fake).mean())
        res["threshold"] = thr
        detected = p_test[test_fake] >= thr
        res["trigger_success"] = float((p_trig[detected] < thr).mean()) if detected.any() else 0.0
        res["trigger_fakes_called_real"] = float((p_trig < thr).mean())
        res["train_seconds"] = round(time.monotonic() - t0, 1)
        return res, model

    out: dict = {
        "schedule": schedule,
        "n_train": len(train_s),
        "n_val": len(val_s),
        "n_test": len(test_s),
        "runs": {},
    }
    clean, clean_model = run(y_train, feats["train"])
    out["runs"]["clean"] = dict(clean, kind="clean", rate=0.0, changed=0)
    _log(f"  poisoning: clean auc {clean['auc']:.3f}")
    for rate in cfg.flip_rates:
        labels, idx = attacks.flip_labels(y_train, rate, rng)
        res, _ = run(labels, feats["train"])
        out["runs"][f"flip {rate:.0%}"] = dict(res, kind="label flip", rate=rate, changed=len(idx))
        _log(f"  poisoning: flip {rate:.0%} auc {res['auc']:.3f}")
    for rate in cfg.backdoor_rates:
        k = round(rate * len(train_fakes))
        labels, train_feats = y_train.copy(), feats["train"].clone()
        train_feats[order[:k]] = trig_train[:k]
        labels[order[:k]] = 1 - FAKE_INDEX
        res, _ = run(labels, train_feats)
        out["runs"][f"backdoor {rate:.0%} of fakes"] = dict(
            res, kind="backdoor", rate=rate, changed=k
        )
        _log(f"  poisoning: backdoor {rate:.0%} trigger success {res['trigger_success']:.3f}")
    return out, clean_model


# --- the run -----------------------------------------------------------------------------------


def run(cfg: RobustnessConfig, command: str = "") -> dict:
    """Run every section and write report.json, report.md and the plots to ``cfg.out_dir``."""
    t_start = time.monotonic()
    torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.monotonic() - t0, 1)
        _log(f"{name}: {timings[name]:.0f}s")

    model, config, meta = load_checkpoint(cfg.checkpoint)
    model.to(device)
    threshold = config.threshold
    detector = Detector(TorchEngine(model), config)
    pixel = attacks.PixelModel(model, config).to(device)
    size = config.input_size
    labels_csv = cfg.labels_csv or str(Path(cfg.data_dir) / "labels.csv")
    splits = split_samples(read_labels(labels_csv, cfg.data_dir), SPLIT_SALT)

    attack_s = _balanced(splits["test"], cfg.n_attack)
    clean_s = _balanced(splits["test"], cfg.n_clean)
    attack_fake = np.array([s.label == FAKE_INDEX for s in attack_s])
    clean_fake = np.array([s.label == FAKE_INDEX for s in clean_s])
    x = attacks.to_tensor(predecode(attack_s, size, "decode attack set")).to(device)
    y = torch.tensor([s.label for s in attack_s], device=device)
    clean_crops = [load_rgb(s.path) for s in clean_s]  # original 224 px crops

    def score(crops: list[np.ndarray]) -> np.ndarray:
        return detector.score(crops)

    def purified(crops: list[np.ndarray], views: int, seed: int = 1) -> np.ndarray:
        return purified_scores(detector.score, crops, views, np.random.default_rng(seed), size)

    report: dict[str, Any] = {
        "config": asdict(cfg),
        "command": command,
        "checkpoint_version": config.version,
        "threshold": threshold,
        "input_size": size,
        "device": str(device),
        "machine": f"{platform.machine()}, {cfg.threads} torch threads",
        "sets": {
            "attack": {"n": len(attack_s), "fake": int(attack_fake.sum())},
            "clean": {"n": len(clean_s), "fake": int(clean_fake.sum())},
        },
    }

    # 1. white-box evasion
    t0 = time.monotonic()
    _log("white-box FGSM / PGD")
    p_clean_attack = score(attacks.to_uint8(x))
    wb_scores, wb_crops = evasion(pixel, score, x, y, cfg, cfg.seed)
    report["whitebox"] = {"clean": summarize(p_clean_attack, attack_fake, threshold)}
    report["whitebox"].update(
        {k: summarize(v, attack_fake, threshold, p_clean_attack) for k, v in wb_scores.items()}
    )
    lap("whitebox", t0)

    # 5. poisoning (first: its clean run is the surrogate for the transfer attack)
    t0 = time.monotonic()
    _log("poisoning retrains")
    report["poisoning"], surrogate = poisoning_section(cfg, config, splits, rng)
    lap("poisoning", t0)

    # 2. transfer from the surrogate
    t0 = time.monotonic()
    _log("transfer FGSM / PGD from the surrogate")
    surrogate.to(device)
    sur_pixel = attacks.PixelModel(surrogate, config).to(device)
    sur_detector = Detector(TorchEngine(surrogate), config)
    sur_thr = report["poisoning"]["runs"]["clean"]["threshold"]
    tr_scores, tr_crops = evasion(sur_pixel, score, x, y, cfg, cfg.seed + 1)
    report["transfer"] = {
        "surrogate": "the poisoning study's clean run: Lite0-initialised B0, features[0..7] "
        "frozen, features[8] + classifier trained on cached features (see poisoning)",
        "surrogate_clean": summarize(sur_detector.score(attacks.to_uint8(x)), attack_fake, sur_thr),
    }
    report["transfer"].update(
        {k: summarize(v, attack_fake, threshold, p_clean_attack) for k, v in tr_scores.items()}
    )
    report["transfer"]["on_surrogate"] = {
        k: summarize(sur_detector.score(v), attack_fake, sur_thr) for k, v in tr_crops.items()
    }
    lap("transfer", t0)

    # 3. universal patch vs a random-noise patch of the same size
    t0 = time.monotonic()
    _log("universal patch")
    side = attacks.patch_side(size, cfg.patch_area)
    fake_train = [s for s in splits["train"] if s.label == FAKE_INDEX]
    patch_imgs = attacks.to_tensor(
        predecode(_subset(fake_train, cfg.patch_train), size, "decode patch-train")
    ).to(device)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    patch = attacks.train_patch(pixel, patch_imgs, side, cfg.patch_steps, generator=gen)
    noise_patch = torch.rand(3, side, side, generator=gen)
    held_fakes = attacks.to_tensor(
        [
            c
            for c, f in zip(predecode(clean_s, size, "decode clean set"), clean_fake, strict=True)
            if f
        ]
    )
    offsets = attacks.random_offsets(len(held_fakes), size, side, gen)
    p_held = score(attacks.to_uint8(held_fakes))
    patched = {
        "adversarial patch": attacks.to_uint8(
            attacks.apply_patch(held_fakes, patch.cpu(), offsets)
        ),
        "noise patch (control)": attacks.to_uint8(
            attacks.apply_patch(held_fakes, noise_patch, offsets)
        ),
    }
    is_f = np.ones(len(held_fakes), dtype=bool)
    report["patch"] = {
        "side_px": side,
        "area_fraction": side * side / size**2,
        "n_heldout_fakes": len(held_fakes),
        "train_fakes": len(patch_imgs),
        "steps": cfg.patch_steps,
        "clean": summarize(p_held, is_f, threshold),
    }
    report["patch"].update(
        {k: summarize(score(v), is_f, threshold, p_held) for k, v in patched.items()}
    )
    lap("patch", t0)

    # 4. ordinary processing
    t0 = time.monotonic()
    _log("ordinary processing")
    p_clean = score(clean_crops)
    report["processing"] = {"none": summarize(p_clean, clean_fake, threshold)}
    for name, fn in processing_transforms().items():
        prng = np.random.default_rng(cfg.seed + 3)
        report["processing"][name] = summarize(
            score([fn(c, prng) for c in clean_crops]), clean_fake, threshold, p_clean
        )
    lap("processing", t0)

    # 6. the defence: input purification
    t0 = time.monotonic()
    _log("defence")
    d: dict[str, Any] = {
        "transform": f"per crop and view: resize to {size} px, down-up x "
        f"U{DEFAULT_SCALE_RANGE}, JPEG quality U{DEFAULT_QUALITY_RANGE}; "
        "mean P(FAKE) over views",
        "clean": {},
        "latency_ms_per_crop": {},
    }
    lat_crops = clean_crops[:64]
    for views in (0, *cfg.defence_views):
        best = min(_timed(lambda v=views: purified(lat_crops, v)) for _ in range(3))
        d["latency_ms_per_crop"][str(views)] = round(1000 * best / len(lat_crops), 2)
    for views in cfg.defence_views:
        key = f"views={views}"
        d["clean"][key] = summarize(purified(clean_crops, views), clean_fake, threshold)
        d[key] = {}
        for name, crops in wb_crops.items():
            d[key][f"whitebox {name}"] = summarize(
                purified(crops, views), attack_fake, threshold, p_clean_attack
            )
        for name, crops in tr_crops.items():
            d[key][f"transfer {name}"] = summarize(
                purified(crops, views), attack_fake, threshold, p_clean_attack
            )
        for name, crops in patched.items():
            d[key][name] = summarize(purified(crops, views), is_f, threshold, p_held)
    # adaptive: EOT over the random purification, JPEG passed straight through (BPDA)
    fx, fy = x[torch.from_numpy(attack_fake)], y[torch.from_numpy(attack_fake)]
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    approx = attacks.purify_approximation(gen)
    d["eot"] = {
        "attacked": "held-out fakes of the attack set",
        "samples": cfg.eot_samples,
        "steps": cfg.pgd_steps,
    }
    p_clean_f = p_clean_attack[attack_fake]
    ones = np.ones(len(fx), dtype=bool)
    for e in cfg.eot_eps:
        adv = attacks.to_uint8(
            _batched(
                lambda a, b, e=e: attacks.pgd(
                    pixel,
                    a,
                    b,
                    e / 255,
                    cfg.pgd_steps,
                    generator=gen,
                    transform=approx,
                    eot_samples=cfg.eot_samples,
                ),
                fx,
                fy,
            )
        )
        d["eot"][f"pgd/{e}"] = {
            f"views={v}": summarize(purified(adv, v), ones, threshold, p_clean_f)
            for v in cfg.defence_views
        }
        d["eot"][f"pgd/{e}"]["undefended"] = summarize(score(adv), ones, threshold, p_clean_f)
        _log(f"  EOT eps {e}/255 done")
    report["defence"] = d
    lap("defence", t0)

    # 4b. videos re-encoded, through the worker's path
    if cfg.videos_csv and Path(cfg.videos_csv).is_file():
        t0 = time.monotonic()
        _log("videos")
        report["videos"] = videos_section(cfg)
        lap("videos", t0)

    timings["total"] = round(time.monotonic() - t_start, 1)
    report["timings_s"] = timings
    (out_dir / "report.json").write_text(json.dumps(_clean_json(report), indent=1))
    from training.robustness_report import write_markdown, write_plots

    write_plots(report, patch.cpu().numpy(), out_dir)
    write_markdown(report, out_dir)
    _log(f"report written to {out_dir} in {timings['total'] / 60:.1f} min")
    return report


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _clean_json(obj: Any) -> Any:
    """Round floats to 4 places and make NaN null, so the JSON stays small and valid."""
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else round(float(obj), 4)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
