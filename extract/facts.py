"""Patient facts (age, sex, finding, view, modality, offset, course) from captions and case text."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from cxrbank.schema import NO_FINDING
from extract import factcourse, factimaging, factpanels, factrules

MAX_TEXT_CHARS = 200_000  # longer texts are cut: case reports are far shorter


@dataclass
class Facts:
    """What one text says about one patient; each found field has its text span in `evidence`."""

    age: int | None = None
    sex: str | None = None
    finding: str | None = None
    view: str | None = None
    modality: str | None = None
    offset: int | None = None
    survival: str | None = None
    intubated: str | None = None
    went_icu: str | None = None
    needed_supplemental_O2: str | None = None
    temperature: float | None = None
    pO2_saturation: float | None = None
    lymphocyte_count: float | None = None
    location: str | None = None
    patient: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def merged_over(self, base: Facts) -> Facts:
        """These facts, with fields this one lacks taken from `base`; "No Finding" here does not
        replace a disease in `base` (the finding is the patient's, as upstream labels it)."""
        out = Facts(**{f.name: getattr(base, f.name) for f in fields(Facts)})
        out.evidence = dict(base.evidence)
        for f in fields(Facts):
            if f.name == "evidence":
                continue
            value = getattr(self, f.name)
            if f.name == "finding" and value == NO_FINDING and base.finding:
                continue  # a normal-looking image of a patient with a disease keeps the disease
            if value is not None:
                setattr(out, f.name, value)
                if f.name in self.evidence:
                    out.evidence[f.name] = self.evidence[f.name]
        return out


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Facts) if f.name != "evidence")


