"""How well a checkpoint generalises: per-source figures on a staged table (``rrr data``),
calibration and the unsure band fitted on validation data, the re-encoding control, and the
leave-one-source-out protocol (train without a source, test on it).

Everything scores through ``detection.detector.Detector``, the worker's own inference path.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from detection.detector import Detector, TorchEngine
from detection.model import ModelConfig, class_probabilities, fake_probability
from detection.network import load_checkpoint
from training.calibration import (
    fit_temperature,
    fit_unsure_margin,
    reliability,
    unsure_mask,
    unsure_tradeoff,
)
from training.data import Sample, left_out, load_rgb, read_labels, split_samples
from training.metrics import best_threshold, roc_auc, threshold_rule

MAX_UNSURE_SHARE = 0.08  # the unsure band may hold at most this share of validation faces
EVAL_CAP = 4000  # at most this many crops scored per source and split (evenly spaced)
CONTROL_SCALE, CONTROL_QUALITY = 0.75, 80  # the re-encoding control, applied to both classes


def _cap(samples: list[Sample], cap: int | None) -> list[Sample]:
    if cap is None or len(samples) <= cap:
        return samples
    idx = np.linspace(0, len(samples) - 1, cap).round().astype(int)
    return [samples[i] for i in idx]


def reencode(rgb: np.ndarray) -> np.ndarray:
    """The control's re-encoding: downscale then JPEG, the same for every crop of every class."""
    h, w = rgb.shape[:2]
    small = cv2.resize(
        rgb,
        (max(1, round(w * CONTROL_SCALE)), max(1, round(h * CONTROL_SCALE))),
        interpolation=cv2.INTER_AREA,
    )
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, CONTROL_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def class_probs_t1(detector: Detector, crops: list[np.ndarray]) -> np.ndarray:
    """(N, C) class probabilities at temperature 1, whatever the checkpoint's own temperature."""
    raw = dataclasses.replace(detector.config, temperature=1.0)
    return Detector(detector.engine, raw).class_probabilities(crops)


def calibrated_probs(
    detector: Detector, crops: list[np.ndarray], config: ModelConfig
) -> np.ndarray:
    """(N, C) class probabilities under ``config``'s temperature (not the checkpoint's), with the
    detector's partner, if any, at its own."""
    return Detector(detector.engine, config, partner=detector.partner).class_probabilities(crops)


def fit_decision(
    config: ModelConfig,
    probs: np.ndarray,
    labels: np.ndarray,
    max_unsure: float = MAX_UNSURE_SHARE,
    max_reals_flagged: float | None = None,
    sources: np.ndarray | None = None,
) -> ModelConfig:
    """Temperature, threshold (balanced accuracy, optionally under a cap on the real faces
    flagged, averaged over the sources) and unsure margin, all from validation data."""
    log_probs = np.log(np.clip(probs, 1e-12, 1.0))
    tuned = dataclasses.replace(config, temperature=fit_temperature(log_probs, labels))
    p_fake = fake_probability(class_probabilities(log_probs, tuned), tuned)
    return _with_threshold_and_margin(tuned, p_fake, labels, max_unsure, max_reals_flagged, sources)


def _with_threshold_and_margin(
    config: ModelConfig,
    p_fake: np.ndarray,
    labels: np.ndarray,
    max_unsure: float,
    max_reals_flagged: float | None = None,
    sources: np.ndarray | None = None,
) -> ModelConfig:
    """The threshold maximising balanced accuracy (under the cap, if any), and the widest unsure
    band around it that holds at most ``max_unsure`` of the faces, fitted on calibrated
    validation scores."""
    is_fake = labels != config.real_index
    threshold = (
        best_threshold(is_fake, p_fake, max_reals_flagged, sources)
        if 0 < is_fake.sum() < len(is_fake)
        else 0.5
    )
    margin = fit_unsure_margin(p_fake, threshold, max_unsure)
    return dataclasses.replace(config, threshold=float(threshold), unsure_margin=margin)


PARTNER_WEIGHT = 0.5  # a partner's share of the class probabilities: equal, not tuned


