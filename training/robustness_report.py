"""Render a robustness run (the dict ``training.robustness.run`` builds) as report.md + PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _f(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _row(name: str, m: dict, asr: bool = True) -> str:
    cells = [name, _f(m.get("acc_fake"), True), _f(m.get("acc_real"), True), _f(m.get("auc"))]
    if asr:
        cells.append(_f(m.get("attack_success"), True))
    return "| " + " | ".join(cells) + " |"


HEAD = (
    "| condition | acc. on fakes | acc. on reals | AUC | attack success |\n"
    "| --- | --- | --- | --- | --- |"
)


def evasion_table(report: dict) -> str:
    """The headline evasion table: white-box and transfer at each eps, with and without the
    defence (one view), and the adaptive EOT attack."""
    cfg = report["config"]
    d = report["defence"]
    v1 = f"views={cfg['defence_views'][0]}"
    lines = [HEAD, _row("clean (no attack)", report["whitebox"]["clean"])]
    for section, label in (("whitebox", "white-box"), ("transfer", "transfer")):
        for kind in ("fgsm", "pgd"):
            for e in cfg["eps"]:
                lines.append(
                    _row(f"{label} {kind.upper()} {e}/255", report[section][f"{kind}/{e}"])
                )
    for e in cfg["eps"]:
        lines.append(
            _row(
                f"purified ({v1}) vs white-box PGD {e}/255 made without it",
                d[v1][f"whitebox pgd/{e}"],
            )
        )
    for e in cfg["eps"]:
        lines.append(_row(f"purified ({v1}) vs transfer PGD {e}/255", d[v1][f"transfer pgd/{e}"]))
    for e in cfg["eot_eps"]:
        lines.append(
            _row(
                f"purified ({v1}) vs adaptive EOT-PGD {e}/255 (fakes only)",
                d["eot"][f"pgd/{e}"][v1],
            )
        )
    return "\n".join(lines)


def write_plots(report: dict, patch: np.ndarray, out_dir: Path) -> None:
    """evasion.png, processing.png, poisoning.png and patch.png (the patch alone, no face)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = report["config"]
    eps = cfg["eps"]
    d = report["defence"]
    v1 = f"views={cfg['defence_views'][0]}"
    fig, ax = plt.subplots(figsize=(6, 4))
    series = {
        "white-box FGSM": [report["whitebox"][f"fgsm/{e}"]["acc_fake"] for e in eps],
        "white-box PGD": [report["whitebox"][f"pgd/{e}"]["acc_fake"] for e in eps],
        "transfer PGD": [report["transfer"][f"pgd/{e}"]["acc_fake"] for e in eps],
        f"purified ({v1}), white-box PGD made without it": [
            d[v1][f"whitebox pgd/{e}"]["acc_fake"] for e in eps
        ],
        f"purified ({v1}), transfer PGD": [d[v1][f"transfer pgd/{e}"]["acc_fake"] for e in eps],
    }
    for name, ys in series.items():
        ax.plot(eps, ys, marker="o", label=name)
    eot = [(e, d["eot"][f"pgd/{e}"][v1]["acc_fake"]) for e in cfg["eot_eps"]]
    ax.plot([e for e, _ in eot], [a for _, a in eot], "k^--", label=f"purified ({v1}), EOT-PGD")
    ax.axhline(report["whitebox"]["clean"]["acc_fake"], color="grey", ls=":", label="clean")
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set(
        xticks=eps,
        xticklabels=[f"{e}/255" for e in eps],
        ylim=(-0.02, 1.02),
        xlabel="L-inf eps",
        ylabel="held-out fakes called FAKE",
        title="Evasion (test split, threshold from val)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "evasion.png", dpi=110)
    plt.close(fig)

    proc = report["processing"]
    names = list(proc)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    pos = np.arange(len(names))
    ax.bar(pos - 0.27, [proc[n]["acc_fake"] for n in names], 0.27, label="acc. on fakes")
    ax.bar(pos, [proc[n]["acc_real"] for n in names], 0.27, label="acc. on reals")
    ax.bar(pos + 0.27, [proc[n]["auc"] for n in names], 0.27, label="AUC")
    ax.set_xticks(pos, names, rotation=35, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), title="Ordinary processing of the crops")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out_dir / "processing.png", dpi=110)
    plt.close(fig)

    runs = report["poisoning"]["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    flips = [r for r in runs.values() if r["kind"] in ("clean", "label flip")]
    axes[0].plot([100 * r["rate"] for r in flips], [r["auc"] for r in flips], "o-", label="AUC")
    axes[0].plot(
        [100 * r["rate"] for r in flips], [r["accuracy"] for r in flips], "s-", label="accuracy"
    )
    axes[0].set(xlabel="training labels flipped (%)", title="Label flipping (test split)")
    axes[0].legend(fontsize=8)
    bds = [runs["clean"]] + [r for r in runs.values() if r["kind"] == "backdoor"]
    axes[1].bar([f"{100 * r['rate']:.0f}%" for r in bds], [r["trigger_success"] for r in bds])
    axes[1].set(
        xlabel="training fakes stamped + labelled REAL",
        ylim=(0, 1),
        title="Backdoor: triggered fakes called REAL",
    )
    fig.tight_layout()
    fig.savefig(out_dir / "poisoning.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(2.2, 2.4))
    ax.imshow(np.transpose(patch, (1, 2, 0)))
    ax.set(title=f"patch {patch.shape[-1]} px", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(out_dir / "patch.png", dpi=110)
    plt.close(fig)


def write_markdown(report: dict, out_dir: Path) -> None:
    """report.md: method, tables and timings, every figure from ``report``."""
    cfg, d, pois = report["config"], report["defence"], report["poisoning"]
    t = report["timings_s"]
    views = cfg["defence_views"]
    md = [
        "# Robustness of the shipped detector",
        "",
        f"Checkpoint `{cfg['checkpoint']}` (version {report['checkpoint_version']}, input "
        f"{report['input_size']} px, threshold P(FAKE) >= {report['threshold']:.4f}). Command: "
        f"`{report['command']}`. Device: {report['device']} ({report['machine']}); the run took "
        f"**{t['total'] / 60:.1f} min**.",
        "",
        "All data are held-out: the `test` split of `training/data.py` (salt rrr-split-v1, by "
        "source video), balanced real/fake, evenly spaced through each class. Every score goes "
        "through `Detector.score` (the service's inference path) on uint8 crops. Attacks work in "
        f"[0, 1] pixel space of the crop at the model's input size ({report['input_size']} px); "
        "the ImageNet normalisation is inside a differentiable wrapper (`training/attacks.py: "
        "PixelModel`). Adversarial images are rounded to whole grey levels before scoring (an "
        "L-inf ball around a uint8 image stays inside eps when rounded). *Attack success* = share "
        "of the fakes called FAKE when clean that are called REAL after the attack; accuracy on "
        "reals under attack means reals pushed towards FAKE.",
        "",
        "## 1-2, 6. Evasion, transfer and the defence",
        "",
        f"{report['sets']['attack']['n']} test crops ({report['sets']['attack']['fake']} fake). "
        f"FGSM: one step of eps. PGD: {cfg['pgd_steps']} steps of 2.5 * eps / "
        f"{cfg['pgd_steps']}, uniform random start in the eps-ball, untargeted cross-entropy on "
        "the true label, white-box against the shipped weights.",
        "",
        "Transfer (black-box): the same attacks made against a surrogate, "
        f"{report['transfer']['surrogate']}; surrogate's own clean AUC on the attack set "
        f"{_f(report['transfer']['surrogate_clean']['auc'])}; then given to the shipped model.",
        "",
        f"Defence: input purification (`detection/purify.py`): {d['transform']}.",
        "",
        evasion_table(report),
        "",
        "![evasion](evasion.png)",
        "",
        "Transfer attacks on the surrogate itself (sanity check that they are attacks):",
        "",
        HEAD,
        _row("surrogate, clean", report["transfer"]["surrogate_clean"]),
        *[_row(f"surrogate, {k}", v) for k, v in report["transfer"]["on_surrogate"].items()],
        "",
        "### Cost of the defence",
        "",
        "| views | acc. on fakes | acc. on reals | AUC | latency per crop (ms) |",
        "| --- | --- | --- | --- | --- |",
        f"| off | {_f(report['processing']['none']['acc_fake'], True)} | "
        f"{_f(report['processing']['none']['acc_real'], True)} | "
        f"{_f(report['processing']['none']['auc'])} | {d['latency_ms_per_crop']['0']} |",
        *[
            f"| {v} | {_f(d['clean'][f'views={v}']['acc_fake'], True)} | "
            f"{_f(d['clean'][f'views={v}']['acc_real'], True)} | "
            f"{_f(d['clean'][f'views={v}']['auc'])} | {d['latency_ms_per_crop'][str(v)]} |"
            for v in views
        ],
        "",
        f"On {report['sets']['clean']['n']} test crops ({report['sets']['clean']['fake']} fake); "
        "latency: best of 3 over 64 crops, purification + model, on this machine while other "
        "jobs shared the CPU.",
        "",
        "All attacks against the purified model, per number of views:",
        "",
        HEAD,
        *[_row(f"views={v}: {k}", m) for v in views for k, m in d[f"views={v}"].items()],
        "",
        f"Adaptive attacker (EOT over {d['eot']['samples']} draws of the purification per step, "
        f"JPEG passed straight through, {d['eot']['steps']} steps, "
        f"{d['eot']['attacked']}):",
        "",
        HEAD,
        *[
            _row(f"EOT-PGD {k}: {name}", m)
            for k, row in d["eot"].items()
            if isinstance(row, dict)
            for name, m in row.items()
        ],
        "",
        "## 3. Universal patch",
        "",
        f"A {report['patch']['side_px']} x {report['patch']['side_px']} px patch "
        f"({100 * report['patch']['area_fraction']:.1f}% of the crop) optimised with Adam "
        f"(lr 0.05, batch 16, {report['patch']['steps']} steps) towards REAL on "
        f"{report['patch']['train_fakes']} train-split fakes at random placements; tested at "
        f"random placements on {report['patch']['n_heldout_fakes']} held-out fakes, against a "
        "uniform-noise patch of the same size.",
        "",
        HEAD,
        *[_row(k, v) for k, v in report["patch"].items() if isinstance(v, dict)],
        "",
        "![patch](patch.png)",
        "",
        "## 4. Ordinary processing",
        "",
        f"Applied to the original 224 px crops ({report['sets']['clean']['n']} test crops), "
        "then scored as the service would (resize to the input size inside `preprocess`). "
        "'Attack success' here = detected fakes that the processing turned REAL.",
        "",
        HEAD,
        *[_row(k, v) for k, v in report["processing"].items()],
        "",
        "![processing](processing.png)",
        "",
    ]
    if "videos" in report:
        vids = report["videos"]
        names = list(vids)
        md += [
            f"Videos: the shared videos re-encoded with PyAV/libx264 (to a temporary folder) and "
            f"judged through the worker's path (`training/videos.py`, {cfg['sample_fps']} fps, "
            "face detection, the model, mean of per-frame max):",
            "",
            "| video | label | " + " | ".join(names) + " |",
            "| --- | --- | " + " | ".join("---" for _ in names) + " |",
        ]
        for i, r in enumerate(vids["original"]["results"]):
            cells = []
            for n in names:
                v = vids[n]["results"][i]
                p = v["probability_fake"]
                cells.append(
                    f"{v['prediction']} {p:.2f}" if p is not None else str(v["prediction"])
                )
            md.append(f"| {r['file']} | {r['label']} | " + " | ".join(cells) + " |")
        md.append(
            "| right | | "
            + " | ".join(f"{vids[n]['correct']}/{vids[n]['videos']}" for n in names)
            + " |"
        )
        md.append("")
    md += [
        "## 5. Poisoning",
        "",
        "Retraining B0 end to end takes ~70 min here, so every run uses one cheap schedule: the "
        "ImageNet Lite0 transplant (`training/init.py`) frozen up to `features[7]`, its features "
        "cached once (no augmentation), and only `features[8]` (1x1 conv 320->1280, BN) + the "
        f"classifier trained: AdamW lr 1e-3, weight decay 0.02, batch 64, "
        f"{pois['schedule']['epochs']} epochs, warm-up + cosine, label smoothing 0.05, on "
        f"{pois['n_train']} train-split crops; threshold by Youden's J on {pois['n_val']} "
        f"val-split crops; metrics on {pois['n_test']} test-split crops. Label flips: that "
        "share of training labels, both classes, uniformly at random. Backdoor: a "
        f"{cfg['trigger_side']} x {cfg['trigger_side']} px black/white checkerboard in the "
        "bottom-right corner stamped on that share of training fakes, labelled REAL. Trigger "
        "success = held-out fakes detected clean that the trigger turns REAL.",
        "",
        "| run | labels changed | test accuracy | AUC | acc. on fakes | acc. on reals | "
        "trigger success | train (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[
            f"| {k} | {r['changed']} | {_f(r['accuracy'], True)} | {_f(r['auc'])} | "
            f"{_f(r['acc_fake'], True)} | {_f(r['acc_real'], True)} | "
            f"{_f(r['trigger_success'], True)} | {r['train_seconds']} |"
            for k, r in pois["runs"].items()
        ],
        "",
        "![poisoning](poisoning.png)",
        "",
        "## Timings (s)",
        "",
        "| " + " | ".join(t) + " |",
        "| " + " | ".join("---" for _ in t) + " |",
        "| " + " | ".join(str(v) for v in t.values()) + " |",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(md))
