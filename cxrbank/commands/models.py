"""`cxrbank train` and `cxrbank evaluate`: thin commands over models/ (torch loads only here)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from cxrbank.commands.common import (
    CxrbankError,
    emit_json,
    is_terminal,
    json_option,
    root_option,
    say,
)

ARCH_CHOICES = ("densenet121", "resnet50", "tiny")


def _progress(items: Iterable[Any], length: int, label: str) -> Iterator[Any]:
    """A progress bar per epoch on a terminal; nothing extra in logs (epoch lines say it all)."""
    if not is_terminal():
        yield from items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield from bar


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("train")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="densenet121", show_default=True)
@click.option("--size", type=click.IntRange(16, 2048), default=224, show_default=True,
              help="Image side in pixels (images are centre-cropped and cached at this size).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto",
              show_default=True)
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Validate on fold K of the split (train on the other folds).")
@click.option("--init", "init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from these weights (a checkpoint or state dict; name+shape matched).")
@click.option("--trust-init", is_flag=True,
              help="Allow --init to unpickle a whole model (e.g. torchxrayvision .pt files).")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue a run from its last.pt.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory [default: ROOT/runs/ARCH, or ARCH-foldK; with --resume, the "
                   "checkpoint's folder].")
@click.option("--force", is_flag=True, help="Replace the run already in the run directory.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--views", default="PA,AP,AP Supine,AP Erect", show_default=True,
              help="Comma-separated views to keep; * for all.")
@click.option("--modality", default="X-ray", show_default=True,
              help="Comma-separated modalities to keep; * for all.")
@click.option("--labels", default=None,
              help="Comma-separated labels [default: every label in the training rows].")
@click.option("--normalization", type=click.Choice(("unit", "xrv")), default="unit",
              show_default=True, help="xrv: torchxrayvision's [-1024, 1024] (for its weights).")
@click.option("--no-augment", is_flag=True, help="No random affine augmentation.")
@click.option("--patience", type=click.IntRange(1), default=5, show_default=True,
              help="Stop after this many epochs without a better validation AUC.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--release", "release", default=None, metavar="VERSION",
              help="Train on exactly this release's rows and split (releases/VERSION).")
@root_option
@json_option
def train_cmd(
    arch: str, size: int, epochs: int, batch_size: int, lr: float, device: str,
    fold: int | None, init: Path | None, trust_init: bool, resume: Path | None,
    out: Path | None, force: bool, compile_: bool, views: str, modality: str,
    labels: str | None, normalization: str, no_augment: bool, patience: int, seed: int,
    release: str | None, root: Path, as_json: bool,
) -> None:
    """Train a classifier on the collection's split; best checkpoint by validation mean AUC.
    With --resume, the options not given are the checkpoint's; one given differently is refused."""
    try:
        from models.data import DataError  # torch loads only here
        from models.evaluate import plain_json
        from models.nets import WeightsError
        from models.train import LabelChoiceError, TrainConfig, train
    except ImportError as exc:
        raise CxrbankError(f"training needs torch: pip install 'cxrbank[train]' ({exc})") from exc
    if release:
        _check_release_name(release)
    values = {
        "arch": arch, "size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "fold": fold, "views": _csv(views), "modalities": _csv(modality),
        "labels": _csv(labels) if labels else None, "normalization": normalization,
        "augment": not no_augment, "patience": patience, "seed": seed, "release": release,
    }
    try:
        if resume:
            values.update(_resumed_defaults(resume))
        name = values["arch"] if values["fold"] is None else f"{values['arch']}-fold{values['fold']}"
        default_out = resume.parent if resume else root / "runs" / name
        config = TrainConfig(
            root=str(root), device=device, init=str(init) if init else None,
            trust_init=trust_init, resume=str(resume) if resume else None,
            out=str(out or default_out), compile=compile_, force=force,
            **{k: v for k, v in values.items() if k != "release"},
        )
        if values["release"]:
            config.use_release(values["release"])
        result = train(config, log=say, progress=_progress)
    except LabelChoiceError as exc:
        raise click.BadParameter(str(exc), param_hint="'--labels'") from None
    except (DataError, WeightsError, ValueError, OSError, RuntimeError) as exc:
        raise CxrbankError(_one_line(exc)) from exc
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    summary = {
        "out": str(result.out), "best_checkpoint": str(result.out / "best.pt"),
        "best_val_mean_auc": result.best_score, "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
        "labels": result.labels, "images_decoded": result.decoded,
        "images_from_cache": result.reused, "left_out": result.left_out,
        "init": None if result.init is None else {
            "path": result.init.path, "loaded": len(result.init.loaded),
            "skipped": [f"{k}: {why}" for k, why in result.init.skipped],
            "missing": result.init.missing,
            "adapted": [f"{k}: {how}" for k, how in result.init.adapted],
        },
        "history": result.history,
    }
    if as_json:
        emit_json(plain_json(summary))
    else:
        click.echo(
            f"best validation mean AUC {result.best_score:.4f} at epoch {result.best_epoch}; "
            f"checkpoint {result.out / 'best.pt'}"
        )