def fit_pair(
    config: ModelConfig,
    probs: np.ndarray,
    partner_config: ModelConfig,
    partner_probs: np.ndarray,
    labels: np.ndarray,
    partner_file: str,
    weight: float = PARTNER_WEIGHT,
    max_unsure: float = MAX_UNSURE_SHARE,
    max_reals_flagged: float | None = None,
    sources: np.ndarray | None = None,
) -> tuple[ModelConfig, ModelConfig]:
    """The decision rule of two models scored together (``Detector`` with a partner): each one's
    temperature fitted on its own, then the threshold and unsure margin on their weighted mean,
    all on validation data. Returns (this model's config naming the partner, partner's config)."""
    log_probs = np.log(np.clip(probs, 1e-12, 1.0))
    partner_log_probs = np.log(np.clip(partner_probs, 1e-12, 1.0))
    tuned = dataclasses.replace(
        config,
        temperature=fit_temperature(log_probs, labels),
        extra={**config.extra, "partner": {"file": partner_file, "weight": weight}},
    )
    partner_tuned = dataclasses.replace(
        partner_config, temperature=fit_temperature(partner_log_probs, labels)
    )
    mean = (1.0 - weight) * class_probabilities(log_probs, tuned)
    mean += weight * class_probabilities(partner_log_probs, partner_tuned)
    p_fake = fake_probability(mean, tuned)
    fitted = _with_threshold_and_margin(
        tuned, p_fake, labels, max_unsure, max_reals_flagged, sources
    )
    return fitted, partner_tuned


def source_report(p_fake: np.ndarray, is_fake: np.ndarray, config: ModelConfig) -> dict:
    """Figures of one source at the config's threshold and unsure margin."""
    t, margin = config.threshold, config.unsure_margin
    called = p_fake >= t
    unsure = unsure_mask(p_fake, t, margin)
    confident = ~unsure
    fakes, reals = is_fake, ~is_fake
    out: dict = {"n_fake": int(fakes.sum()), "n_real": int(reals.sum())}
    if fakes.any() and reals.any():
        out["auc"] = round(roc_auc(is_fake, p_fake), 4)
    if fakes.any():
        out["fakes_flagged"] = round(float(called[fakes].mean()), 4)
        out["fakes_flagged_confident"] = round(float((called & confident)[fakes].mean()), 4)
    if reals.any():
        out["reals_flagged"] = round(float(called[reals].mean()), 4)
    out["accuracy"] = round(float((called == is_fake).mean()), 4)
    out["unsure_share"] = round(float(unsure.mean()), 4)
    out["confident_accuracy"] = (
        round(float((called == is_fake)[confident].mean()), 4) if confident.any() else None
    )
    out["calibration"] = reliability(p_fake, is_fake.astype(float))
    out["unsure_tradeoff"] = unsure_tradeoff(p_fake, is_fake, t)
    return out


