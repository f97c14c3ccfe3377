"""`cxrbank dedup`, `labels` and `relabel`: duplicates found and removed, labels listed and fixed."""

from __future__ import annotations

from pathlib import Path

import click

from cxrbank.collection import Collection, CollectionError
from cxrbank.commands.common import (
    EXIT_PARTIAL,
    CxrbankError,
    emit_json,
    is_terminal,
    json_option,
    root_option,
    say,
    say_error,
)


def _open(root: Path) -> Collection:
    try:
        return Collection.open(root)
    except CollectionError as exc:
        raise CxrbankError(str(exc)) from exc


def _group_json(report, group) -> dict:
    rows = report.rows
    return {
        "keep": rows[group.keep]["filename"],
        "drop": [rows[i]["filename"] for i in group.drop],
        "reason": group.reason,
        "kinds": group.kinds,
        "patients": group.patients,
        "relation": group.relation,
        "relation_why": group.relation_why,
    }


def _held_json(report, match) -> dict:
    a, b = report.rows[match.a], report.rows[match.b]
    return {
        "files": [a["filename"], b["filename"]],
        "patient": a["patientid"],
        "days": [a["offset"] or a["date"], b["offset"] or b["date"]],
        "score": match.score,
        "why": "near-identical images of one patient on different days: not merged; check"
               " that each is the study its row says",
    }


def _find(collection: Collection, quiet: bool):
    from curation.dedup import find_duplicates

    if quiet or not is_terminal():
        return find_duplicates(collection)
    total = len(collection.read_rows())
    with click.progressbar(length=total, label="fingerprints", file=click.get_text_stream("stderr")) as bar:
        return find_duplicates(collection, progress=bar.update)


@click.command("dedup")
@click.option("--apply", "apply_", is_flag=True,
              help="Remove dropped rows, move their files to .cxrbank/removed/, merge aliases.")
@click.option("--undo", "undo", metavar="LOG",
              help="Reverse one --apply from its log (a path, or 'last').")
@root_option
@json_option
def dedup_cmd(apply_: bool, undo: str | None, root: Path, as_json: bool) -> None:
    """Find exact and near-duplicate images and the copy of each to keep.

    Exact: same bytes, or the same pixels in another encoding. Near: the same picture
    resized, recompressed, brightened, padded, annotated, cropped up to ~10% or turned a
    little. Images of one patient on different days are never merged (they are reported).
    A group spanning patient ids is an alias (merged on --apply) or conflicting (reported).
    --apply logs every step to .cxrbank/logs/dedup-*.jsonl; --undo LOG reverses it.
    """
    from curation.dedup_apply import apply_report, finish_interrupted, latest_log, undo_log

    if apply_ and undo:
        raise click.UsageError("--apply and --undo cannot be combined")
    collection = _open(root)
    if undo:
        try:
            with collection.lock():
                log = latest_log(collection) if undo == "last" else Path(undo)
                result = undo_log(collection, log)
        except CollectionError as exc:
            raise CxrbankError(str(exc)) from exc
        summary = {"undone": str(result.log), "restored": result.restored,
                   "repointed": result.repointed, "rebound": result.rebound,
                   "missing": result.missing}
        if as_json:
            emit_json(summary)
        else:
            for name in result.missing:
                say_error(f"{name}: its moved file is gone; row not restored")
            click.echo(f"undid {result.log.name}: {result.restored} rows restored,"
                       f" {result.repointed} rows given their old patient id back")
        if result.missing:
            raise SystemExit(EXIT_PARTIAL)
        return
    try:
        if apply_:
            with collection.lock():
                for line in finish_interrupted(collection):
                    say(line)
                report = _find(collection, as_json)
                applied = apply_report(collection, report)
        else:
            report = _find(collection, as_json)
            applied = None
    except CollectionError as exc:
        raise CxrbankError(str(exc)) from exc
    if as_json:
        out = {
            "groups": [_group_json(report, g) for g in report.groups],
            "held_apart": [_held_json(report, m) for m in report.held_apart],
            "failures": [{"file": f, "error": e} for f, e in report.failures],
            "hashed": report.hashed,
        }
        if applied:
            out["applied"] = {"log": applied.log and str(applied.log), "dropped": applied.dropped,
                              "repointed": applied.repointed, "rebound": applied.rebound,
                              "ids_to_review": applied.conflicts}
        emit_json(out)
    else:
        _print_report(report, applied)
    if report.failures:
        raise SystemExit(EXIT_PARTIAL)


