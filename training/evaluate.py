"""Evaluate a checkpoint on held-out face crops; optionally export it as the shipped weights."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from detection.detector import Detector
from detection.model import FAKE_INDEX, LABELS, file_sha256
from detection.network import load_checkpoint, save_checkpoint
from training.data import SPLIT_SALT, Sample, load_rgb, read_labels, split_samples, split_summary
from training.inference import predict_fake_prob
from training.metrics import best_threshold, classification_report, roc_curve, threshold_rule
from training.train import _subset

DATA_TERMS = (
    "DFDC (DeepFake Detection Challenge) face crops, 'Deepfake Faces' set: DFDC Terms of Use, "
    "non-commercial research only"
)


def _scores(model: torch.nn.Module | Detector, samples: list[Sample], config) -> np.ndarray:
    crops = [load_rgb(s.path) for s in samples]  # original crops: preprocess() does the resize
    if isinstance(model, Detector):  # the ONNX engine, exactly as the worker runs it
        return model.score(crops)  # it batches on its own
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).to(memory_format=torch.channels_last)
    return predict_fake_prob(model, crops, config, 64, device, progress=True)


def _plot(
    out_dir: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], report: dict, title: str
) -> None:
    """Write roc.png (one curve per split) and confusion.png (the reported split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(
        xlabel="false positive rate (real called FAKE)",
        ylabel="true positive rate (FAKE)",
        title=f"ROC, {title}",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=120)
    plt.close(fig)

    matrix = np.array(report["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            color="white" if v > matrix.max() / 2 else "black",
        )
    ax.set_xticks([0, 1], [f"pred {LABELS[0]}", f"pred {LABELS[1]}"])
    ax.set_yticks([0, 1], [f"true {LABELS[0]}", f"true {LABELS[1]}"])
    ax.set_title(f"{title}, threshold {report['threshold']:.4f}")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=120)
    plt.close(fig)


def evaluate(
    checkpoint: str | Path,
    data_dir: str | Path,
    labels_csv: str | Path,
    split: str = "test",
    out_dir: str | Path = "runs/eval",
    threshold: float | None = None,
    threads: int = 2,
    limit: int | None = None,
    export_path: str | Path | None = None,
    version: str = "1",
    train_command: str | None = None,
    command: str | None = None,
    engine: str = "torch",
) -> dict:
    """Score ``split`` ('test', 'val' or 'all') with the threshold chosen on 'val'; write metrics.

    Writes ``metrics.json``, ``roc.png`` and ``confusion.png`` to ``out_dir``. With
    ``export_path``, also writes the checkpoint there with the chosen threshold and these metrics
    in its config/metadata, plus ``<name>.json`` beside it. ``engine="onnx"`` scores with the
    ONNX file beside the checkpoint (``rrr export``) instead of the checkpoint itself.
    """
    torch.set_num_threads(threads)
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, config, ckpt_meta = load_checkpoint(checkpoint)
    scorer: torch.nn.Module | Detector = model
    if engine != "torch":
        scorer = Detector.from_checkpoint(Path(checkpoint), threads, engine)
    salt = (
        ckpt_meta.get("split", {}).get("salt")
        or ckpt_meta.get("train_config", {}).get("split_salt")
        or config.extra.get("split_salt")
        or SPLIT_SALT
    )
    samples = read_labels(labels_csv, data_dir)
    splits = {k: _subset(v, limit) for k, v in split_samples(samples, salt).items()}
    target = _subset(samples, limit) if split == "all" else splits[split]
    if not target:
        raise ValueError(f"the {split} split is empty")

    result: dict = {
        "checkpoint": str(checkpoint),
        "split": split,
        "input_size": config.input_size,
        "engine": engine,
    }
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    if threshold is not None:
        rule = "given on the command line"
    elif split != "all" and splits["val"]:
        val_fake = np.array([s.label == FAKE_INDEX for s in splits["val"]])
        val_scores = _scores(scorer, splits["val"], config)
        threshold = best_threshold(val_fake, val_scores)
        rule = threshold_rule(None)
        result["val"] = classification_report(val_fake, val_scores, threshold)
        fpr, tpr, _ = roc_curve(val_fake, val_scores)
        curves["val"] = (fpr, tpr, result["val"]["roc_auc"])
    else:
        threshold = config.threshold
        rule = "the checkpoint's own threshold"
    result["threshold"] = threshold
    result["threshold_rule"] = rule

    if split == "val" and "val" in result:
        report = result["val"]
    else:
        is_fake = np.array([s.label == FAKE_INDEX for s in target])
        scores = _scores(scorer, target, config)
        report = classification_report(is_fake, scores, threshold)
        fpr, tpr, _ = roc_curve(is_fake, scores)
        curves[split] = (fpr, tpr, report["roc_auc"])
    result[split] = report
    counts = split_summary(splits, salt)["counts"]
    result["split_counts"] = counts
    result["eval_seconds"] = round(time.monotonic() - t_start, 1)
    result["command"] = command or shlex.join(sys.argv)

    _plot(out_dir, curves, report, f"{split} split")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    if export_path is not None:
        _export(
            model,
            config,
            ckpt_meta,
            Path(export_path),
            result,
            version,
            train_command,
            salt,
            Path(checkpoint),
        )
    return result


def _rounded(report: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.items()}


def _run_info(checkpoint: Path, depth: int = 0) -> dict:
    """Wall time and summary of the run that wrote ``checkpoint`` (and of the run it started from).

    Read from the run folder's events.log timestamps and summary.json, when they are there.
    """
    run_dir = checkpoint.parent
    info: dict = {"run_dir": str(run_dir)}
    log = run_dir / "events.log"
    if log.is_file():
        stamps = [line.split(" ", 1)[0] for line in log.read_text().splitlines() if line]
        parsed = [time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) for s in stamps]
        info.update(
            started=stamps[0],
            ended=stamps[-1],
            wall_minutes_incl_validation=round((parsed[-1] - parsed[0]) / 60, 1),
        )
    summary = run_dir / "summary.json"
    if summary.is_file():
        info["summary"] = json.loads(summary.read_text())
    cfg_file = run_dir / "train_config.json"
    if cfg_file.is_file() and depth < 3:
        parent = json.loads(cfg_file.read_text()).get("init", "")
        if parent not in ("lite0", "none", "") and Path(parent).is_file():
            info["started_from"] = _run_info(Path(parent), depth + 1)
    return info


