"""`cxrbank split`: patient-level train/val/test partitions and k folds in splits/."""

from __future__ import annotations

from pathlib import Path

import click

from cxrbank.commands.common import (
    EXIT_PARTIAL,
    CxrbankError,
    emit_json,
    json_option,
    root_option,
    say,
    say_error,
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _settings(ratios: str, folds: int, seed: int, by: str, views: str, modality: str):
    """SplitSettings from the options; a bad value is a usage error (exit 2)."""
    from curation.split import SplitError, SplitSettings, parse_ratios
    from cxrbank.schema import MODALITIES, VIEWS, normalize_modality, normalize_view

    view_names = []
    for view in _names(views):
        if not normalize_view(view):
            raise click.BadParameter(f"{view!r} is not one of {', '.join(VIEWS)}", param_hint="--views")
        view_names.append(normalize_view(view))
    if modality and not normalize_modality(modality):
        raise click.BadParameter(f"{modality!r} is not one of {', '.join(MODALITIES)}", param_hint="--modality")
    try:
        return SplitSettings(
            ratios=parse_ratios(ratios), folds=folds, seed=seed, by=_names(by),
            views=tuple(view_names), modality=normalize_modality(modality),
        )
    except SplitError as exc:
        raise click.UsageError(str(exc)) from exc


@click.command("split")
@click.option("--ratios", default="60,20,20", show_default=True,
              help="train,val,test shares; each must be a whole number of folds.")
@click.option("--folds", default=10, show_default=True, type=click.IntRange(min=2),
              help="Cross-validation folds over all patients; partitions are unions of folds.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the tie-breaking order.")
@click.option("--by", default="finding,sex,source", show_default=True,
              help="What to balance: 'finding' (labels of the finding hierarchy) and/or columns.")
@click.option("--views", default="", help="Only these views, e.g. PA,AP (default: all).")
@click.option("--modality", default="", help="Only this modality, X-ray or CT (default: all).")
@click.option("--rebalance", is_flag=True,
              help="Recompute every patient's place instead of keeping the previous split's.")
@root_option
@json_option
def split_cmd(ratios: str, folds: int, seed: int, by: str, views: str, modality: str,
              rebalance: bool, root: Path, as_json: bool) -> None:
    """Partition the collection by patient into train/val/test and k folds, in splits/.

    Every image of a patient lands in one partition and one fold, balanced for each label,
    sex and source. Patients of an earlier splits/partition.tsv keep their partition and fold
    (a test patient never moves to training); new patients are placed to keep the balance.
    Writes partition.tsv, counts.tsv, labels.tsv and balance.json; exit 1 when some rows
    could not be split (each said in one line; the rest are split).
    """
    from curation.balance import PARTITIONS
    from curation.split import SplitError, split_collection
    from cxrbank.collection import CollectionError

    settings = _settings(ratios, folds, seed, by, views, modality)
    try:
        split, document = split_collection(root, settings, rebalance=rebalance)
    except (SplitError, CollectionError) as exc:
        raise CxrbankError(str(exc)) from exc
    view = split.view()
    partition = view.partition
    sizes = {
        name: {
            "patients": len(set(view.patient[partition == i].tolist())),
            "images": int((partition == i).sum()),
        }
        for i, name in enumerate(PARTITIONS)
    }
    for problem in split.problems:
        say_error(problem)
    if as_json:
        emit_json({
            "patients": document["patients"], "images": document["images"], "folds": settings.folds,
            "partitions": sizes, "kept_patients": split.kept, "placed_patients": split.placed,
            "moved_patients": split.moved if rebalance else {}, "ld": document["ld"],
            "ld_patients": document["ld_patients"], "patient_overlap": document["patient_overlap"],
            "zero_positive_folds": document["zero_positive_folds"],
            "empty_folds": document["empty_folds"], "split_hash": document["split_hash"], "problems": split.problems,
        })
    else:
        parts = ", ".join(f"{n} {s['patients']} patients/{s['images']} images" for n, s in sizes.items())
        click.echo(f"split {document['images']} images of {document['patients']} patients: {parts}; "
                   f"{settings.folds} folds")
        if rebalance:
            moved = split.moved
            click.echo(f"rebalanced: {moved['fold']} patients changed fold, {moved['partition']} "
                       f"changed partition, {moved['left_test']} left test "
                       f"({moved['test_to_train']} into train)")
        elif split.kept:
            click.echo(f"kept {split.kept} patients in place, placed {split.placed} new")
        if split.moved.get("merged"):
            say(f"{split.moved['merged']} patients were in several partitions before (merged ids);"
                " each now keeps its most held-out one")
        overlap = sum(document["patient_overlap"].values())
        zero = document["zero_positive_folds"]
        click.echo(f"LD {document['ld']['folds']:.4f} over folds, {document['ld']['partitions']:.4f} "
                   f"over partitions; patient overlap {overlap}; labels with an empty fold: "
                   f"{', '.join(sorted(zero)) or 'none'}")
        if document["empty_folds"]:
            say(f"folds with no patient: {', '.join(map(str, document['empty_folds']))} (too few "
                "patients for this many folds; fewer --folds balances better)")
        click.echo(f"wrote {Path(root) / 'splits'} (split {document['split_hash'][:12]})")
    if split.problems:
        raise SystemExit(EXIT_PARTIAL)
