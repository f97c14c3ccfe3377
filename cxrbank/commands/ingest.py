"""`cxrbank ingest`: papers by DOI (through the crawler) or local PDF/JATS files -> rows."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

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

SETTINGS_ENV = "CXRBANK_SCRAPY_SETTINGS"  # JSON object of Scrapy setting overrides (tests, bench)


def scrapy_overrides() -> dict[str, Any]:
    raw = os.environ.get(SETTINGS_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise CxrbankError(f"{SETTINGS_ENV} is not a JSON object") from None
    if not isinstance(value, dict):
        raise CxrbankError(f"{SETTINGS_ENV} is not a JSON object")
    return value


def _collect_dois(dois: tuple[str, ...], from_file: Path | None) -> tuple[list[str], list[str]]:
    """(valid DOIs in order without repeats, bad entries)."""
    from crawler.resolve import normalize_doi

    raw = list(dois)
    if from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CxrbankError(f"{from_file}: cannot read ({exc})") from None
        raw += [line.split("#", 1)[0].strip() for line in text.splitlines()]
    good: list[str] = []
    bad: list[str] = []
    for value in filter(None, raw):
        try:
            doi = normalize_doi(value)
        except ValueError:
            bad.append(value)
            continue
        if doi not in good:
            good.append(doi)
    return good, bad


def _say_progress(outcome: dict[str, Any], reported: set[str]) -> None:
    """One line per paper as it finishes; a failure as its one `Error:` line."""
    name = outcome["doi"] or outcome["key"]
    if outcome["outcome"] == "error":
        reported.add(outcome["key"])
        say_error(f"{name}: {outcome['reason']}")
        return
    added = f" {outcome['added']}" if outcome["outcome"] == "added" else ""
    say(f"{name}: {outcome['outcome']}{added}")


def ingest_dois(root: Path, dois: list[str], contact: str, force: bool) -> list[Any]:
    """Crawl the DOIs not done yet (all with force); one Outcome per DOI, in the given order.

    Reports each paper on stderr as it finishes: each failure as one `Error:` line.
    """
    from crawler.resolve import normalize_doi
    from crawler.run import CrawlError, run_spider
    from crawler.settings import crawl_settings
    from crawler.spiders.papers import PapersSpider
    from crawler.state import ERROR, Outcome, is_done, previous_outcome, record_outcome, skipped
    from cxrbank.collection import Collection

    collection = Collection.create(root)
    results: dict[str, Any] = {}
    reported: set[str] = set()  # failures already said
    todo = []
    for doi in dois:
        try:
            normalize_doi(doi)
        except ValueError:  # callers pass parsed text (an issue's): never send it out
            results[doi] = Outcome(doi, doi, ERROR, reason="not a DOI")
            continue
        previous = previous_outcome(collection, doi)
        if is_done(previous) and not force:
            results[doi] = skipped(previous)
        else:
            todo.append(doi)
    if todo:
        settings = crawl_settings(contact, {**scrapy_overrides(), "CXRBANK_ROOT": str(root)})
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            summary = run_spider(PapersSpider, settings, dois=todo,
                                 on_progress=lambda event: _say_progress(event, reported))
            outcomes = summary.get("outcomes", [])
            failure = ""
        except CrawlError as exc:
            outcomes, failure = [], str(exc)
        for data in outcomes:
            results[data["key"]] = Outcome(**data)
        for doi in todo:
            if doi in results:
                continue
            stored = previous_outcome(collection, doi)  # written before the crawl broke off
            if stored is not None and stored.at >= started:
                results[doi] = stored
            else:
                reason = failure or "the crawl ended without a result for it"
                results[doi] = record_outcome(collection, Outcome(doi, doi, ERROR, reason=reason))
    for doi in dois:
        if results[doi].failed and doi not in reported:
            reported.add(doi)
            say_error(f"{doi}: {results[doi].reason}")
    return [results[doi] for doi in dois]


def ingest_local(root: Path, path: Path, kind: str, doi: str | None,
                 force: bool) -> tuple[Any, list[str]]:
    """Ingest a local PDF or JATS file (offline); its Outcome and its unreadable figure files."""
    from crawler.local import ingest_file

    problems: list[str] = []
    return ingest_file(root, path, kind, doi, force, problems), problems


def _render_table(outcomes: list[Any], file_name: str = "") -> str:
    """The closing table; a local file without a DOI is named by `file_name`, not its key."""
    header = ("DOI", "source", "images", "outcome")
    rows = []
    for o in outcomes:
        result = o.outcome if not o.reason else f"{o.outcome}: {o.reason}"
        rows.append((o.doi or file_name or o.key, o.source or "-", str(o.added), result))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = []
    for r in [header, *rows]:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(lines)


@click.command("ingest")
@click.option("--doi", "dois", multiple=True, metavar="DOI", help="A paper's DOI (repeatable).")
@click.option("--from", "from_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of DOIs, one per line; # starts a comment.")
@click.option("--pdf", "pdf_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A local PDF (offline); --doi names its paper.")
@click.option("--jats", "jats_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A local JATS XML (offline), its figure files beside it.")
@click.option("--force", is_flag=True, help="Redo papers ingested before.")
@click.option("--contact", metavar="EMAIL",
              help="Your e-mail for the services' polite pools (default: $CXRBANK_CONTACT).")
@root_option
@json_option
def ingest_cmd(dois: tuple[str, ...], from_file: Path | None, pdf_file: Path | None,
               jats_file: Path | None, force: bool, contact: str | None, root: Path,
               as_json: bool) -> None:
    """Add the chest X-ray and CT images of papers, with facts, source and licence.

    By DOI (resolved through Europe PMC, Unpaywall, Crossref, OpenAlex, bioRxiv) or from a
    local PDF or JATS file. A paper ingested before is not redone unless --force. Ends with
    a table: DOI, source used, images added, outcome. Exit 1 if any paper failed or a local
    JATS file's figure file could not be read (one `Error:` line each; the rest is added).
    """
    local = [p for p in (pdf_file, jats_file) if p is not None]
    if len(local) > 1 or (local and (from_file or len(dois) > 1)):
        raise click.UsageError("give --pdf or --jats (with at most one --doi), or DOIs, not both")
    if not local and not dois and from_file is None:
        raise click.UsageError("nothing to ingest: give --doi, --from, --pdf or --jats")
    if any(not value.strip() for value in dois):
        raise click.UsageError("--doi needs a DOI, not an empty value")
    bad: list[str] = []
    unreadable: list[str] = []
    if local:
        from crawler.resolve import normalize_doi

        try:
            doi = normalize_doi(dois[0]) if dois else None
        except ValueError:
            raise click.UsageError(f"--doi {dois[0]!r} is not a DOI") from None
        outcome, unreadable = ingest_local(root, local[0], "pdf" if pdf_file else "jats", doi,
                                           force)
        outcomes = [outcome]
    else:
        from crawler.settings import ContactMissing, contact_address

        try:
            address = contact_address(contact)
        except ContactMissing as exc:
            raise click.UsageError(str(exc)) from None
        good, bad = _collect_dois(dois, from_file)
        outcomes = ingest_dois(root, good, address, force) if good else []
    for value in bad:
        say_error(f"{value!r} is not a DOI")
    failed = [o for o in outcomes if o.failed]
    for o in failed if local else []:  # ingest_dois said its own
        # a local file's reasons start with its name: no 64-character sha256 key before it
        say_error(f"{o.doi}: {o.reason}" if o.doi else o.reason)
    for line in unreadable:
        say_error(line)
    if as_json:
        emit_json({"papers": [o.to_dict() for o in outcomes], "not_dois": bad,
                   "unreadable_figure_files": unreadable})
    else:
        click.echo(_render_table(outcomes, local[0].name if local else ""))
    if failed or bad or unreadable:
        click.get_current_context().exit(EXIT_PARTIAL)
