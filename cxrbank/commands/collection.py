"""`cxrbank import`, `validate` and `stats`: adopting, checking and counting a collection."""

from __future__ import annotations

from pathlib import Path

import click

from cxrbank.collection import Collection, CollectionError
from cxrbank.commands.common import CxrbankError, emit_json, json_option, root_option, say


def open_collection(root: Path) -> Collection:
    """The collection at root, or one clear error."""
    try:
        return Collection.open(root)
    except CollectionError as exc:
        raise CxrbankError(str(exc)) from exc


@click.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--link", is_flag=True, help="Hard-link image files instead of copying them.")
@root_option
@json_option
def import_cmd(src: Path, link: bool, root: Path, as_json: bool) -> None:
    """Adopt a covid-chestxray-dataset checkout SRC (any version) into the collection at --root.

    Columns are mapped to cxrbank's schema, findings through the taxonomy, views normalised,
    sha256/width/height filled, images copied (or hard-linked with --link). Into a collection
    that has rows already, each upstream patient id gets its own id (the same on every
    re-import). Images `dedup --apply` removed are not put back. Every row that cannot be
    mapped is reported; exit 1 when some rows were not imported.
    """
    from cxrbank.upstream import UpstreamError, import_upstream

    collection = Collection.create(root)
    try:
        report = import_upstream(src, collection, link=link)
    except UpstreamError as exc:
        raise CxrbankError(str(exc)) from exc
    not_imported = [p for p in report.problems if "not imported" in p]
    if as_json:
        emit_json({
            "imported": report.imported,
            "already_present": report.already_present,
            "removed_earlier": report.removed_earlier,
            "patient_ids": report.patient_ids,
            "findings_mapped": report.findings_mapped,
            "problems": report.problems,
        })
    else:
        for problem in report.problems:
            say(problem)
        for old, new in sorted(report.findings_mapped.items()):
            say(f"finding {old!r} -> {new!r}")
        if report.patient_ids:
            say(f"{len(report.patient_ids)} upstream patient ids given this collection's own ids"
                " (it had rows already; kept in state as upstream:ID)")
        removed = (f", {report.removed_earlier} removed earlier as duplicates"
                   if report.removed_earlier else "")
        click.echo(f"imported {report.imported} rows into {collection.metadata_path}"
                   f" ({report.already_present} already present{removed},"
                   f" {len(not_imported)} not imported)")
    if not_imported:
        raise SystemExit(1)


@click.command("validate")
@click.option("--allow-pediatric", is_flag=True, help="Accept rows of patients under 18.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@root_option
@json_option
def validate_cmd(allow_pediatric: bool, strict: bool, root: Path, as_json: bool) -> None:
    """Check the collection: schema, vocabularies, files, patients, licences.

    Each problem is one line naming the row (its data-row number) and column. Exit 1 when
    there are errors (or warnings, with --strict).
    """
    from curation.validate import ERROR, Policy, validate_collection

    collection = open_collection(root)
    problems = validate_collection(collection, Policy(allow_pediatric=allow_pediatric))
    errors = sum(1 for p in problems if p.level == ERROR)
    warnings = len(problems) - errors
    if as_json:
        emit_json({
            "errors": errors,
            "warnings": warnings,
            "problems": [p.__dict__ for p in problems],
        })
    else:
        for problem in problems:
            click.echo(problem.line())
        rows = len(collection.read_rows())
        click.echo(f"{rows} rows: {errors} errors, {warnings} warnings")
    if errors or (strict and warnings):
        raise SystemExit(1)


@click.command("stats")
@root_option
@json_option
def stats_cmd(root: Path, as_json: bool) -> None:
    """The label table (as upstream's README prints it) and counts by modality, view, sex,
    source and licence, with the number of patients."""
    from curation.stats import collection_stats, format_stats

    stats = collection_stats(open_collection(root).read_rows())
    if as_json:
        emit_json(stats)
    else:
        click.echo(format_stats(stats))
