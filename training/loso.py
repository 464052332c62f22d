"""Leave-one-source-out: for each source of a staged table, train without it and test on it.

This is the test of generalisation the in-source test split cannot give: the hidden data a
deployed detector meets comes from generators and methods it never saw. Each fold is an ordinary
resumable training run under ``<out>/without-<source>``; a finished fold is not run again.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.generalisation import evaluate_checkpoint, markdown_table, tradeoff_table
from training.train import BEST, TrainConfig, train


def run_loso(
    table: Path,
    out: Path,
    sources: list[str],
    steps: int,
    init: str,
    fresh_init_for: tuple[str, ...] = (),
    threads: int = 2,
    val_every: int | None = None,
    max_minutes: float | None = None,
    batch_size: int = 32,
    freeze_blocks: int = 2,
    lr: float = 3e-4,
    warmup_steps: int = 50,
    self_blend: float = 0.0,
    input_size: int = 128,
    view: str = "face",
    small_faces: float = 0.0,
    max_reals_flagged: float | None = None,
) -> dict:
    """Run (or resume) every fold, then write ``loso.json`` and ``loso.md`` under ``out``.

    ``fresh_init_for``: folds whose left-out source the ``init`` checkpoint was trained on start
    from the ImageNet initialisation instead, so no fold has seen what it is tested on.
    """
    results: dict = {
        "table": str(table),
        "steps": steps,
        "init": init,
        "freeze_blocks": freeze_blocks,
        "self_blend": self_blend,
        "small_faces": small_faces,
        "max_reals_flagged": max_reals_flagged,
        "input_size": input_size,
        "view": view,
        "folds": {},
    }
    for source in sources:
        run_dir = out / f"without-{source.replace(':', '-')}"
        summary = run_dir / "summary.json"
        finished = summary.is_file() and json.loads(summary.read_text())["stopped"] == "finished"
        fold_init = "lite0" if source.partition(":")[0] in fresh_init_for else init
        if not finished:
            train(
                TrainConfig(
                    data_dir=str(table.parent),
                    labels_csv=str(table),
                    run_dir=str(run_dir),
                    steps=steps,
                    leave_out=[source],
                    init=fold_init,
                    threads=threads,
                    val_every=val_every or steps,
                    max_minutes=max_minutes,
                    batch_size=batch_size,
                    freeze_blocks=freeze_blocks,
                    lr=lr,
                    warmup_steps=warmup_steps,
                    self_blend=self_blend,
                    small_faces=small_faces,
                    input_size=input_size,
                    view=view,
                )
            )
            finished = json.loads(summary.read_text())["stopped"] == "finished"
        if not finished:
            results["folds"][source] = {"status": "unfinished: run the command again to resume"}
            continue
        report, _ = evaluate_checkpoint(
            run_dir / BEST,
            table,
            held_out=(source,),
            threads=threads,
            max_reals_flagged=max_reals_flagged,
        )
        report["init"] = fold_init
        (run_dir / "generalisation.json").write_text(json.dumps(report, indent=1))
        results["folds"][source] = report
    rows = [
        (f"without {source}", fold["sources"][source.partition(":")[0]])
        for source, fold in results["folds"].items()
        if "sources" in fold
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "loso.json").write_text(json.dumps(results, indent=1))
    (out / "loso.md").write_text(markdown_table(rows) + "\n" + tradeoff_table(rows))
    return results