def _print_report(report, applied) -> None:
    for filename, error in report.failures:
        say_error(f"{filename}: {error}")
    for group in report.groups:
        item = _group_json(report, group)
        click.echo(f"keep {item['keep']} ({item['reason']}; {', '.join(item['kinds'])})")
        for name in item["drop"]:
            click.echo(f"  drop {name}")
        if group.relation:
            click.echo(f"  patients {', '.join(group.patients)}: {group.relation}: {group.relation_why}")
    for match in report.held_apart:
        item = _held_json(report, match)
        click.echo(f"held apart: {item['files'][0]} ~ {item['files'][1]} (patient"
                   f" {item['patient']}, days {item['days'][0]} and {item['days'][1]})")
    dropped = sum(len(g.drop) for g in report.groups)
    click.echo(f"{len(report.groups)} duplicate groups, {dropped} rows to drop,"
               f" {len(report.held_apart)} pairs held apart ({report.hashed} images hashed)")
    if applied and applied.log is None:
        click.echo("applied: nothing to do")
    elif applied:
        for name in applied.conflicts:
            click.echo(f"patient ids not merged (they conflict; review): the group of {name}")
        click.echo(f"applied: {applied.dropped} rows removed, {applied.repointed} rows re-pointed"
                   f" to an aliased patient id; undo with `cxrbank dedup --undo {applied.log}`")


@click.command("labels")
@root_option
@json_option
def labels_cmd(root: Path, as_json: bool) -> None:
    """The label vocabulary with counts (each `/` token of `finding` is a label).

    Stored finding values that need a fix (stray whitespace, unknown, not canonical) are
    listed after the labels, ready for `cxrbank relabel`.
    """
    from curation.labels import finding_values, label_counts

    rows = _open(root).read_rows()
    counts = label_counts(rows)
    values = finding_values(rows)
    if as_json:
        emit_json({
            "rows": len(rows),
            "labels": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "findings": [v.__dict__ for v in values],
        })
        return
    width = max((len(label) for label in counts), default=5)
    for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"{label:<{width}}  {count}")
    for value in values:
        if value.problem:
            fix = f" -> {value.canonical!r}" if value.canonical else ""
            click.echo(f"finding {value.value!r} ({value.count} rows): {value.problem}{fix}")


@click.command("relabel")
@click.argument("old")
@click.argument("new")
@click.option("--where", "where", multiple=True, metavar="COLUMN=VALUE",
              help="Only rows whose COLUMN equals VALUE (repeatable; all must hold).")
@click.option("--allow-new", is_flag=True,
              help="Accept a NEW finding the taxonomy does not know (never another spelling of"
                   " one it knows).")
@root_option
@json_option
def relabel_cmd(old: str, new: str, where: tuple[str, ...], allow_new: bool, root: Path,
                as_json: bool) -> None:
    """Rename the finding OLD to NEW on every matching row, logged.

    OLD matches the stored value exactly (quote it with its stray space:
    `cxrbank relabel "Pneumonia/Viral/Herpes " Pneumonia/Viral/Herpes`). Each change is one
    line of .cxrbank/logs/relabel.jsonl. Exit 1 when no row matched.
    """
    from curation.labels import check_new_finding, parse_where, relabel

    try:
        conditions = parse_where(list(where))
        if not new.strip():
            raise ValueError("NEW is blank: a finding cannot be relabelled to nothing")
        check_new_finding(new, allow_new)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    collection = _open(root)
    try:
        changed = relabel(collection, old, new, conditions)
    except CollectionError as exc:
        raise CxrbankError(str(exc)) from exc
    if as_json:
        emit_json({"old": old, "new": new, "changed": changed})
    else:
        click.echo(f"{len(changed)} rows: finding {old!r} -> {new!r}")
    if not changed:
        raise CxrbankError(f"no row has finding {old!r}" + (" with those --where values" if where else ""))
