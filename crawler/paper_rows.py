"""A paper's full text -> the chest panels worth keeping, each with its row (no patient ids yet).

Extraction (figures, captions, facts, image type) runs here, in the crawl process; writing
rows and assigning patient ids is the pipeline's job (crawler/pipelines.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cxrbank.collection import safe_stem

CHEST_TYPES = ("X-ray", "CT")
CT_VIEWS = ("Axial", "Coronal")
NOTES_CAPTION_CHARS = 700
NOTES_CASE_CHARS = 700
CASE_HEADING_RE = re.compile(
    r"\b(case (?:presentation|description|history|summary|details)|clinical (?:presentation"
    r"|history|course)|patient (?:presentation|history)|case report)\b",
    re.IGNORECASE,
)

CAPTION_START_RE = re.compile(r"\b(?:Figure|Fig\.?)\s*\d+[A-Za-z]?\s*[.:|]", re.IGNORECASE)


class DocumentError(ValueError):
    """Full-text bytes that cannot be read (not a PDF/JATS, truncated, encrypted…)."""


@dataclass
class Paper:
    """One paper's identity and licence, and where its full text came from."""

    key: str  # the DOI, or "sha256:<hex>" for a local file without one
    doi: str = ""
    url: str = ""
    license: str = ""
    source: str = ""  # "europepmc", "unpaywall", …, or "pdf file" / "jats file"
    title: str = ""
    abstract: str = ""
    stem: str = ""  # file-name stem for its images (default: from the DOI)
    fulltext_url: str = ""  # where the full text was downloaded from


@dataclass
class Panel:
    """A chest image from a paper, its row values, and the paper's own name for its patient."""

    data: bytes
    name: str
    row: dict[str, str]
    patient: str  # "patient 1" (lower case), or "" for the paper's only patient


@dataclass
class PaperPanels:
    """What extraction found in one paper."""

    paper: Paper
    panels: list[Panel] = field(default_factory=list)
    figures: int = 0  # figures or panels extracted, chest or not
    notes: list[str] = field(default_factory=list)  # e.g. figure files that could not be read


