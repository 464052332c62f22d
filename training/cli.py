"""Command line for training and evaluation: ``train_command`` and ``eval_command`` (click)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

DEFAULT_DATA = "../shared/data/dfdc_faces"


def _invocation() -> str:
    """The command line as typed, e.g. ``python -m training.cli eval --split test``."""
    prog = Path(sys.argv[0])
    if prog.name == "cli.py":
        head = "python -m training.cli"
    elif prog.name == "__main__.py":
        head = f"python -m {prog.parent.name}"
    else:
        head = prog.name
    return " ".join([head, shlex.join(sys.argv[1:])])


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _checked_inputs(kwargs: dict[str, object]) -> tuple[Path, Path, Path]:
    """(checkpoint, data folder, labels CSV) from the options; exits with a reason if missing."""
    checkpoint = Path(str(kwargs["checkpoint"]))
    if not checkpoint.is_file():
        _fail(f"checkpoint not found: {checkpoint}")
    data_dir = Path(str(kwargs["data_dir"]))
    labels = Path(str(kwargs["labels_csv"] or data_dir / "labels.csv"))
    if not labels.is_file():
        _fail(f"labels CSV not found: {labels}")
    return checkpoint, data_dir, labels


# options shared by rrr train and rrr loso (a fold trains like rrr train)
SELF_BLEND_OPTION = click.option(
    "--self-blend",
    default=0.0,
    show_default=True,
    help="Share of each batch replaced by self-blended real faces: face-swap examples made "
    "from real faces alone (training/blend.py).",
)


SMALL_FACES_OPTION = click.option(
    "--small-faces",
    default=0.0,
    show_default=True,
    help="Share of each batch shrunk to a small face (24-64 px) first, whatever its label.",
)


MAX_REALS_FLAGGED_OPTION = click.option(
    "--max-reals-flagged",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Choose the threshold among those flagging at most this share of the real validation "
    "faces, averaged over the sources (e.g. 0.1) [default: no cap, best balanced accuracy].",
)


VIEW_OPTION = click.option(
    "--view",
    type=click.Choice(["face", "patch"]),
    default="face",
    show_default=True,
    help="What B0 sees of a crop: the whole face resized, or a native-resolution patch of it "
    "(detection.model.model_view).",
)


def freeze_blocks_option(default: int):
    return click.option(
        "--freeze-blocks",
        default=default,
        show_default=True,
        help="Keep B0's stem and this many first blocks fixed (cheaper CPU steps).",
    )


@click.command("train")
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder the labels CSV's file paths are relative to.",
)
@click.option(
    "--labels", "labels_csv", default=None, help="Labels CSV [default: <data>/labels.csv]."
)
@click.option(
    "--run-dir",
    default="runs/b0",
    show_default=True,
    help="Where checkpoints, logs and the split are written.",
)
@click.option("--epochs", default=6.0, show_default=True, help="Length of the LR schedule.")
@click.option("--input-size", default=128, show_default=True, help="Square crop side fed to B0.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=6e-4, show_default=True, help="Peak AdamW learning rate.")
@click.option("--weight-decay", default=0.02, show_default=True)
@click.option("--warmup-steps", default=200, show_default=True)
@click.option("--label-smoothing", default=0.05, show_default=True)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from <run-dir>/last.pt when it exists.",
)
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Stop cleanly after this many wall-clock minutes of this invocation "
    "(validated and resumable).",
)
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps.")
@click.option("--limit", type=int, default=None, help="At most this many images per split.")
@click.option("--val-every", type=int, default=None, help="Also validate every N steps.")
@click.option(
    "--init",
    default="lite0",
    show_default=True,
    help="'lite0' (ImageNet Lite0 transplant), 'none', or a checkpoint to start from.",
)
@click.option(
    "--steps", type=int, default=None, help="Run length in optimiser steps (overrides --epochs)."
)
@click.option(
    "--leave-out",
    multiple=True,
    help="Source of a staged table (rrr data) to train without, or SOURCE:fake for only its "
    "fakes; repeatable.",
)
@freeze_blocks_option(0)
@SELF_BLEND_OPTION
@SMALL_FACES_OPTION
@VIEW_OPTION
def train_command(**kwargs: object) -> None:
    """Fine-tune EfficientNet-B0 on face crops (group-disjoint split, best-by-val-AUC kept)."""
    from training.train import TrainConfig, train

    data_dir = Path(str(kwargs["data_dir"]))
    if not data_dir.is_dir():
        _fail(f"data folder not found: {data_dir}")
    labels = kwargs["labels_csv"] or data_dir / "labels.csv"
    if not Path(str(labels)).is_file():
        _fail(f"labels CSV not found: {labels}")
    init = str(kwargs["init"])
    if init not in ("lite0", "none") and not Path(init).is_file():
        _fail(f"--init checkpoint not found: {init}")
    try:
        kwargs["leave_out"] = list(kwargs["leave_out"])  # type: ignore[call-overload]
        summary = train(TrainConfig(**kwargs))  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    summary.pop("history", None)
    click.echo(json.dumps(summary, indent=1))


@click.command("eval")
@click.option(
    "--checkpoint",
    "checkpoint",
    default="weights/rrr-b0-v3.pt",
    show_default=True,
    help="Checkpoint to evaluate (ours or the prototype's).",
)
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder the labels CSV's file paths are relative to.",
)
@click.option(
    "--labels", "labels_csv", default=None, help="Labels CSV [default: <data>/labels.csv]."
)
@click.option(
    "--split",
    type=click.Choice(["test", "val", "all"]),
    default="test",
    show_default=True,
    help="Which group-split part to report on ('all': every row).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Fixed decision threshold [default: chosen on the validation split by "
    "Youden's J; the checkpoint's own threshold when there is no val split].",
)
@click.option(
    "--out-dir",
    default=None,
    help="Where metrics.json and PNGs go "
    "[default: eval/<checkpoint name> under the run folder, or runs/eval-<name>].",
)
@click.option(
    "--out",
    "export_path",
    default=None,
    help="Also write a shipped checkpoint here with the chosen threshold and metrics.",
)
@click.option("--version", default="1", show_default=True, help="Version stamped by --out.")
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--limit", type=int, default=None, help="At most this many images per split.")
@click.option(
    "--train-command",
    "train_cmd",
    default=None,
    help="Command that produced the checkpoint, recorded by --out.",
)
@click.option(
    "--videos",
    "videos_csv",
    default=None,
    help="Also judge the labelled videos in this CSV (columns file, label) through the "
    "worker's own code path: sampling, face detection, the model, aggregation.",
)
@click.option("--sample-fps", default=1.0, show_default=True, help="Video frames per second.")
@click.option(
    "--engine",
    type=click.Choice(["torch", "onnx"]),
    default="torch",
    show_default=True,
    help="Score with the checkpoint (torch) or the ONNX file beside it (onnx).",
)
@click.option(
    "--sampling",
    type=click.Choice(["exact", "keyframes"]),
    default="exact",
    show_default=True,
    help="Video frame sampling: the frame at each sample time, or "
    "the nearest keyframe at or before it (the fast mode).",
)
@click.option(
    "--table",
    default=None,
    help="A staged multi-source table (rrr data): report every source, fit "
    "calibration, threshold and unsure band on its validation split, run the "
    "re-encoding control; --out then ships the model with that decision rule.",
)
@click.option(
    "--held-out",
    multiple=True,
    help="With --table: sources the checkpoint never trained on (tested on all rows).",
)
@MAX_REALS_FLAGGED_OPTION
@click.option(
    "--loso",
    "loso_json",
    default=None,
    help="With --table --out: the loso.json of rrr loso, recorded in the model card.",
)
@click.option(
    "--partner",
    default=None,
    help="With --table: a second checkpoint (another view) scored together with --checkpoint; "
    "with --out it is shipped beside it.",
)
def eval_command(**kwargs: object) -> None:
    """Evaluate a checkpoint: threshold from val, metrics + ROC/confusion PNGs on the test split.

    With --table: per-source figures, calibration and the unsure trade-off instead."""
    from training.evaluate import evaluate

    if kwargs["table"]:
        _eval_table(kwargs)
        return

    checkpoint, data_dir, labels = _checked_inputs(kwargs)
    out_dir = kwargs["out_dir"] or Path("runs") / f"eval-{checkpoint.stem}"
    try:
        metrics = evaluate(
            checkpoint=checkpoint,
            data_dir=data_dir,
            labels_csv=labels,
            split=str(kwargs["split"]),
            out_dir=Path(str(out_dir)),
            threshold=kwargs["threshold"],
            threads=int(kwargs["threads"]),  # type: ignore[arg-type]
            limit=kwargs["limit"],
            export_path=kwargs["export_path"],  # type: ignore[arg-type]
            version=str(kwargs["version"]),
            train_command=kwargs["train_cmd"],  # type: ignore[arg-type]
            command=_invocation(),
            engine=str(kwargs["engine"]),
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if kwargs["videos_csv"]:
        from training.videos import analyzer_for, evaluate_videos

        videos_csv = Path(str(kwargs["videos_csv"]))
        if not videos_csv.is_file():
            _fail(f"videos CSV not found: {videos_csv}")
        judged = Path(str(kwargs["export_path"] or checkpoint))
        metrics["videos"] = evaluate_videos(
            videos_csv,
            analyzer_for(
                judged,
                threads=int(kwargs["threads"]),  # type: ignore[arg-type]
                engine=str(kwargs["engine"]),
            ),
            sample_fps=float(kwargs["sample_fps"]),  # type: ignore[arg-type]
            sampling=str(kwargs["sampling"]),
        )
        (Path(str(out_dir)) / "videos.json").write_text(json.dumps(metrics["videos"], indent=1))
    click.echo(json.dumps(metrics, indent=1))


def _eval_table(kwargs: dict[str, object]) -> None:
    from training.generalisation import evaluate_checkpoint, export_model, write_report

    checkpoint, table = Path(str(kwargs["checkpoint"])), Path(str(kwargs["table"]))
    for path, what in ((checkpoint, "checkpoint"), (table, "staged table")):
        if not path.is_file():
            _fail(f"{what} not found: {path}")
    partner = Path(str(kwargs["partner"])) if kwargs["partner"] else None
    if partner is not None and not partner.is_file():
        _fail(f"partner checkpoint not found: {partner}")
    report, fitted = evaluate_checkpoint(
        checkpoint,
        table,
        held_out=tuple(kwargs["held_out"]),  # type: ignore[arg-type]
        threads=int(kwargs["threads"]),  # type: ignore[arg-type]
        partner=partner,
        max_reals_flagged=kwargs["max_reals_flagged"],  # type: ignore[arg-type]
    )
    report["command"] = _invocation()
    out_dir = Path(str(kwargs["out_dir"] or Path("runs") / f"eval-{checkpoint.stem}"))
    write_report(report, out_dir, checkpoint.stem)
    click.echo((out_dir / "generalisation.md").read_text())
    if kwargs["export_path"]:
        staging = table.parent / "staging.json"
        loso = Path(str(kwargs["loso_json"])) if kwargs["loso_json"] else None
        side = export_model(
            checkpoint,
            fitted,
            report,
            Path(str(kwargs["export_path"])),
            str(kwargs["version"]),
            {"train": str(kwargs["train_cmd"] or ""), "evaluate_and_export": _invocation()},
            json.loads(staging.read_text()) if staging.is_file() else None,
            json.loads(loso.read_text()) if loso and loso.is_file() else None,
            partner=partner,
        )
        click.echo(
            f"wrote {kwargs['export_path']} (sha256 {side['sha256'][:12]}...); "
            "write its ONNX file with rrr export"
        )


@click.command("loso")
@click.option(
    "--table", default="runs/data/labels.csv", show_default=True, help="Staged table (rrr data)."
)
@click.option(
    "--out",
    "out_dir",
    default="runs/loso",
    show_default=True,
    help="One run folder per fold, then loso.json and loso.md.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Source to leave out, or SOURCE:fake to leave out only its fakes (an unseen "
    "generator beside real photos that were seen); repeatable [default: every source].",
)
@click.option("--steps", default=900, show_default=True, help="Optimiser steps per fold.")
@click.option("--input-size", default=128, show_default=True, help="Square crop side fed to B0.")
@click.option("--lr", default=3e-4, show_default=True, help="Peak AdamW learning rate.")
@click.option("--warmup-steps", default=50, show_default=True)
@click.option(
    "--init",
    default="weights/rrr-b0-v1.pt",
    show_default=True,
    help="Checkpoint every fold starts from ('lite0' for ImageNet).",
)
@click.option(
    "--fresh-init-for",
    multiple=True,
    default=("dfdc",),
    show_default=True,
    help="Folds that start from ImageNet (lite0) instead, because --init was trained "
    "on their source.",
)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Per fold: stop cleanly after this long; run again to resume.",
)
@freeze_blocks_option(2)
@SELF_BLEND_OPTION
@SMALL_FACES_OPTION
@VIEW_OPTION
@MAX_REALS_FLAGGED_OPTION
def loso_command(**kwargs: object) -> None:
    """Leave-one-source-out: train without each source, test on it; prints the table."""
    from training.data import read_labels
    from training.loso import run_loso

    table = Path(str(kwargs["table"]))
    if not table.is_file():
        _fail(f"staged table not found: {table} (make it with rrr data)")
    sources = list(kwargs["sources"]) or sorted({s.source for s in read_labels(table)})
    results = run_loso(
        table,
        Path(str(kwargs["out_dir"])),
        sources,
        int(kwargs["steps"]),  # type: ignore[arg-type]
        str(kwargs["init"]),
        tuple(kwargs["fresh_init_for"]),  # type: ignore[arg-type]
        threads=int(kwargs["threads"]),
        max_minutes=kwargs["max_minutes"],  # type: ignore[arg-type]
        freeze_blocks=int(kwargs["freeze_blocks"]),  # type: ignore[arg-type]
        lr=float(kwargs["lr"]),  # type: ignore[arg-type]
        warmup_steps=int(kwargs["warmup_steps"]),  # type: ignore[arg-type]
        self_blend=float(kwargs["self_blend"]),  # type: ignore[arg-type]
        small_faces=float(kwargs["small_faces"]),  # type: ignore[arg-type]
        input_size=int(kwargs["input_size"]),  # type: ignore[arg-type]
        view=str(kwargs["view"]),
        max_reals_flagged=kwargs["max_reals_flagged"],  # type: ignore[arg-type]
    )
    click.echo((Path(str(kwargs["out_dir"])) / "loso.md").read_text())
    unfinished = [s for s, f in results["folds"].items() if "sources" not in f]
    if unfinished:
        _fail(f"unfinished folds: {', '.join(unfinished)}; run the same command to resume")


@click.command("robustness")
@click.option(
    "--checkpoint",
    default="weights/rrr-b0-v3.pt",
    show_default=True,
    help="The checkpoint to attack (the shipped weights by default).",
)
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder the labels CSV's file paths are relative to.",
)
@click.option(
    "--labels", "labels_csv", default=None, help="Labels CSV [default: <data>/labels.csv]."
)
@click.option(
    "--out",
    "out_dir",
    default="docs/robustness",
    show_default=True,
    help="Where report.md, report.json and the PNGs go.",
)
@click.option(
    "--videos",
    "videos_csv",
    default="../shared/data/videos/labels.csv",
    show_default=True,
    help="Labelled videos to re-encode and judge ('' to skip).",
)
@click.option("--quick", is_flag=True, help="Tiny sizes: a smoke run of every section.")
@click.option(
    "--n-attack",
    type=int,
    default=None,
    help="Held-out crops for the white-box/transfer attacks [default 120].",
)
@click.option(
    "--n-clean",
    type=int,
    default=None,
    help="Held-out crops for processing, patch and defence cost [default 400].",
)
@click.option("--pgd-steps", type=int, default=None, help="PGD steps [default 8].")
@click.option(
    "--poison-train",
    type=int,
    default=None,
    help="Train-split crops per poisoning run [default 4000].",
)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--seed", default=0, show_default=True)
def robustness_command(**kwargs: object) -> None:
    """Attack the detector (evasion, transfer, patch, processing, poisoning) and measure the
    input-purification defence on the held-out test split; writes a Markdown/JSON/PNG report."""
    from training.robustness import RobustnessConfig, quick_config, run

    checkpoint, data_dir, labels = _checked_inputs(kwargs)
    videos = str(kwargs["videos_csv"] or "")
    if videos and not Path(videos).is_file():
        _fail(f"videos CSV not found: {videos} (pass --videos '' to skip the videos)")
    options = {
        "checkpoint": str(checkpoint),
        "data_dir": str(data_dir),
        "labels_csv": str(labels),
        "out_dir": str(kwargs["out_dir"]),
        "videos_csv": videos or None,
        "threads": int(kwargs["threads"]),
        "seed": int(kwargs["seed"]),  # type: ignore[arg-type]
    }
    for key in ("n_attack", "n_clean", "pgd_steps", "poison_train"):
        if kwargs[key] is not None:
            options[key] = int(kwargs[key])  # type: ignore[arg-type]
    cfg = quick_config(**options) if kwargs["quick"] else RobustnessConfig(**options)
    try:
        report = run(cfg, command=_invocation())
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(
        f"report: {Path(cfg.out_dir) / 'report.md'} ({report['timings_s']['total'] / 60:.1f} min)"
    )


@click.command("data")
@click.option(
    "--dfdc",
    default=DEFAULT_DATA,
    show_default=True,
    help="DFDC face crops folder ('' to leave the source out).",
)
@click.option(
    "--lfw-swap",
    default=None,
    help="Copy of Rees451/faces-fake-vs-real (only data/raw/LFW_faceswap is read).",
)
@click.option("--sdfd", default=None, help="Copy of gebaltso/SDFD (allImages/ is read).")
@click.option(
    "--stylegan2",
    default=None,
    help="Copy of dinablachman/realorfake (data/real, data/fake are read).",
)
@click.option(
    "--out",
    "out_dir",
    default="runs/data",
    show_default=True,
    help="Where crops/, labels.csv and staging.json are written.",
)
@click.option("--workers", default=2, show_default=True, help="Processes staging images.")
@click.option("--limit", type=int, default=None, help="At most this many images per source.")
def data_command(**kwargs: object) -> None:
    """Stage the training sources into one table of face crops (labels.csv): every image goes
    through the service's face path; sources whose classes differ in format are re-encoded
    alike first."""
    from tqdm import tqdm

    from training.sources import stage

    roots = {
        name: Path(str(kwargs[option]))
        for name, option in (
            ("dfdc", "dfdc"),
            ("lfw_swap", "lfw_swap"),
            ("sd21", "sdfd"),
            ("stylegan2", "stylegan2"),
        )
        if kwargs[option]
    }
    if not roots:
        _fail("no source given")
    bar = tqdm(desc="stage", unit="img", mininterval=5)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = stage(
            roots,
            Path(str(kwargs["out_dir"])),
            workers=int(kwargs["workers"]),  # type: ignore[arg-type]
            limit=kwargs["limit"],
            progress=progress,
        )  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    bar.close()
    click.echo(json.dumps({k: report[k] for k in ("rows", "counts", "skipped")}, indent=1))


@click.command("unfamiliar")
@click.option("--checkpoint", required=True, help="A checkpoint that never saw --held-out.")
@click.option(
    "--table", default="runs/data/labels.csv", show_default=True, help="Staged table (rrr data)."
)
@click.option(
    "--held-out",
    "held_out",
    multiple=True,
    required=True,
    help="A source the checkpoint did not train on; repeatable.",
)
@click.option("--out", "out_path", default=None, help="Also write the report here (JSON).")
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
def unfamiliar_command(**kwargs: object) -> None:
    """Study: do distance scores mark the faces of sources a model never saw?"""
    import torch

    from training.unfamiliar import markdown, study

    torch.set_num_threads(int(kwargs["threads"]))  # type: ignore[arg-type]
    report = study(str(kwargs["checkpoint"]), str(kwargs["table"]), tuple(kwargs["held_out"]))  # type: ignore[arg-type]
    if kwargs["out_path"]:
        Path(str(kwargs["out_path"])).write_text(json.dumps(report, indent=1))
    click.echo(markdown(report))


@click.group()
def _main() -> None:
    """Training tools (until they are registered as ``rrr train`` / ``rrr eval``)."""


_main.add_command(data_command)
_main.add_command(train_command)
_main.add_command(loso_command)
_main.add_command(eval_command)
_main.add_command(robustness_command)
_main.add_command(unfamiliar_command)

if __name__ == "__main__":
    _main()
