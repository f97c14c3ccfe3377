"""Patients and panels in a text: "Patient 2 …" sections and "(B) …" sub-captions."""

from __future__ import annotations

import re

from extract.captions import caption_parts
from extract.factrules import sentence_bounds

# ---- patients and panels ---------------------------------------------------------------
_PATIENT_RE = re.compile(r"(?<![\w-])(Patient|PATIENT|patient|Case|CASE|case|Pt\.?)\s*(?:#|No\.?\s*)?"
                         r"(\d{1,2}|(?-i:[A-H]))(?![\w-])")


def _patient_label(m: re.Match[str]) -> str:
    word = m.group(1).rstrip(".").capitalize()
    return f"{'Patient' if word == 'Pt' else word} {m.group(2)}"


def find_patient_labels(text: str) -> list[tuple[str, str]]:
    """Distinct (label, span) of the patients a text names, by number ("Case 2" = "Patient 2")."""
    seen: dict[str, tuple[str, str]] = {}
    for m in _PATIENT_RE.finditer(text):
        seen.setdefault(m.group(2).upper(), (_patient_label(m), m.group(0)))
    return list(seen.values())


def patient_section_starts(text: str) -> list[tuple[str, int]]:
    """(label, offset) where a patient's section begins: a marker opening a sentence or line."""
    starts: list[tuple[str, int]] = []
    labels: dict[str, str] = {}
    for m in _PATIENT_RE.finditer(text):
        before = text[max(0, m.start() - 3):m.start()]
        if m.start() == 0 or re.search(r"(?:[.;:!?\n)—–]|\s-)\s*$", before):
            key = m.group(2).upper()
            label = labels.setdefault(key, _patient_label(m))
            if not starts or starts[-1][0] != label:
                starts.append((label, m.start()))
    return starts


_PANEL_MARK_RE = re.compile(
    r"\(([A-Ha-h](?:\s*(?:[-–—,&]|and|to)\s*[A-Ha-h])*)\)"
    r"|(?:^|(?<=[.;:]\s)|(?<=\.\s\s))([A-H])(?:[,.:)])\s")


def _panel_letters(group: str) -> set[str]:
    letters: set[str] = set()
    group = group.upper()
    for a, b in re.findall(r"([A-H])\s*(?:[-–—]|to)\s*([A-H])", group):
        letters.update(chr(c) for c in range(ord(a), ord(b) + 1))
    letters.update(re.findall(r"[A-H]", group))
    return letters


def panel_subcaption(caption: str, panel: str) -> str:
    """The part of a figure caption about one panel ("(B) …" up to the next panel mark, or the
    sentence that ends in "(B)"); "" when the caption has no mark for it."""
    want = panel.strip().upper()[:1]
    part = caption_parts(caption)[1].get(want)
    if part:  # the figure extractor's reading ("X-ray (A) and CT (B) of …", "Fig. 1 a …")
        return part
    marks = list(_PANEL_MARK_RE.finditer(caption))
    # A mark of this panel alone ("(B)") before a group that includes it ("(A, B)").
    order = sorted(range(len(marks)), key=lambda i: len(_panel_letters(
        marks[i].group(1) or marks[i].group(2))) > 1)
    for i in order:
        m = marks[i]
        if want not in _panel_letters(m.group(1) or m.group(2)):
            continue
        start, end = sentence_bounds(caption, m.start())
        leading = not caption[start:m.start()].strip(" .;:") or m.group(2) is not None or \
            re.match(r"\s*[A-Z]", caption[m.end():m.end() + 2]) is not None
        if leading:
            stop = marks[i + 1].start() if i + 1 < len(marks) else len(caption)
            return caption[m.end():stop].strip(" ,;")
        return caption[start:end].strip()
    return ""


def patient_of_panel(caption: str, panel: str) -> str | None:
    """The patient label a caption gives a panel ("Patient 1 (A–C) and patient 2 (D, E)")."""
    want = panel.strip().upper()[:1]
    for m in _PATIENT_RE.finditer(caption):
        group = re.match(r"\s*[:,-]?\s*(?:panels?\s*)?\(?([A-Ha-h](?:\s*(?:[-–—,&]|and|to)\s*"
                         r"[A-Ha-h])*)\)", caption[m.end():m.end() + 30])
        if group and want in _panel_letters(group.group(1)):
            return _patient_label(m)
    return None
