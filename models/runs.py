"""Checks before a run starts: the run folder (never overwritten by accident), resuming (the
checkpoint's settings, its epoch and the learning-rate schedule), and the split the rows come
from (rows left out of it, patients in two of train/val/test, no class contrast in val)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrbank.collection import Collection, Row
from models.data import DataError

# What a run folder holds; a folder with any of them holds a run.
RUN_FILES: tuple[str, ...] = ("run.json", "last.pt", "best.pt", "history.json")
# Settings a resumed run must share with its checkpoint, with the option that sets each.
RESUME_FIXED: dict[str, str] = {
    "arch": "--arch", "size": "--size", "normalization": "--normalization", "views": "--views",
    "modalities": "--modality", "labels": "--labels", "fold": "--fold", "release": "--release",
    "lr": "--lr", "batch_size": "--batch-size", "augment": "--no-augment", "seed": "--seed",
    "weight_decay": "weight_decay", "max_pos_weight": "max_pos_weight",
}


def cosine_factor(epoch: int, epochs: int) -> float:
    """The cosine schedule's learning-rate factor at the start of an epoch (0-based) of a run
    of `epochs` epochs, in closed form: a resumed run given more epochs continues correctly."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))


def check_run_folder(out: Path, resume: str | None, force: bool) -> None:
    """DataError when `out` holds a run that this one would overwrite: allowed only when
    resuming that run's own checkpoint, or with --force."""
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held or force:
        return
    if resume and Path(resume).resolve().parent == out.resolve():
        return
    try:
        release = json.loads((out / "run.json").read_text()).get("release")
        what = f"trained on release {release}" if release else "trained on the working collection"
    except (OSError, ValueError, AttributeError):
        what = ", ".join(held)
    raise DataError(f"{out} holds a run already ({what}): pass --force to replace it, "
                    f"--resume {out / 'last.pt'} to continue it, or --out DIR for a new run")


def clear_run_folder(out: Path) -> None:
    """Remove an earlier run's files (and its evaluations) from a folder --force replaces."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for stem in ("best", "last"):
        for path in out.glob(f"{stem}-*.metrics.json"):
            path.unlink(missing_ok=True)
        for path in out.glob(f"{stem}-*.model-card.md"):
            path.unlink(missing_ok=True)


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "(none)" if value is None else str(value)


def check_resume_settings(resume: str, state: dict[str, Any], asked: dict[str, Any]) -> None:
    """DataError naming the first setting this run asks that differs from the checkpoint's."""
    saved = state["config"]
    if saved.get("arch") != asked["arch"]:
        raise DataError(f"{resume} is a {saved.get('arch')} run, not {asked['arch']}")
    for name, option in RESUME_FIXED.items():
        if name == "labels":
            mine, theirs = asked["labels"], list(state["labels"])
            if mine is None or list(mine) == theirs:
                continue
        elif name not in saved:
            continue  # a checkpoint from before the setting existed
        else:
            mine, theirs = asked[name], saved[name]
            if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
                mine, theirs = list(mine), list(theirs)
            if mine == theirs:
                continue
        if name == "augment":
            mine, theirs = ("off" if not v else "on" for v in (mine, theirs))
        raise DataError(f"{resume} was trained with {option} {_shown(theirs)}; this run asks "
                        f"{_shown(mine)}: leave {option} out to continue that run with its own "
                        "settings, or start a new run (--init to start from its weights)")
    if int(state["epoch"]) >= int(asked["epochs"]):
        raise DataError(f"{resume} has trained {state['epoch']} epochs already; pass --epochs N "
                        f"with N > {state['epoch']} to train it further")


def check_split(collection: Collection, rows: list[Row], partition: Path) -> None:
    """DataError when the partition file leaves out rows its split was asked to place (rows
    added after `cxrbank split`) or puts one patient in several partitions."""
    from curation.release import ReleaseError, check_split_current  # noqa: PLC0415

    try:
        check_split_current(collection, rows, partition)
    except ReleaseError as exc:
        raise DataError(str(exc)) from None


def check_no_leak(splits: dict[str, list[Row]], fold: int | None) -> None:
    """DataError when one patient has images in two of train/val/test (e.g. over folds)."""
    where: dict[str, set[str]] = {}
    for name, rows in splits.items():
        for row in rows:
            pid = (row.get("patientid") or "").strip()
            if pid:
                where.setdefault(pid, set()).add(name)
    leaking = sorted(pid for pid, names in where.items() if len(names) > 1)
    if leaking:
        within = f" with --fold {fold}" if fold is not None else ""
        raise DataError(f"{len(leaking)} patient(s) have images in several of train/val/test"
                        f"{within} (first: {leaking[0]} in {', '.join(sorted(where[leaking[0]]))};"
                        " ids changed since the split): run `cxrbank split` first")


def check_val_contrast(
    labels: Sequence[str], positives: Sequence[float], negatives: Sequence[float], rows: int,
) -> list[str]:
    """Labels without both classes among the validation rows; DataError when no label has
    both (no validation AUC, so no epoch could be chosen as the best)."""
    flat = [label for label, p, n in zip(labels, positives, negatives, strict=True)
            if not (p > 0 and n > 0)]
    if len(flat) == len(labels):
        counts = "; ".join(f"{label}: {int(p)} positive, {int(n)} negative"
                           for label, p, n in zip(labels, positives, negatives, strict=True))
        raise DataError(f"the {rows} validation images hold no label with both positives and "
                        f"negatives ({counts[:300]}), so no epoch can be chosen as the best: "
                        "run `cxrbank split --rebalance` (or fewer --folds), or pick another "
                        "--fold or --labels")
    return flat