def evaluate_checkpoint(
    checkpoint: str | Path,
    table: str | Path,
    data_dir: str | Path | None = None,
    held_out: tuple[str, ...] = (),
    threads: int = 2,
    cap: int | None = EVAL_CAP,
    control: bool = True,
    partner: str | Path | None = None,
    max_reals_flagged: float | None = None,
) -> tuple[dict, ModelConfig]:
    """Per-source figures of a checkpoint on a staged table.

    Calibration, threshold and unsure margin are fitted on the validation split of the sources
    the checkpoint trained on; each of those is reported on its test split ("in-source"), each
    ``held_out`` source on all its rows ("left out"); a ``SOURCE:fake`` entry reports all that
    source's fakes beside the test split of its reals. With ``partner`` (a second checkpoint,
    e.g. another view), both score together as a ``Detector`` with a partner does (``fit_pair``);
    the fitted config then names the partner's file. ``max_reals_flagged`` caps the share of
    real validation faces the threshold may flag (mean over the sources). Returns (report,
    fitted config).
    """
    torch.set_num_threads(threads)
    model, config, _ = load_checkpoint(checkpoint)
    detector = Detector(TorchEngine(model), config)
    samples = read_labels(table, data_dir or Path(table).parent, config.labels)
    splits = split_samples(samples)
    t0 = time.monotonic()
    val = _cap([s for s in splits["val"] if not left_out(s, held_out)], cap)
    val_crops = [load_rgb(s.path) for s in val]
    val_probs = class_probs_t1(detector, val_crops)
    val_labels = np.array([s.label for s in val])
    val_sources = np.array([s.source for s in val])
    rule = {"max_reals_flagged": max_reals_flagged, "sources": val_sources}
    partner_fitted = None
    if partner is not None:
        partner_model, partner_config, _ = load_checkpoint(partner)
        partner_engine = TorchEngine(partner_model)
        partner_probs = class_probs_t1(Detector(partner_engine, partner_config), val_crops)
        fitted, partner_fitted = fit_pair(
            config,
            val_probs,
            partner_config,
            partner_probs,
            val_labels,
            Path(partner).name,
            **rule,
        )
        detector = Detector(
            detector.engine, fitted, partner=Detector(partner_engine, partner_fitted)
        )
    else:
        fitted = fit_decision(config, val_probs, val_labels, **rule)
    del val_crops
    report: dict = {
        "checkpoint": str(checkpoint),
        "partner": str(partner) if partner else None,
        "partner_config": partner_fitted.to_dict() if partner_fitted else None,
        "held_out": list(held_out),
        "fitted_on": f"validation split of {sorted({s.source for s in val})} ({len(val)} crops)",
        "temperature": round(fitted.temperature, 4),
        "threshold": round(fitted.threshold, 4),
        "threshold_rule": threshold_rule(max_reals_flagged),
        "unsure_margin": round(fitted.unsure_margin, 4),
        "sources": {},
    }
    test = set(splits["test"])
    for source in sorted({s.source for s in samples}):
        rows = [s for s in samples if s.source == source]
        unseen = [s for s in rows if left_out(s, held_out)]
        part = "left_out" if unseen else "in_source"
        # what was left out, all of it, beside the test split of what was not
        rows = [s for s in rows if s in test or left_out(s, held_out)]
        rows = _cap(rows, cap)
        if not rows:
            continue
        crops = [load_rgb(s.path) for s in rows]
        is_fake = np.array([s.is_fake for s in rows])
        probs = calibrated_probs(detector, crops, fitted)
        p_fake = fake_probability(probs, fitted)
        entry = {"part": part, **source_report(p_fake, is_fake, fitted)}
        if fitted.signals:
            entry["mean_signals"] = {
                label.lower(): round(float(probs[:, i].mean()), 4)
                for i, label in enumerate(fitted.labels)
                if label != "REAL"
            }
        if control:
            p_control = fake_probability(
                calibrated_probs(detector, [reencode(c) for c in crops], fitted), fitted
            )
            shift = np.abs(p_control - p_fake)
            entry["reencoding_control"] = {
                "what": f"every crop of both classes downscaled x{CONTROL_SCALE} and re-encoded "
                f"as JPEG q{CONTROL_QUALITY}",
                "mean_abs_shift_fake": round(float(shift[is_fake].mean()), 4)
                if is_fake.any()
                else None,
                "mean_abs_shift_real": round(float(shift[~is_fake].mean()), 4)
                if (~is_fake).any()
                else None,
                "auc_after": round(roc_auc(is_fake, p_control), 4)
                if is_fake.any() and (~is_fake).any()
                else None,
                "verdicts_changed": round(
                    float(((p_control >= fitted.threshold) != (p_fake >= fitted.threshold)).mean()),
                    4,
                ),
            }
        report["sources"][source] = entry
    report["eval_seconds"] = round(time.monotonic() - t0, 1)
    return report, fitted


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """One line per (label, source entry): the figures people compare."""
    head = (
        "| run / source | part | AUC | fakes flagged | reals flagged | unsure | "
        "accuracy of confident answers | ECE | control: verdicts changed |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines = []
    for label, e in rows:

        def pct(key: str, entry: dict = e) -> str:
            value = entry.get(key)
            return "-" if value is None else f"{100 * value:.1f}%"

        control = e.get("reencoding_control", {})
        lines.append(
            f"| {label} | {e['part'].replace('_', ' ')} | {e.get('auc', '-')} | "
            f"{pct('fakes_flagged')} | {pct('reals_flagged')} | {pct('unsure_share')} | "
            f"{pct('confident_accuracy')} | {e['calibration']['ece']} | "
            f"{pct('verdicts_changed', control) if control else '-'} |"
        )
    return head + "\n".join(lines) + "\n"


def tradeoff_table(rows: list[tuple[str, dict]]) -> str:
    """The unsure trade-off: for each band half-width, the share of unsure answers and the
    accuracy of the confident ones, one line per (label, source entry)."""
    margins = [r["margin"] for r in rows[0][1]["unsure_tradeoff"]] if rows else []
    head = "| run / source | " + " | ".join(f"margin {m:g}" for m in margins) + " |\n"
    head += "| --- |" + " --- |" * len(margins) + "\n"
    lines = []
    for label, entry in rows:
        cells = [
            f"{100 * r['unsure_share']:.0f}% unsure, {100 * r['confident_accuracy']:.1f}% right"
            if r["confident_accuracy"] is not None
            else "-"
            for r in entry["unsure_tradeoff"]
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "generalisation.json").write_text(json.dumps(report, indent=1))
    rows = [(f"{title}: {source}", entry) for source, entry in report["sources"].items()]
    decision = (
        f"Decision: temperature {report['temperature']}, threshold {report['threshold']} "
        f"({report.get('threshold_rule', threshold_rule(None))}), unsure band "
        f"+/- {report['unsure_margin']}; fitted on the {report['fitted_on']}.\n\n"
    )
    (out_dir / "generalisation.md").write_text(
        decision + markdown_table(rows) + "\n" + tradeoff_table(rows)
    )
    _reliability_plot(report, out_dir / "reliability.png")


def _reliability_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for source, entry in report["sources"].items():
        bins = [b for b in entry["calibration"]["bins"] if b["n"]]
        ax.plot(
            [b["mean_predicted"] for b in bins],
            [b["observed_fake"] for b in bins],
            "o-",
            label=f"{source} (ECE {entry['calibration']['ece']})",
        )
    ax.set(
        xlabel="calibrated probability_fake",
        ylabel="observed share of fakes",
        title="Reliability per source",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_model(
    checkpoint: str | Path,
    fitted: ModelConfig,
    report: dict,
    path: Path,
    version: str,
    commands: dict[str, str],
    staging: dict | None = None,
    loso: dict | None = None,
    partner: str | Path | None = None,
) -> dict:
    """Write the shipped checkpoint with its fitted decision rule (temperature, threshold,
    unsure margin) and ``<name>.json`` beside it: the per-source figures, the leave-one-source-out
    table, the data and its licences. Returns that metadata.

    With ``partner`` (the checkpoint evaluated beside it), that one is written too, as
    ``<name>-<its view>.pt`` with its fitted temperature, and the shipped config names it."""
    from detection.model import file_sha256
    from detection.network import save_checkpoint

    model, _, ckpt_meta = load_checkpoint(checkpoint)
    sources = sorted(report["sources"])
    extra: dict = {
        "trained_on": sources,
        "decision_fitted_on": report["fitted_on"],
        "threshold_rule": report.get("threshold_rule", threshold_rule(None)),
    }
    partner_side = None
    if partner is not None:
        partner_model, _, partner_meta = load_checkpoint(partner)
        partner_config = dataclasses.replace(
            ModelConfig.from_dict(report["partner_config"]), version=version
        )
        partner_path = path.with_name(f"{path.stem}-{partner_config.view}{path.suffix}")
        save_checkpoint(
            partner_model,
            partner_config,
            partner_path,
            {
                "partner_of": path.name,
                "training": {k: v for k, v in partner_meta.items() if k != "history"},
                "licence_note": "as its partner's: non-commercial research use only",
            },
        )
        partner_side = {
            "file": partner_path.name,
            "sha256": file_sha256(partner_path),
            "size_bytes": partner_path.stat().st_size,
            "config": partner_config.to_dict(),
            "partner_of": path.name,
            "training": {k: v for k, v in partner_meta.items() if k != "history"},
        }
        partner_path.with_suffix(".json").write_text(json.dumps(partner_side, indent=1) + "\n")
        extra["partner"] = {
            "file": partner_path.name,
            "weight": fitted.extra["partner"]["weight"],
        }
    shipped = dataclasses.replace(fitted, version=version, extra=extra)
    licences = {
        name: entry["licence"] for name, entry in (staging or {}).get("sources", {}).items()
    }
    metadata = {
        "architecture": "torchvision efficientnet_b0, classifier Sequential(Dropout, "
        f"Linear(1280, {len(shipped.labels)}))",
        "labels": list(shipped.labels),
        "input_size": shipped.input_size,
        "decision": {
            "temperature": shipped.temperature,
            "threshold": shipped.threshold,
            "unsure_margin": shipped.unsure_margin,
            "fitted_on": report["fitted_on"],
        },
        "per_source": report["sources"],
        "leave_one_source_out": {
            s: f["sources"][s] for s, f in (loso or {}).get("folds", {}).items() if "sources" in f
        },
        "training_data": {
            "rows": (staging or {}).get("counts"),
            "licences": licences,
            "equalise": (staging or {}).get("equalise"),
        },
        "training": {k: v for k, v in ckpt_meta.items() if k != "history"},
        "reproduce": commands,
        "licence_note": "weights derived from DFDC, LFW, FFHQ, StyleGAN2 and SDFD data: "
        "non-commercial research use only",
    }
    if partner_side:
        metadata["partner"] = partner_side
    save_checkpoint(model, shipped, path, metadata)
    side = dict(
        metadata,
        file=path.name,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        config=shipped.to_dict(),
    )
    path.with_suffix(".json").write_text(json.dumps(side, indent=1) + "\n")
    return side
