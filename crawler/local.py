"""Ingest a local PDF or JATS file (offline): the same extraction and writer as a crawl."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from crawler.paper_rows import (
    DocumentError,
    Paper,
    chest_panels,
    file_key,
    jats_figure_hrefs,
    read_jats,
    read_pdf,
)
from crawler.pipelines import store_panels
from crawler.resolve import normalize_doi, normalize_license
from crawler.state import ERROR, Outcome, is_done, previous_outcome, record_outcome, skipped
from cxrbank.collection import Collection, sniff_image_extension

MAX_FILE_BYTES = 200 * 1024 * 1024
CANONICAL_DOI_URL = "https://doi.org"


def pdf_hints(data: bytes) -> tuple[str, str]:
    """(DOI, licence) a PDF states in its metadata (Info dictionary or XMP), or blanks."""
    import pymupdf

    try:
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            info = " ".join(str(v) for v in (doc.metadata or {}).values() if v)
            xmp = doc.get_xml_metadata() or ""
    except Exception:  # unreadable metadata is simply no hint; the extractor reports the file
        return "", ""
    text = f"{info} {xmp}"
    doi = ""
    match = re.search(r"\b(10\.\d{4,9}/[^\s\"<>]+)", text)
    if match:
        try:
            doi = normalize_doi(match.group(1))
        except ValueError:
            doi = ""
    license_ = ""
    match = re.search(r"https?://creativecommons\.org/[^\s\"<>]+", text)
    if match:
        license_ = normalize_license(match.group(0))
    else:
        match = re.search(r"\b(CC0|CC[- ]BY(?:[- ](?:NC|SA|ND))*)(?:[- ]([\d.]+))?", text)
        if match:
            license_ = normalize_license(" ".join(filter(None, match.groups())))
    return doi, license_


def jats_images(folder: Path, hrefs: list[str]) -> dict[str, bytes]:
    """The figure file for each href beside a JATS file (extract.jats.graphic_files picks among
    several of one name), kept when it decodes and the collection takes its type."""
    from extract.jats import graphic_files, graphic_problem

    return {href: data for href, data in graphic_files(folder, hrefs).items()
            if graphic_problem(data) is None and sniff_image_extension(data)}


def graphic_problems(folder: Path, article: Any, images: dict[str, bytes]) -> list[str]:
    """"graphic 'H' left out: why" for each figure graphic of the article that cannot be read."""
    from extract.jats import graphic_files, graphic_problem, unreadable_graphics

    problems = []
    missing = unreadable_graphics(article, images)
    found = graphic_files(folder, [href for href, _ in missing]) if missing else {}
    for href, _why in missing:
        data = found.get(href)
        why = "no image file beside it" if data is None else (
            graphic_problem(data) or "not a supported image type")
        problems.append(f"graphic {href!r} left out: {why}")
    return problems


def ingest_file(root: Path, path: Path, kind: str, doi: str | None, force: bool,
                problems: list[str] | None = None) -> Outcome:
    """Extract a local PDF/JATS file's chest panels into the collection at root.

    Each figure file that could not be read (JATS) is appended to `problems` as one line
    ("article.nxml: graphic 'g2' left out: empty file (0 bytes)") and noted in the outcome.
    """
    collection = Collection.create(root)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DocumentError(f"larger than {MAX_FILE_BYTES // 2**20} MB")
        data = path.read_bytes()
    except (OSError, DocumentError) as exc:
        return Outcome(str(path), doi or "", ERROR, source=f"{kind} file", reason=f"{path}: {exc}")
    paper = Paper(file_key(data), source=f"{kind} file", stem=path.stem)
    if doi:
        paper.doi = normalize_doi(doi)
    try:
        figures, text, lost = _read(path, data, kind, paper)
    except DocumentError as exc:
        outcome = Outcome(paper.doi or paper.key, paper.doi, ERROR, source=paper.source,
                          reason=f"{path.name}: {exc}")
        return record_outcome(collection, outcome)
    if paper.doi:
        paper.key = paper.doi
        paper.url = f"{CANONICAL_DOI_URL}/{paper.doi}"
    previous = previous_outcome(collection, paper.key)
    if is_done(previous) and not force:
        return skipped(previous)
    try:
        panels = chest_panels(paper, figures, text)
    except Exception as exc:  # an extractor bug: one clear line, recorded, nothing lost
        outcome = Outcome(paper.key, paper.doi, ERROR, source=paper.source,
                          reason=f"{path.name}: extraction failed: {type(exc).__name__}: {exc}")
        return record_outcome(collection, outcome)
    outcome = store_panels(collection, panels)
    if lost:
        note = f"{len(lost)} figure file(s) unreadable" if kind == "jats" \
            else f"{len(lost)} problem(s) reading the PDF"
        outcome.reason = f"{outcome.reason}; {note}" if outcome.reason else note
        outcome = record_outcome(collection, outcome)
        if problems is not None:
            problems.extend(f"{path.name}: {line}" for line in lost)
    return outcome


def _read(path: Path, data: bytes, kind: str, paper: Paper) -> tuple[list[Any], str, list[str]]:
    """The document's figures, its text and the lines for figure files that could not be read."""
    if kind == "pdf":
        lost: list[str] = []
        figures, text = read_pdf(data, lost)
        doi, license_ = pdf_hints(data)
        paper.doi = paper.doi or doi
        paper.license = license_
        return figures, text, lost
    article, hrefs = jats_figure_hrefs(data)
    if not paper.doi and getattr(article, "doi", ""):
        try:
            paper.doi = normalize_doi(article.doi)
        except ValueError:
            paper.doi = ""
    paper.title = getattr(article, "title", "") or ""
    paper.abstract = getattr(article, "abstract", "") or ""
    paper.license = normalize_license(getattr(article, "license", "") or "")
    images = jats_images(path.parent, hrefs)
    figures, text = read_jats(article, images)
    return figures, text, graphic_problems(path.parent, article, images)
