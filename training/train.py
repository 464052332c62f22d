"""Fine-tune EfficientNet-B0 on the face crops; resumable, time-boxed, CPU-friendly."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from detection.model import (
    FAKE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LABELS,
    SIGNAL_LABELS,
    ModelConfig,
    patch_at,
    preprocess,
)
from detection.network import build_model, load_checkpoint, save_checkpoint
from training.blend import self_blend
from training.data import (
    SPLIT_SALT,
    Sample,
    augment,
    left_out,
    predecode,
    predecode_native,
    read_labels,
    shrink_face,
    split_samples,
    table_has_kinds,
    write_split,
)
from training.inference import predict_fake_prob
from training.init import LITE0_LICENSE, transplant_lite0
from training.metrics import roc_auc

LAST = "last.pt"  # resumable state (model + optimiser + scheduler + step + RNG)
BEST = "best.pt"  # best validation AUC so far, in the shipped checkpoint format


@dataclass
class TrainConfig:
    """Every knob of a run; saved to ``<run_dir>/train_config.json``."""

    data_dir: str = "../shared/data/dfdc_faces"
    labels_csv: str | None = None  # default: <data_dir>/labels.csv
    run_dir: str = "runs/b0"
    epochs: float = 6.0
    input_size: int = 128
    batch_size: int = 32
    lr: float = 6e-4
    weight_decay: float = 0.02
    warmup_steps: int = 200
    label_smoothing: float = 0.05
    dropout: float = 0.2
    threads: int = 2
    seed: int = 0
    resume: bool = True
    # stop cleanly (resumable) once this invocation has run this long (wall clock, decode and
    # validation included; the final validation after the stop is not), so a deadline holds
    # even when other processes slow the steps down
    max_minutes: float | None = None
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs, tests)
    limit: int | None = None  # use at most this many images per split (smoke runs, tests)
    val_every: int | None = None  # validate every N steps as well as at each epoch end
    init: str = "lite0"  # "lite0" (ImageNet Lite0 transplant), "none", or a checkpoint path
    split_salt: str = SPLIT_SALT
    # length of the run in optimiser steps (overrides ``epochs``); balanced runs count in steps
    steps: int | None = None
    # sources of a multi-source table to train without (leave-one-source-out runs); "SOURCE:fake"
    # leaves out only that source's fakes (an unseen generator, its real photos still seen)
    leave_out: list[str] = field(default_factory=list)
    # keep the stem and this many first blocks of B0 fixed: their backward pass is the costliest
    # part of a CPU step at full resolution, and low-level filters need little change
    freeze_blocks: int = 0
    # share of each batch replaced by self-blended real faces labelled as face swaps
    # (training/blend.py): swap traces without any one method's fingerprint
    self_blend: float = 0.0
    # share of each batch shrunk to a small face first (training/data.py, shrink_face), whatever
    # its label: without it the model calls small real faces fake (docs/robustness.md)
    small_faces: float = 0.0
    # "face" (the whole crop resized) or "patch" (a native-resolution square of it; training
    # draws its position at random, serving takes the centre): see detection.model.model_view
    view: str = "face"
    extra: dict = field(default_factory=dict)


def _subset(samples: list[Sample], limit: int | None) -> list[Sample]:
    """Evenly spaced subset, so a small limit still mixes classes (the CSV is sorted by class)."""
    if limit is None or len(samples) <= limit:
        return samples
    idx = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return [samples[i] for i in idx]


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def balanced_buckets(samples: list[Sample]) -> tuple[list[np.ndarray], np.ndarray]:
    """Index lists per (source, kind) and the share of each batch they get.

    Half of every batch is real, half fake; the real half is shared equally by the sources, the
    fake half equally by each source's kinds of fake. Small sources are not drowned by DFDC's
    30,000 crops, and no source's real photos are outweighed by another's fakes.
    """
    keys = sorted({(s.source, s.kind or str(s.is_fake)) for s in samples})
    buckets = [
        np.array([i for i, s in enumerate(samples) if (s.source, s.kind or str(s.is_fake)) == key])
        for key in keys
    ]
    fake = np.array([samples[b[0]].is_fake for b in buckets])
    n_real, n_fake = int((~fake).sum()), int(fake.sum())
    if n_real == 0 or n_fake == 0:
        shares = np.full(len(buckets), 1.0 / len(buckets))
    else:
        shares = np.where(fake, 0.5 / n_fake, 0.5 / n_real)
    return buckets, shares


def _batch_indices(
    buckets: list[np.ndarray], shares: np.ndarray, batch: int, rng: np.random.Generator
) -> np.ndarray:
    chosen = rng.choice(len(buckets), size=batch, p=shares)
    return np.array([buckets[b][rng.integers(len(buckets[b]))] for b in chosen])


def _load_head(
    model: nn.Module, src: nn.Module, labels: tuple[str, ...], src_labels: tuple[str, ...]
) -> None:
    """Copy a checkpoint into ``model`` whose head may name other classes: rows are matched by
    label; a new fake class starts from the old FAKE row."""
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("model.classifier")}
    model.load_state_dict(state, strict=False)
    old_w, old_b = src.model.classifier[-1].weight.data, src.model.classifier[-1].bias.data
    new = model.model.classifier[-1]
    with torch.no_grad():
        for i, label in enumerate(labels):
            j = (
                src_labels.index(label)
                if label in src_labels
                else (src_labels.index("FAKE") if "FAKE" in src_labels else 0)
            )
            new.weight[i] = old_w[j]
            new.bias[i] = old_b[j]


def _initial_model(cfg: TrainConfig, model_config: ModelConfig) -> tuple[nn.Module, str]:
    model = build_model(model_config)
    if cfg.init == "lite0":
        report = transplant_lite0(model, mean=model_config.mean, std=model_config.std)
        return model, (
            f"ImageNet EfficientNet-Lite0 transplant ({report.matched} tensors matched; SE blocks "
            f"near-identity; head zero), {LITE0_LICENSE}"
        )
    if cfg.init == "none":
        return model, "random (torchvision default)"
    src, src_config, _ = load_checkpoint(cfg.init)
    _load_head(model, src, model_config.labels, src_config.labels)
    return model, f"fine-tuned from checkpoint {cfg.init}"


def _log(run_dir: Path, message: str) -> None:
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}"
    tqdm.write(line)
    with open(run_dir / "events.log", "a") as fh:
        fh.write(line + "\n")


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns a summary dict also written to ``summary.json``."""
    t_invocation = time.monotonic()
    torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    labels_csv = cfg.labels_csv or str(Path(cfg.data_dir) / "labels.csv")

    labels = SIGNAL_LABELS if table_has_kinds(labels_csv) else LABELS
    samples = [
        s for s in read_labels(labels_csv, cfg.data_dir, labels) if not left_out(s, cfg.leave_out)
    ]
    splits = split_samples(samples, cfg.split_salt)
    splits = {name: _subset(items, cfg.limit) for name, items in splits.items()}
    write_split(splits, run_dir / "splits.json", cfg.split_salt)
    train_set, val_set = splits["train"], splits["val"]
    if len(train_set) < cfg.batch_size or not val_set:
        raise ValueError(f"too few images: {len(train_set)} train, {len(val_set)} val")

    model_config = ModelConfig(
        version="dev",
        input_size=cfg.input_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        labels=labels,
        dropout=cfg.dropout,
        view=cfg.view,
    )
    model, init_desc = _initial_model(cfg, model_config)
    model.to(device).to(memory_format=torch.channels_last)
    for param in model.model.features[
        : cfg.freeze_blocks + 1 if cfg.freeze_blocks else 0
    ].parameters():
        param.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_set) // cfg.batch_size
    total_steps = cfg.steps or max(1, int(cfg.epochs * steps_per_epoch))
    balanced = len({s.source for s in train_set}) > 1
    buckets, shares = balanced_buckets(train_set) if balanced else ([], np.zeros(0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, cfg.warmup_steps, total_steps)
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    step, best_auc, history, train_seconds = 0, -1.0, [], 0.0
    last_path = run_dir / LAST
    if cfg.resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, best_auc = int(state["step"]), float(state["best_auc"])
        history, train_seconds = list(state["history"]), float(state["train_seconds"])
        _log(run_dir, f"resumed from {last_path} at step {step}")
    else:
        torch.manual_seed(cfg.seed)
        _log(run_dir, f"init: {init_desc}")
    _log(
        run_dir,
        f"device {device}, threads {cfg.threads}, train {len(train_set)} val "
        f"{len(val_set)} images, {steps_per_epoch} steps/epoch, {total_steps} steps total",
    )

    if cfg.view == "patch":
        train_images = predecode_native(train_set, "decode train")
        val_images = predecode_native(val_set, "decode val")
    else:
        train_images = predecode(train_set, cfg.input_size, "decode train")
        val_images = predecode(val_set, cfg.input_size, "decode val")
    train_labels = np.array([s.label for s in train_set], dtype=np.int64)
    train_reals = np.flatnonzero([not s.is_fake for s in train_set])
    swap_label = labels.index("FACE_SWAP") if "FACE_SWAP" in labels else FAKE_INDEX
    val_fake = np.array([s.is_fake for s in val_set])
    val_sources = np.array([s.source for s in val_set])

    def save_last() -> None:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "best_auc": best_auc,
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "train_seconds": train_seconds,
            },
            str(last_path) + ".tmp",
        )
        Path(str(last_path) + ".tmp").replace(last_path)

    def validate() -> None:
        nonlocal best_auc
        t0 = time.monotonic()
        probs = predict_fake_prob(model, list(val_images), model_config, 64, device)
        auc = roc_auc(val_fake, probs)
        acc = float(((probs >= 0.5) == val_fake).mean())
        entry = {
            "step": step,
            "epoch": round(step / steps_per_epoch, 3),
            "val_auc": auc,
            "val_acc@0.5": acc,
            "train_minutes": round(train_seconds / 60, 2),
        }
        for source in sorted(set(val_sources) - {""}):
            mask = val_sources == source
            if val_fake[mask].all() or not val_fake[mask].any():
                entry[f"flagged@0.5/{source}"] = round(float((probs[mask] >= 0.5).mean()), 4)
            else:
                entry[f"auc/{source}"] = round(roc_auc(val_fake[mask], probs[mask]), 4)
        history.append(entry)
        # the first validation always writes a checkpoint, even when a tiny validation split
        # holds one class and the AUC is undefined
        improved = auc > best_auc or not (run_dir / BEST).is_file()
        if improved:
            best_auc = auc
            meta = {
                "step": step,
                "val_auc": auc,
                "train_config": asdict(cfg),
                "init": init_desc,
                "train_minutes": round(train_seconds / 60, 2),
            }
            save_checkpoint(model, model_config, run_dir / BEST, meta)
        per_source = " ".join(f"{k} {v}" for k, v in entry.items() if "/" in k)
        _log(
            run_dir,
            f"val step {step} epoch {entry['epoch']}: auc {auc:.4f} acc@0.5 {acc:.4f}"
            f"{' (best)' if improved else ''} {per_source} [{time.monotonic() - t0:.0f}s]",
        )

    model.train()
    stopped = "finished"
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", mininterval=30)
    running = []
    while step < total_steps:
        if cfg.max_steps is not None and step >= cfg.max_steps:
            stopped = "max_steps"
            break
        if cfg.max_minutes is not None and time.monotonic() - t_invocation >= cfg.max_minutes * 60:
            stopped = "max_minutes"
            break
        epoch, pos = divmod(step, steps_per_epoch)
        if balanced:
            # draws depend only on (seed, step): a resumed run draws the same batches
            rng = np.random.default_rng([cfg.seed, step, 2])
            idx = _batch_indices(buckets, shares, cfg.batch_size, rng)
        else:
            # the permutation depends only on (seed, epoch): a resumed run keeps the same order
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_set))
            idx = order[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
            rng = np.random.default_rng([cfg.seed, epoch, pos, 1])
        t0 = time.monotonic()
        targets = train_labels[idx].copy()
        sources = [train_images[i] for i in idx]
        if cfg.view == "patch":
            sources = [patch_at(c, cfg.input_size, rng.random(), rng.random()) for c in sources]
        if cfg.self_blend > 0:
            for slot in np.flatnonzero(rng.random(len(idx)) < cfg.self_blend):
                sources[slot] = self_blend(train_images[rng.choice(train_reals)], rng)
                targets[slot] = swap_label
        if cfg.small_faces > 0:
            for slot in np.flatnonzero(rng.random(len(idx)) < cfg.small_faces):
                sources[slot] = shrink_face(sources[slot], rng)
        crops = [augment(image, rng) for image in sources]
        x = torch.from_numpy(preprocess(crops, model_config)).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(targets).to(device)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        train_seconds += time.monotonic() - t0
        running.append(loss.item())
        bar.update(1)
        if step % 50 == 0:
            lr = scheduler.get_last_lr()[0]
            _log(
                run_dir,
                f"step {step} loss {np.mean(running):.4f} lr {lr:.2e} "
                f"{train_seconds / max(step, 1):.2f}s/step(avg)",
            )
            running = []
        if step % steps_per_epoch == 0 or (cfg.val_every and step % cfg.val_every == 0):
            validate()
            save_last()
    bar.close()
    if not history or history[-1]["step"] != step:
        validate()
    save_last()
    summary = {
        "stopped": stopped,
        "step": step,
        "total_steps": total_steps,
        "epochs_done": round(step / steps_per_epoch, 3),
        "best_val_auc": best_auc,
        "train_minutes": round(train_seconds / 60, 2),
        "wall_minutes_this_invocation": round((time.monotonic() - t_invocation) / 60, 2),
        "device": str(device),
        "machine": f"{platform.machine()}, {cfg.threads} threads",
        "history": history,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    _log(run_dir, f"stopped ({stopped}) at step {step}; best val auc {best_auc:.4f}")
    return summary