def sniff_document(data: bytes) -> str:
    """"pdf", "jats", "html" or "unknown", from the bytes (never the name or Content-Type)."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"%PDF-" in data[:1024]:
        return "pdf"
    lowered = head.lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:1024]:
        return "html"
    if lowered.startswith((b"<?xml", b"<!doctype article", b"<article")) and b"<article" in (
        data[:65536].lower()
    ):
        return "jats"
    return "unknown"


def read_pdf(data: bytes, problems: list[str] | None = None) -> tuple[list[Any], str]:
    """Figures (panels split) and the whole text of a PDF; DocumentError when unreadable. A line
    goes to `problems` for each figure left out (a damaged embedded image) and for a damaged
    PDF that MuPDF had to repair."""
    from extract.pdf import PdfError, extract_figures, page_texts

    if sniff_document(data) != "pdf":
        raise DocumentError("not a PDF file")
    try:
        figures = extract_figures(data, split_panels=True, time_limit=60, problems=problems)
        text = "\n".join(page_texts(data, time_limit=60))
    except PdfError as exc:
        raise DocumentError(str(exc)) from None
    return figures, text


def jats_figure_hrefs(data: bytes) -> tuple[Any, list[str]]:
    """The parsed JATS article and the graphic hrefs (without extension) its figures need."""
    from extract.jats import JatsError, parse_jats, strip_extension

    try:
        article = parse_jats(data)
    except JatsError as exc:
        raise DocumentError(f"unreadable JATS XML: {exc}") from None
    hrefs: list[str] = []
    for figure in article.figures:
        for href in figure.graphics:
            stem = strip_extension(href)
            if stem and stem not in hrefs:
                hrefs.append(stem)
    return article, hrefs


def read_jats(article: Any, images: dict[str, bytes]) -> tuple[list[Any], str]:
    """Figures of a parsed JATS article given its image files, and its text."""
    from extract.jats import figures_from_jats

    figures = figures_from_jats(article, images)
    return figures, getattr(article, "body_text", "") or ""


def _one_per_figure(figures: list[Any]) -> list[Any]:
    """Panels of a split figure, or the whole figure, never both (no double counting)."""
    split = {(f.page, f.label) for f in figures if f.panel and f.label}
    return [f for f in figures if f.panel or not f.label or (f.page, f.label) not in split]


def figure_name(figure: Any, index: int) -> str:
    """"Figure 2B", or "page 3 image 1" for an image without a caption."""
    if figure.label:
        return f"{figure.label}{figure.panel or ''}"
    return f"page {figure.page} image {index}"


def case_excerpt(body: str, abstract: str = "", patient: str = "",
                 limit: int = NOTES_CASE_CHARS) -> str:
    """The part of the paper that describes the case (or that patient), trimmed.

    That patient's first mention, else the text after a "Case presentation"-like heading
    (the earliest kind in CASE_HEADING_RE's order), else the abstract.
    """
    body = re.sub(r"\s+", " ", body or "").strip()
    start = -1
    if patient:
        match = re.search(rf"\b{re.escape(patient)}\b", body, re.IGNORECASE)
        start = match.start() if match else -1
    if start < 0:
        matches = [m for m in CASE_HEADING_RE.finditer(body)
                   if not m.group(1).lower().startswith("case report")]
        match = matches[0] if matches else None
        start = match.end() if match else -1
    if start < 0:
        return trim_sentences(re.sub(r"\s+", " ", abstract or "").strip(), limit)
    excerpt = body[start:].lstrip(" :.-")
    caption = CAPTION_START_RE.search(excerpt)
    return trim_sentences(excerpt[: caption.start()] if caption else excerpt, limit)


def trim_sentences(text: str, limit: int) -> str:
    """At most `limit` characters, cut at the last sentence end (or word) before it."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    if end > limit // 2:
        return cut[: end + 1]
    return cut.rsplit(" ", 1)[0] + " …"


def clinical_notes(caption: str, body: str, abstract: str, patient: str) -> str:
    """Caption first, then the case description; each trimmed at a sentence end."""
    parts = [trim_sentences(re.sub(r"\s+", " ", caption or ""), NOTES_CAPTION_CHARS)]
    excerpt = case_excerpt(body, abstract, patient)
    if excerpt and excerpt[:80] not in parts[0]:
        parts.append(excerpt)
    return " ".join(p for p in parts if p)


def _modality(image_type: str, score: float, facts: Any) -> str:
    stated = getattr(facts, "modality", None)
    if stated in CHEST_TYPES and stated != image_type and score < 0.6:
        return stated
    return image_type


def _view(facts: Any, modality: str) -> str:
    view = getattr(facts, "view", None) or ""
    if not view:
        return ""
    return view if (view in CT_VIEWS) == (modality == "CT") else ""


def panel_row(paper: Paper, figure: Any, name: str, facts: Any, modality: str,
              body: str) -> dict[str, str]:
    """The row values of one kept panel (patientid, file fields and hashes come later)."""
    finding = getattr(facts, "finding", None) or "todo"
    patient = (getattr(facts, "patient", None) or "").strip()
    caption = figure.caption or figure.panel_caption or ""
    row = {
        "source": "paper",
        "doi": paper.doi,
        "url": paper.url,
        "license": paper.license,
        "figure": name,
        "source_id": f"{paper.doi or paper.key}#{name.replace(' ', '-')}",
        "finding": finding,
        "modality": modality,
        "view": _view(facts, modality),
        "clinical_notes": clinical_notes(caption, body, paper.abstract, patient),
    }
    for column in ("age", "sex", "offset", "survival", "intubated", "went_icu",
                   "needed_supplemental_O2", "temperature", "pO2_saturation",
                   "lymphocyte_count", "location"):
        value = getattr(facts, column, None)
        if value is not None and value != "":
            row[column] = str(value)
    return row


def chest_panels(paper: Paper, figures: list[Any], body_text: str,
                 classify: Callable[[bytes], tuple[str, float]] | None = None) -> PaperPanels:
    """The X-ray and CT panels among a paper's figures, with facts read for each."""
    from extract.facts import facts_for_panel

    if classify is None:
        from extract.imagetype import classify_image as classify
    case_text = "\n".join(t for t in (paper.title, paper.abstract, body_text) if t)
    result = PaperPanels(paper, figures=len(figures))
    stem = safe_stem(paper.stem or paper.doi or paper.key.replace(":", "-"), limit=60)
    for index, figure in enumerate(_one_per_figure(figures), start=1):
        try:
            image_type, score = classify(figure.image)
        except ValueError:  # extract.imagetype.ImageTypeError: an undecodable image
            continue
        if image_type not in CHEST_TYPES:
            continue
        facts = facts_for_panel(figure.caption or "", figure.panel, case_text,
                                subcaption=figure.panel_caption)
        modality = _modality(image_type, score, facts)
        name = figure_name(figure, index)
        row = panel_row(paper, figure, name, facts, modality, body_text)
        patient = (getattr(facts, "patient", None) or "").strip().lower()
        result.panels.append(Panel(figure.image, f"{stem}-{name}", row, patient))
    return result


def file_key(data: bytes) -> str:
    """The state key of a local file given without a DOI."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