def _export(
    model,
    config,
    ckpt_meta: dict,
    path: Path,
    result: dict,
    version: str,
    train_command: str | None,
    salt: str,
    checkpoint: Path,
) -> None:
    """Write the shipped checkpoint (+ <name>.json) with the validation-chosen threshold."""
    training = {k: v for k, v in ckpt_meta.items() if k != "history"}
    training["hardware"] = (
        f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU"
        if not (torch.cuda.is_available())
        else torch.cuda.get_device_name(0)
    )
    training["run"] = _run_info(checkpoint)
    split_name = result["split"]
    extra = {
        "trained_on": "dfdc_faces (DFDC face crops)",
        "split_salt": salt,
        "threshold_rule": result["threshold_rule"],
        f"{split_name}_auc": round(result[split_name]["roc_auc"], 4),
    }
    shipped = dataclasses.replace(
        config, version=version, threshold=float(result["threshold"]), extra=extra
    )
    metadata = {
        "architecture": "torchvision efficientnet_b0, "
        "classifier Sequential(Dropout, Linear(1280, 2))",
        "input_size": shipped.input_size,
        "normalisation": {
            "mean": list(shipped.mean),
            "std": list(shipped.std),
            "note": "RGB scaled to [0, 1], then (x - mean) / std (detection.model.preprocess)",
        },
        "labels": list(shipped.labels),
        "threshold": shipped.threshold,
        "threshold_rule": result["threshold_rule"],
        "training_data": DATA_TERMS,
        "split": {
            "salt": salt,
            "rule": f"by source video (group): sha256('{salt}:' + group) mod 100 -> "
            "<80 train, <90 val, else test",
            "counts": result["split_counts"],
        },
        "metrics": {k: _rounded(result[k]) for k in ("val", split_name) if k in result},
        "metrics_full_precision": {k: result[k] for k in ("val", split_name) if k in result},
        "initialisation": training.get("init"),
        "init_licence": "EfficientNet-Lite0 ImageNet weights: Apache-2.0",
        "training": training,
        "reproduce": {"train": train_command, "export_and_evaluate": result["command"]},
        "licence_note": "weights derived from DFDC data: non-commercial research use only",
    }
    save_checkpoint(model, shipped, path, metadata)
    side = dict(
        metadata,
        file=path.name,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        config=shipped.to_dict(),
    )
    path.with_suffix(".json").write_text(json.dumps(side, indent=1))