@click.command("evaluate")
@click.argument("checkpoint", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--compare", nargs=2, default=None, metavar="OLD NEW",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Per-label AUC change between two releases' models on NEW's release test split.")
@click.option("--release", default=None, metavar="VERSION",
              help="Evaluate on this release's frozen rows and split [default: the release "
                   "the model trained on, else the working collection]; on another one, the "
                   "model's training patients are left out and results go to *-on-VERSION.*")
@click.option("--split", type=click.Choice(("train", "val", "test")), default="test",
              show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Probability threshold for sensitivity and specificity.")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto",
              show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where metrics JSON and the model card go [default: beside the checkpoint].")
@root_option
@json_option
def evaluate_cmd(
    checkpoint: Path | None, compare: tuple[Path, Path] | None, release: str | None, split: str,
    threshold: float, bootstrap: int, device: str, out: Path | None, root: Path, as_json: bool,
) -> None:
    """Per-label AUC, sensitivity/specificity, bootstrap intervals, per-source results and a
    model card for CHECKPOINT on a split of the collection; or, with --compare OLD NEW, the
    per-label AUC change between two releases' models."""
    if (checkpoint is None) == (compare is None):
        raise click.UsageError("give a CHECKPOINT or --compare OLD NEW")
    if release:
        _check_release_name(release)
    try:
        from models.compare import compare_checkpoints
        from models.data import DataError  # torch loads only here
        from models.evaluate import evaluate_checkpoint
    except ImportError as exc:
        raise CxrbankError(f"evaluation needs torch: pip install 'cxrbank[train]' ({exc})") from exc
    if compare is not None:
        try:
            result = compare_checkpoints(compare[0], compare[1], root, split, bootstrap, device,
                                         warn=_warn)
        except (DataError, ValueError, OSError, RuntimeError) as exc:
            raise CxrbankError(f"--compare: {exc}") from exc
        if as_json:
            emit_json(result)
            return
        click.echo(f"{split} split of release {result['release'] or '(working collection)'}:"
                   f" {result['rows']} images")
        excluded = result["excluded"]
        if excluded and excluded["rows"]:
            click.echo(f"  left out {excluded['rows']} images of {excluded['patients']} patients"
                       f" {excluded['why']}")
        click.echo(f"  mean AUC {_num(result['old']['mean_auc'])} ({result['old']['release']})"
                   f" -> {_num(result['new']['mean_auc'])} ({result['new']['release']})")
        for label, r in result["labels"].items():
            change = "n/a" if r["change"] is None else f"{r['change']:+.3f}"
            click.echo(f"  {label}: {_num(r['old_auc'])} -> {_num(r['new_auc'])} ({change})")
        return
    assert checkpoint is not None
    try:
        report = evaluate_checkpoint(
            checkpoint, root=root, split=split, threshold=threshold, rounds=bootstrap,
            device=device, out_dir=out, release=release, warn=_warn,
        )
    except (DataError, ValueError, OSError, RuntimeError) as exc:
        message = str(exc)
        prefix = "" if message.startswith(f"{checkpoint}: ") else f"{checkpoint}: "
        raise CxrbankError(prefix + message) from exc
    if as_json:
        emit_json(report)
        return
    click.echo(f"{split}: {report['rows']} images, mean AUC {_num(report['mean_auc'])}")
    for label, r in report["labels"].items():
        low, high = r["auc_ci95"]
        click.echo(
            f"  {label}: AUC {_num(r['auc'])} (95% CI {_num(low)}-{_num(high)}), n={r['n']}, "
            f"sensitivity {_num(r['sensitivity'])}, specificity {_num(r['specificity'])} "
            f"at {threshold}"
        )
    click.echo(f"metrics and model card beside {out or checkpoint.parent}")


# option name in train_cmd -> the TrainConfig field it sets (resume takes unset ones from there)
_RESUMED = {"arch": "arch", "size": "size", "epochs": "epochs", "batch_size": "batch_size",
            "lr": "lr", "fold": "fold", "views": "views", "modality": "modalities",
            "labels": "labels", "normalization": "normalization", "no_augment": "augment",
            "patience": "patience", "seed": "seed", "release": "release"}


def _resumed_defaults(resume: Path) -> dict[str, Any]:
    """The checkpoint's settings for every option of this command line left at its default;
    its labels are the ones it trained on (its `labels` entry: checkpoints written by an
    earlier --resume carry other labels in their config)."""
    from click.core import ParameterSource  # noqa: PLC0415

    from models.checkpoints import load_checkpoint  # noqa: PLC0415

    state = load_checkpoint(resume)
    saved = {**state["config"], "labels": list(state["labels"])}
    context = click.get_current_context()
    taken = {}
    for option, key in _RESUMED.items():
        if context.get_parameter_source(option) == ParameterSource.DEFAULT and key in saved:
            value = saved[key]
            taken[key] = tuple(value) if isinstance(value, list) else value
    return taken


def _warn(message: str) -> None:
    say(f"Warning: {message}")


def _check_release_name(version: str) -> None:
    from curation.release import ReleaseError, check_version  # noqa: PLC0415

    try:
        check_version(version)
    except ReleaseError:
        raise click.BadParameter(f"{version!r} is not a release name (e.g. v0.1, 1.2.0-rc1)",
                                 param_hint="'--release'") from None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
