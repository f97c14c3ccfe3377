"""Radiopaedia cases as metadata rows: finding, view, notes, attribution and licence."""

from __future__ import annotations

import re

from crawler.radiopaedia import Case, StackImage, Study
from cxrbank.schema import SYNONYMS, TODO, XRAY_VIEWS, normalize_view
from extract.facts import extract_facts

LICENSE = (
    "CC BY-NC-SA 3.0 (modified by Radiopaedia.org: attribution must name the author, "
    "Radiopaedia.org and the rID; see https://radiopaedia.org/licence)"
)
UNCERTAIN = ("probable", "possible")

_SYNONYM_PATTERNS = sorted(SYNONYMS.items(), key=lambda kv: -len(kv[0]))
_GENERIC = {"viral", "bacterial", "unknown", "todo", "flu", "aspiration", "normal"}


def finding_of(title: str, diagnosis: str = "", certainty: str = "") -> str:
    """The taxonomy finding named in a case title or diagnosis; `todo` when uncertain or unknown.

    The most specific finding wins ("COVID-19 pneumonia" -> COVID-19, not Pneumonia).
    """
    if any(word in certainty.casefold() for word in UNCERTAIN) or re.search(
        r"\b(probable|possible|possibly|probably)\b", title, re.IGNORECASE
    ):
        return TODO
    best: tuple[int, int, str] | None = None
    text = f"{title} {diagnosis}"
    for key, finding in _SYNONYM_PATTERNS:
        if key in _GENERIC:
            continue
        if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", text, re.IGNORECASE):
            rank = (finding.count("/"), len(key), finding)
            if best is None or rank[:2] > best[:2]:
                best = rank
    return best[2] if best else TODO


def view_of(modality: str, image: StackImage) -> str:
    """PA, AP, L… for X-ray from the plane or caption; Axial/Coronal for CT."""
    view = normalize_view(image.plane) or normalize_view(image.caption)
    if not view:
        words = re.findall(r"[A-Za-z]+(?:\s+(?:supine|erect))?", f"{image.plane} {image.caption}")
        for word in words:
            view = normalize_view(word)
            if view:
                break
    if modality == "CT":
        return view if view in ("Axial", "Coronal") else ("Axial" if not image.plane else "")
    return view if view in XRAY_VIEWS else ""


def study_offset(case: Case, study: Study) -> str:
    """Days since onset or admission: from the study's title ("Day 5") or findings, else, for
    the case's first study, from the presentation ("fever for 8 days")."""
    match = re.search(r"\bday\s+(\d+)\b", study.description, re.IGNORECASE)
    if match:
        return match.group(1)
    texts = [f"{study.description}. {study.findings}"]
    if case.studies and case.studies[0] is study:
        texts.append(case.presentation)
    for text in texts:
        found = extract_facts(text)
        if len(found) == 1 and found[0].offset is not None:
            return str(found[0].offset)
    return ""


def credit_line(case: Case) -> str:
    """The attribution Radiopaedia's licence requires."""
    author = case.author or "the author"
    return f"Case courtesy of {author}, Radiopaedia.org, rID: {case.rid}"


def case_row(case: Case, study: Study, image: StackImage, modality: str, patientid: str) -> dict:
    """The metadata row of one image (or one CT stack's representative slice)."""
    notes = " ".join(p for p in (case.presentation, study.findings, case.discussion) if p)
    other = credit_line(case)
    if case.certainty:
        other += f"; diagnostic certainty: {case.certainty}"
    return {
        "patientid": patientid,
        "offset": study_offset(case, study),
        "sex": case.sex,
        "age": case.age,
        "finding": finding_of(case.title, "", case.certainty),
        "view": view_of(modality, image),
        "modality": modality,
        "date": case.published,
        "url": case.url,
        "license": LICENSE,
        "clinical_notes": notes,
        "other_notes": other,
        "source": "radiopaedia",
        "source_id": f"{case.rid}/{study.study_id}/{image.image_id}",
    }