def clean_text(text: object) -> str:
    """Text made safe to scan: str, bounded length, control characters and NULs as spaces."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return ""
    text = text[:MAX_TEXT_CHARS]
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00a0\u2009\u202f]", " ", text)
    # Typeset hyphens ("X‐ray", "COVID‑19" from PDFs and JATS) read as the ASCII hyphen.
    text = re.sub(r"(?<=\w)[\u00ad\u2010\u2011\u2012\u2013\u2212](?=\w)", "-", text)
    text = re.sub(r"\b(SARS|COVID|CoV)\?(?=CoV|2|19\b)", r"\1-", text)
    text = re.sub(r"\b([Xx])\?(?=[Rr]ays?\b)", r"\1-", text)  # "X?ray": a hyphen lost
    text = re.sub(r"(?i)\bsevere acute respiratory syndrome[- ]coronavirus[- ]?2\b", "SARS-CoV-2", text)
    # A space lost in a PDF copy before the virus's name ("positive RT-PCR forCOVID-19"), after
    # a short function word or an adjective ending in -ic/-al, never a prefix ("nonCOVID",
    # "postCOVID", "preCOVID", "antiCOVID").
    return re.sub(r"(?<![a-z])((?!(?:non|post|pre|anti)(?=COVID|SARS|nCoV))[A-Za-z]*"
                  r"(?:for|with|of|to|and|by|in|from|on|ic|al))(?=COVID|SARS-CoV|nCoV)",
                  r"\1 ", text)


def facts_of_text(text: str) -> Facts:
    """Facts of one text taken to describe a single patient."""
    text = clean_text(text)
    facts = Facts()
    if not text.strip():
        return facts
    finders = {
        "age": factrules.find_age,
        "sex": factrules.find_sex,
        "finding": factrules.find_finding,
        "modality": factimaging.find_modality,
        "offset": factimaging.find_offset,
        "survival": factcourse.find_survival,
        "intubated": factcourse.find_intubated,
        "went_icu": factcourse.find_icu,
        "needed_supplemental_O2": factcourse.find_oxygen,
        "temperature": factcourse.find_temperature,
        "pO2_saturation": factcourse.find_saturation,
        "lymphocyte_count": factcourse.find_lymphocytes,
        "location": factcourse.find_location,
    }
    for name, finder in finders.items():
        found = finder(text)
        if found is not None:
            setattr(facts, name, found[0])
            facts.evidence[name] = found[1]
    found_view = factimaging.find_view(text, facts.modality)
    if found_view is not None and facts.modality is None and factimaging.names_both(text):
        found_view = None  # a view next to one of two named modalities does not say which image
    if found_view is not None:
        facts.view, facts.evidence["view"] = found_view
        if facts.modality is None:
            facts.modality = "CT" if facts.view in ("Axial", "Coronal") else "X-ray"
            facts.evidence["modality"] = found_view[1]
    label = factpanels.find_patient_labels(text)
    if len(label) == 1:
        facts.patient = label[0][0]
        facts.evidence["patient"] = label[0][1]
    return facts


def split_patients(text: str) -> list[tuple[str | None, str]]:
    """(label, text) per patient when the text marks several ("Patient 1 …", "Case 2 …").

    Text before the first marker is shared context and goes to every patient. A text with fewer
    than two distinct labels is one patient, returned as [(label or None, text)].
    """
    text = clean_text(text)
    starts = factpanels.patient_section_starts(text)
    labels = {label for label, _ in starts}
    if len(labels) < 2:
        found = factpanels.find_patient_labels(text)
        return [(found[0][0] if len(found) == 1 else None, text)]
    preamble = text[: starts[0][1]]
    parts: dict[str, list[str]] = {}
    for i, (label, begin) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        parts.setdefault(label, []).append(text[begin:end])
    return [(label, " ".join(chunks)) for label, chunks in parts.items()] if not preamble.strip() \
        else [(label, preamble + " " + " ".join(chunks)) for label, chunks in parts.items()]


def extract_facts(text: str) -> list[Facts]:
    """One Facts per patient the text describes (a single patient gives a list of one)."""
    out = []
    for label, part in split_patients(text):
        facts = facts_of_text(part)
        if label is not None:
            facts.patient = label
        out.append(facts)
    return out


def facts_for_panel(caption: str, panel: str | None = None, case_text: str = "",
                    subcaption: str | None = None) -> Facts:
    """Facts for one panel of a figure: its own sub-caption over the caption, over the case text.

    The panel's sub-caption ("(B) axial CT on day 7 …") decides view, modality, offset and
    finding where it states them; the rest of the caption and then the case text fill what it
    does not say. The patient is the one the caption assigns the panel to ("Patient 2 (C, D)"),
    else one named in the panel's sub-caption, else the caption's only patient; case-text facts
    come from that patient's section of the case text. `subcaption`, when given, is the panel's
    part as the figure extractor read it (it also knows "CT (left) and radiograph (right)").
    """
    caption = clean_text(caption)
    sub = clean_text(subcaption) if subcaption else ""
    if not sub and panel:
        sub = factpanels.panel_subcaption(caption, panel)
    label = factpanels.patient_of_panel(caption, panel) if panel else None
    panel_facts = facts_of_text(sub) if sub else Facts()
    if label is None:
        label = panel_facts.patient
    caption_facts = _facts_for_patient(caption, label)
    if label is None:
        label = caption_facts.patient
    case_facts = _facts_for_patient(case_text, label) if case_text else Facts()
    merged = panel_facts.merged_over(caption_facts.merged_over(case_facts))
    if sub and panel_facts.modality and panel_facts.modality != caption_facts.modality:
        _drop_foreign_view(merged, panel_facts)
    merged.patient = label
    return merged


def _facts_for_patient(text: str, label: str | None) -> Facts:
    """Facts of the section of `text` about patient `label` (all of it when unlabelled)."""
    sections = extract_facts(text)
    if label is not None:
        for facts in sections:
            if facts.patient is not None and facts.patient.casefold() == label.casefold():
                return facts
        # A named patient the text has no section for (a case series whose text summarises
        # everyone): nothing in it is known to be about this patient.
        return Facts()
    if len(sections) == 1:
        return sections[0]
    return Facts()


def _drop_foreign_view(merged: Facts, panel_facts: Facts) -> None:
    """A view inherited from the caption must fit the panel's own modality."""
    if panel_facts.view is None and merged.view is not None:
        is_ct_view = merged.view in ("Axial", "Coronal")
        if is_ct_view != (panel_facts.modality == "CT"):
            merged.view = None
            merged.evidence.pop("view", None)
