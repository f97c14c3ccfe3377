"""The additions loop: what a GitHub issue asks for -> ingest and crawl -> rows -> a markdown reply."""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cxrbank.collection import Collection, Row
from extract.issuetext import MAX_ITEMS, MAX_TEXT, AdditionRequest, parse_request

PDF_HOSTS_ENV = "CXRBANK_PDF_HOSTS"  # extra hosts (comma-separated) whose PDF links may be fetched
THUMB_SIZE = 256
MAX_LISTED = 20  # links/DOIs not fetched, listed one by one; the rest are counted


@dataclass
class ItemResult:
    """What became of one DOI or URL an issue named."""

    kind: str  # doi, radiopaedia, pdf
    ref: str
    outcome: str  # added, already in the collection, no open full text, no radiographs, error
    reason: str = ""
    rows: list[Row] = field(default_factory=list)


@dataclass
class IssueResult:
    number: int
    request: AdditionRequest
    items: list[ItemResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(item.outcome == "error" for item in self.items)


def _new_rows(collection: Collection, before: set[str]) -> list[Row]:
    return [row for row in collection.read_rows() if row["filename"] not in before]


def _filenames(collection: Collection) -> set[str]:
    return {row["filename"] for row in collection.read_rows()}


def _rows_where(collection: Collection, match: Callable[[Row], bool]) -> list[Row]:
    return [row for row in collection.read_rows() if match(row)]


def _case_path(url: str) -> str:
    return urlsplit(url).path.rstrip("/").lower()


def _ingest_dois(collection: Collection, dois: list[str], contact: str, force: bool) -> list[ItemResult]:
    from cxrbank.commands.ingest import ingest_dois  # noqa: PLC0415

    before = _filenames(collection)
    outcomes = ingest_dois(collection.root, dois, contact, force)
    added = _new_rows(collection, before)
    results = []
    for doi, outcome in zip(dois, outcomes, strict=True):
        rows = [row for row in added if row["doi"].lower() == doi]
        if rows:
            results.append(ItemResult("doi", doi, "added", rows=rows))
        elif outcome.outcome in ("added", "already ingested"):
            existing = _rows_where(collection, lambda row, d=doi: row["doi"].lower() == d)
            results.append(ItemResult("doi", doi, "already in the collection", rows=existing))
        else:
            results.append(ItemResult("doi", doi, outcome.outcome, reason=outcome.reason))
    return results


def _crawl_cases(collection: Collection, cases: list[str], contact: str,
                 overrides: dict[str, Any]) -> list[ItemResult]:
    from crawler.radiopaedia import ACCEPT_ENV, accepted_in_environment, terms_accepted  # noqa: PLC0415
    from crawler.run import CrawlError  # noqa: PLC0415
    from crawler.settings import base_urls  # noqa: PLC0415
    from cxrbank.commands.crawl import run_radiopaedia  # noqa: PLC0415

    base = base_urls(overrides)["CXRBANK_RADIOPAEDIA_URL"]
    accepted = accepted_in_environment()
    if not terms_accepted(base, accepted):
        reason = f"Radiopaedia's terms are not acknowledged here ({ACCEPT_ENV}=1 to allow)"
        return [ItemResult("radiopaedia", case, "error", reason=reason) for case in cases]
    before = _filenames(collection)
    urls = [base + _case_path(case) for case in cases]
    try:
        report = run_radiopaedia(collection.root, contact, accepted, overrides,
                                 cases=urls, max_cases=len(urls), query="", modality="", since="")
        problems = report["errors"] + ([report["stopped"]] if report["stopped"] else [])
    except CrawlError as exc:
        problems = [str(exc)]
    added = _new_rows(collection, before)
    results = []
    for case in cases:
        path = _case_path(case)
        rows = [row for row in added if _case_path(row["url"]) == path]
        existing = _rows_where(collection, lambda row, p=path: _case_path(row["url"]) == p)
        mine = [p for p in problems if path.rsplit("/", 1)[-1] in p] or problems
        if rows:
            results.append(ItemResult("radiopaedia", case, "added", rows=rows))
        elif existing:
            results.append(ItemResult("radiopaedia", case, "already in the collection", rows=existing))
        elif mine:
            results.append(ItemResult("radiopaedia", case, "error", reason="; ".join(mine)))
        else:
            results.append(ItemResult("radiopaedia", case, "no radiographs"))
    return results


def _ingest_pdf(collection: Collection, url: str, contact: str, allowed: set[str],
                force: bool) -> ItemResult:
    from crawler.fetch import FetchError, fetch_bytes  # noqa: PLC0415
    from crawler.local import ingest_file  # noqa: PLC0415

    try:
        data, final = fetch_bytes(url, contact, allowed=allowed)
    except FetchError as exc:
        return ItemResult("pdf", url, "error", reason=str(exc))
    if not data.startswith(b"%PDF"):
        return ItemResult("pdf", url, "error", reason="the link did not give a PDF")
    before = _filenames(collection)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paper.pdf"
        path.write_bytes(data)
        outcome = ingest_file(collection.root, path, "pdf", None, force)
    rows = _new_rows(collection, before)
    if rows:
        with collection.editing() as all_rows:
            for row in all_rows:
                if row["filename"] in {r["filename"] for r in rows}:
                    row["url"] = row["url"] or final
                    row["source"] = "issue"
        return ItemResult("pdf", url, "added", rows=_new_rows(collection, before))
    if outcome.outcome in ("added", "already ingested"):
        return ItemResult("pdf", url, "already in the collection")
    return ItemResult("pdf", url, outcome.outcome, reason=outcome.reason)


def _annotate(collection: Collection, result: IssueResult) -> None:
    """Record the request on the rows it added; a finding hint fills rows still `todo`."""
    added = {row["filename"] for item in result.items if item.outcome == "added" for row in item.rows}
    if not added:
        return
    hint = result.request.hints.finding
    with collection.editing() as rows:
        for row in rows:
            if row["filename"] not in added:
                continue
            notes = [row["other_notes"], f"requested in issue #{result.number}"]
            if hint and row["finding"] == "todo":
                row["finding"] = hint
                notes.append(f"finding {hint} as stated in issue #{result.number}")
            row["other_notes"] = "; ".join(n for n in notes if n)
    by_name = {row["filename"]: row for row in collection.read_rows()}
    for item in result.items:
        item.rows = [by_name.get(row["filename"], row) for row in item.rows]


def handle_issue(root: Path, number: int, text: str, contact: str, *,
                 overrides: dict[str, Any] | None = None, force: bool = False) -> IssueResult:
    """Ingest everything an issue's text names into the collection at root."""
    from crawler.settings import allowed_hosts, crawl_settings  # noqa: PLC0415

    overrides = overrides or {}
    trusted = allowed_hosts(crawl_settings(contact, overrides))
    extra = tuple(h.strip().lower() for h in os.environ.get(PDF_HOSTS_ENV, "").split(",") if h.strip())
    request = parse_request(text, trusted_hosts=trusted, extra_pdf_hosts=extra)
    collection = Collection.create(root)
    result = IssueResult(number, request)
    if request.dois:
        result.items += _ingest_dois(collection, request.dois, contact, force)
    if request.radiopaedia_cases:
        result.items += _crawl_cases(collection, request.radiopaedia_cases, contact, overrides)
    for url in request.pdf_urls:
        result.items.append(_ingest_pdf(collection, url, contact, trusted, force))
    _annotate(collection, result)
    return result


def not_fetched(request: AdditionRequest) -> list[tuple[str, str]]:
    """Each link or DOI of the issue that is not fetched, once, with why."""
    over = f"beyond the first {MAX_ITEMS} requests"
    return [*request.refused, *((value, over) for value in request.left_over)]


def request_notes(request: AdditionRequest) -> list[str]:
    """What of the issue is not handled: the cap on requests and the text not read."""
    notes = []
    if request.left_over:
        notes.append(f"only the first {MAX_ITEMS} requests are handled; "
                     f"{len(request.left_over)} more left for a follow-up")
    if request.ignored_chars:
        notes.append(f"only the first {MAX_TEXT} characters of the issue were read; "
                     f"the last {request.ignored_chars} were ignored")
    return notes


def not_fetched_lines(request: AdditionRequest) -> list[tuple[str, str]]:
    """(link or DOI, why) for at most MAX_LISTED, then ("… and N more", "") when there are more."""
    entries = [(value[:200], why) for value, why in not_fetched(request)]
    if len(entries) <= MAX_LISTED:
        return entries
    return [*entries[:MAX_LISTED], (f"… and {len(entries) - MAX_LISTED} more", "")]


def write_thumbnails(collection: Collection, result: IssueResult, folder: Path) -> dict[str, str]:
    """A small PNG per added image (for the reply); filename -> thumbnail path."""
    from PIL import Image  # noqa: PLC0415

    from cxrbank.greys import WIDE_GREYS, grey8  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    thumbs = {}
    for item in result.items:
        if item.outcome != "added":
            continue
        for row in item.rows:
            target = folder / f"{Path(row['filename']).stem}.thumb.png"
            with Image.open(collection.image_path(row)) as image:
                grey = image.mode == "L" or image.mode in WIDE_GREYS
                shown = grey8(image) if grey else image.convert("RGB")
                shown.thumbnail((THUMB_SIZE, THUMB_SIZE))
                buffer = io.BytesIO()
                shown.save(buffer, "PNG")
            target.write_bytes(buffer.getvalue())
            thumbs[row["filename"]] = target.name
    return thumbs


def code(value: str, *, table: bool = False, limit: int = 300) -> str:
    """An untrusted value as one inline code span, so nothing in it renders: no link, image,
    mention, HTML or emphasis. Backticks, line breaks and invisible or direction-changing
    characters are dropped; in a table cell `|` is escaped (and a backslash doubled, so that
    it cannot escape the escape)."""
    text = "".join(" " if ch in "\r\n\t" else ch for ch in value
                   if ch in "\r\n\t" or unicodedata.category(ch) not in ("Cc", "Cf"))
    text = " ".join(text.replace("`", "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if table:
        text = text.replace("\\", "\\\\").replace("|", "\\|")
    return f"`{text}`" if text else "`-`"


def _facts(row: Row) -> str:
    parts = [row["modality"], row["view"], row["finding"],
             f"{row['age']} y" if row["age"] else "", row["sex"],
             f"day {row['offset']}" if row["offset"] else "", row["figure"]]
    return ", ".join(p for p in parts if p)


def reply_markdown(result: IssueResult, thumbs: dict[str, str] | None = None,
                   thumbs_folder: str = "") -> str:
    """The reply for the issue: per DOI/URL what was added, or why nothing was."""
    thumbs = thumbs or {}
    added = sum(len(i.rows) for i in result.items if i.outcome == "added")
    lines = [f"### cxrbank: {added} images added for #{result.number}", ""]
    if result.request.empty():
        lines += ["No DOI, Radiopaedia case URL or allowed PDF link was found in this issue, "
                  "so nothing was added. Name a paper by its DOI (e.g. `10.1056/NEJMc2001272`) "
                  "or link a case (`https://radiopaedia.org/cases/...`).", ""]
    lines += ["| request | outcome | images |", "|---|---|---|"]
    for item in result.items:  # outcome words are ours; every value from outside is code
        reason = item.reason.replace(item.ref, "the link") if item.ref else item.reason
        outcome = item.outcome + (f": {code(reason, table=True)}" if reason else "")
        count = len(item.rows) if item.outcome == "added" else 0
        lines.append(f"| {code(item.ref, table=True, limit=200)} | {outcome} | {count} |")
    for item in result.items:
        if not item.rows:
            continue
        lines += ["", f"#### {code(item.ref, limit=200)} — {item.outcome}"]
        for row in item.rows:
            thumb = thumbs.get(row["filename"])
            shown = f" ![{row['filename']}]({thumbs_folder}{thumb})" if thumb else ""
            lines.append(f"- {code('images/' + row['filename'])} (patient {code(row['patientid'])}):"
                         f" {code(_facts(row))}{shown}")
    hints = result.request.hints
    if hints.figures or hints.patients:
        lines += ["", f"Hints from the issue, for the reviewer: figures {', '.join(hints.figures) or '-'};"
                  f" patients {', '.join(hints.patients) or '-'}."]
    listed = not_fetched_lines(result.request)
    if listed:
        lines += ["", "Not fetched:"]
        lines += [f"- {code(ref)}: {why}" if why else f"- {ref}" for ref, why in listed]
    notes = request_notes(result.request)
    if notes:
        lines += [""] + [f"Note: {note}." for note in notes]
    lines += ["", "Rows with finding `todo` need a curator's review before release."]
    return "\n".join(lines) + "\n"
