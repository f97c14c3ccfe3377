"""Facts about the image a text describes: modality, view and offset (days since onset)."""

from __future__ import annotations

import re
from datetime import date

from extract.factrules import (
    GENERIC_SENTENCE,
    NUMBER,
    ORDINALS,
    THIS_CASE,
    Found,
    number_value,
    sentence_of,
)

# ---- modality and view -----------------------------------------------------------------
# "chest Xay": X-ray with its "-r" lost in a PDF copy, as real notes have it; "RX": the Italian
# and Spanish abbreviation (SIRM cases), after "chest" or, in upper case, before words about
# the lungs ("RX: bilateral interstitial thickening"); "Rx: amoxicillin" is a prescription.
_XRAY_RE = re.compile(r"\b(?:x[- ]?rays?|xrays?|(?<=chest )xays?|radiograph\w*|CXRs?|"
                      r"chest films?|plain[- ]films?|roentgenogra\w*|frontal films?|"
                      r"(?-i:RX)(?=\s*:\s*(?i:normal|negative|unremarkable|no\b)|[^.;]{0,80}?\b(?:opacit|consolidat|thicken|infiltrat|lungs?\b|"
                      r"pleur|interstit|thora|chest|torace|hil))|(?<=chest )rx)\b", re.IGNORECASE)
# "TC": the Italian abbreviation (SIRM cases: "TC torace", "TC: bilateral GGO"), upper case and
# followed by chest words; "angio-CT" is a CT.
# "CT value 22" is a PCR cycle threshold, not a scan.
_CT_RE = re.compile(r"(?:(?<![\w-])|(?<=angio-))(?:CT|HRCT|MDCT|CTA|CTPA|MSCT)(?![\w])"
                    r"(?!\s+(?:values?|cycles?|of \d))"
                    r"|(?i:\bcomput(?:ed|eri[sz]ed)[- ]tomograph\w*|\btomodensitometr\w*)"
                    r"|(?<![\w-])TC(?=\s*:|\s+(?:\w+\s+){0,3}(?:torace|chest|thora|lung|polmon"
                    r"|ground|GGO))")


_NOT_THIS_STUDY_BEFORE = re.compile(
    r"\b(?:prior|previous|outside|earlier|old|recommend\w*|further\w*|planned|due for|"
    r"awaiting|follow-up with)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)
_NOT_THIS_STUDY_AFTER = re.compile(
    r"^[^.;]{0,40}?\b(?:not available|not shown|is recommended|was recommended|would be|"
    r"will be|is planned|(?:was|were) not (?:performed|done|obtained))\b", re.IGNORECASE)


# "radiograph-negative", "CT-occult": an adjective about the disease, not a study.
_ADJECTIVE_AFTER = re.compile(r"^-?(?:negative|positive|occult|proven|confirmed|guided)\b",
                              re.IGNORECASE)
def _study_mention(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first mention of a modality that is about an image of this case (not a prior,
    outside, recommended or unavailable study, an adjective, or a general statement)."""
    for m in pattern.finditer(text):
        if _NOT_THIS_STUDY_BEFORE.search(text[max(0, m.start() - 40):m.start()]):
            continue
        if _NOT_THIS_STUDY_AFTER.search(text[m.end():m.end() + 60]):
            continue
        if _ADJECTIVE_AFTER.search(text[m.end():m.end() + 12]):
            continue
        sentence = sentence_of(text, m.start())
        if GENERIC_SENTENCE.search(sentence) and not THIS_CASE.search(sentence):
            continue
        return m
    return None


def find_modality(text: str) -> Found:
    """X-ray or CT when the text names only one of them (both named: left to the view)."""
    xray = _study_mention(_XRAY_RE, text)
    ct = _study_mention(_CT_RE, text)
    if xray and not ct:
        return "X-ray", xray.group(0)
    if ct and not xray:
        return "CT", ct.group(0)
    return None


def names_both(text: str) -> bool:
    """Whether the text names both a radiograph and a CT of this case."""
    return bool(_study_mention(_XRAY_RE, text) and _study_mention(_CT_RE, text))


_IMAGING_NEAR = r"(?:view|film|radiograph|x-?ray|cxr|projection|chest|image|bedside|portable|" \
                r"erect|supine|upright|semi|and lateral)"
_VIEW_RE = re.compile(
    r"(?P<pa>\bpostero-?\s?anterior\b|\bposterior-anterior\b|(?-i:(?<![\w-])PA(?![\w-])))"
    r"|(?P<ap>\bantero-?\s?posterior\b|\banterior-posterior\b|(?-i:(?<![\w-])AP(?![\w-])))"
    r"|(?P<l>\blateral(?=\s+(?:chest\s+)?(?:radiograph|x-?ray|cxr|view|film|projection|image))"
    r"|\blatero-?lateral\b|(?-i:(?<![\w-])LL(?![\w-]))"
    r"|\b(?:left|right)\s+lateral\b(?=\s+(?:chest|view|radiograph|x-?ray|film)))"
    r"|(?P<portable>\b(?:portable|bedside|mobile)\s+(?:\w+\s+)?(?:chest\s+)?"
    r"(?:radiograph|x-?ray|cxr|film))"
    r"|(?P<supine>\bsupine\s+(?:frontal\s+|portable\s+|chest\s+)*(?:radiograph|x-?ray|cxr|film))"
    r"|(?P<axial>\b(?:axial|transverse|transaxial)\b)|(?P<coronal>\bcoronal\b)",
    re.IGNORECASE)


_VIEW_FAMILY = {"PA": "PA", "AP": "AP", "AP Supine": "AP", "AP Erect": "AP", "L": "L",
                "Axial": "Axial", "Coronal": "Coronal"}


def find_view(text: str, modality: str | None) -> Found:
    """PA, AP, AP Supine, AP Erect, L (radiographs) or Axial, Coronal (CT), when the text states
    one view; a text naming several ("PA and lateral", "axial and coronal") has none."""
    views = list(_views(text, modality))
    if not views or len({_VIEW_FAMILY[v] for v, _ in views}) > 1:
        return None
    return max(views, key=lambda v: len(v[0]))


def _views(text: str, modality: str | None):
    """Every (view, span) the text states."""
    for m in _VIEW_RE.finditer(text):
        kind = m.lastgroup
        if (kind in ("pa", "ap") and len(m.group(0)) == 2) or m.group(0) == "LL":
            near = text[max(0, m.start() - 30):m.end() + 30]
            if not re.search(_IMAGING_NEAR, near, re.IGNORECASE):
                continue
            if re.match(r"\s*[:=]?\s*\d{2,3}\s*/\s*\d{2,3}", text[m.end():]):
                continue  # "PA: 90/60" is a blood pressure (pressione arteriosa)
        if kind in ("axial", "coronal"):
            if modality == "X-ray" or not (modality == "CT" or _CT_RE.search(sentence_of(text, m.start()))):
                continue
            yield ("Axial" if kind == "axial" else "Coronal"), m.group(0)
            continue
        if modality == "CT":
            continue
        if kind in ("pa", "l"):
            yield kind.upper(), m.group(0)
            continue
        sentence = sentence_of(text, m.start())
        if kind == "supine" or re.search(r"\bsupine\b", sentence, re.IGNORECASE):
            yield "AP Supine", m.group(0)
        elif re.search(r"(?<!semi)(?<!semi-)\b(?:erect|upright)\b", sentence, re.IGNORECASE):
            yield "AP Erect", m.group(0)
        else:
            yield "AP", m.group(0)


# ---- offset ----------------------------------------------------------------------------
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30}
_DAY_N_RE = re.compile(rf"\bday\s+({NUMBER})\b|\b(?:on\s+)?(?:the\s+)?({'|'.join(ORDINALS)}|"
                       r"\d{1,3}(?:st|nd|rd|th))\s+day\b", re.IGNORECASE)
_AFTER_ONSET_RE = re.compile(
    rf"\b({NUMBER}|a few|several)\s+(day|week|month)s?\s+(?:after|from|post|since|following)\s+"
    r"(?:the\s+)?(?:the\s+)?(?:onset|symptom|illness|disease|first symptom|fever)", re.IGNORECASE)
_DURATION_RE = re.compile(
    rf"\b({NUMBER})[- ](day|week)s?[- ](?:history|duration)\b"
    rf"|\b(?:for|since)\s+(?:the\s+(?:last|past)\s+)?({NUMBER})\s+(day|week)s?\b"
    rf"|\b({NUMBER})\s+(day|week)s?\s+(?:ago|prior|before admission|earlier)\b"
    rf"|\b({NUMBER})\s+(day|week)s?\s+of\s+(?:\w+\s+){{0,2}}(?:fever|cough|symptoms?|dyspn\w+|"
    r"shortness|pyrexia|diarrh\w+|malaise|sore)", re.IGNORECASE)
_LATER_RE = re.compile(rf"\b({NUMBER}|a few|several)\s+(day|week|month)s?\s+(?:later|after "
                       r"(?:admission|presentation|treatment))\b", re.IGNORECASE)
_ADMISSION_RE = re.compile(r"\b(?:on|at|upon|day of|time of)\s+(?:hospital\s+)?(?:admission|"
                           r"presentation|arrival)\b|\binitial\s+(?:\w+\s+)?(?:chest\s+)?"
                           r"(?:radiograph|x-?ray|cxr|ct|film|scan)", re.IGNORECASE)


def _amount(raw: str) -> int | None:
    raw = raw.casefold()
    if raw in ("a few", "several"):
        return 5
    return number_value(raw)


def _imaging_sentences(text: str) -> str:
    """The sentences of a text that speak of an image (radiograph, CT)."""
    parts = re.split(r"(?<=[.;])\s+|\n", text)
    return " ".join(p for p in parts if _XRAY_RE.search(p) or _CT_RE.search(p))


_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE_RE = re.compile(rf"\b(?:{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?|(\d{{1,2}})(?:st|nd|rd|th)?"
                      rf"\s+(?:of\s+)?{_MONTH})(?!\w)(?:,?\s+(\d{{4}}))?", re.IGNORECASE)
_ONSET_RE = re.compile(r"\b(?:onset|bec[oa]me (?:ill|unwell|sick)|fell ill|ill with|symptoms? "
                       r"(?:began|started|appeared)|since|developed (?:a )?(?:fever|cough|symptoms))",
                       re.IGNORECASE)


def _dates(text: str) -> list[tuple[date, re.Match[str]]]:
    found = []
    for m in _DATE_RE.finditer(text):
        month = (m.group(1) or m.group(4)).casefold()[:3]
        day = int(m.group(2) or m.group(3))
        try:
            found.append((date(int(m.group(5) or 2020), _MONTH_NAMES.index(month) + 1, day), m))
        except ValueError:
            continue
    return found


def _offset_from_dates(text: str) -> Found:
    """Image date minus onset date, when the text dates both ("ill on January 17 … chest
    radiograph on January 25")."""
    onset = image = None
    for when, m in _dates(text):
        sentence = sentence_of(text, m.start())
        if onset is None and _ONSET_RE.search(sentence) and not (
                _XRAY_RE.search(sentence) or _CT_RE.search(sentence)):
            onset = when
        elif image is None and onset is not None and (_XRAY_RE.search(sentence)
                                                      or _CT_RE.search(sentence)):
            image = (when, m.group(0))
    if onset is None or image is None:
        return None
    days = (image[0] - onset.replace(year=image[0].year)).days
    return (days, image[1]) if 0 <= days <= 180 else None


def find_offset(text: str) -> Found:
    """Days since symptom onset (or admission) of the image the text describes: "day 7",
    "5 days after onset", onset and image dates both given, "on admission" = 0, "N days later", a symptom duration at
    presentation ("a 4-day history of"), "a few days" = 5. Sentences about an image first."""
    found = _offset_from_dates(text)
    if found is not None:
        return found
    for scope in (_imaging_sentences(text), text):
        found = _offset_in(scope)
        if found is not None:
            return found
    return None


def _offset_in(text: str) -> Found:
    m = _AFTER_ONSET_RE.search(text)
    if m and (n := _amount(m.group(1))) is not None:
        return n * _UNIT_DAYS[m.group(2).casefold()], m.group(0)
    for d in _DAY_N_RE.finditer(text):
        n = number_value(d.group(1) or re.sub(r"(?<=\d)(st|nd|rd|th)$", "", d.group(2)))
        if n is not None and n <= 400:
            return n, d.group(0)
    later = _LATER_RE.search(text)
    if later and (n := _amount(later.group(1))) is not None:
        return n * _UNIT_DAYS[later.group(2).casefold()], later.group(0)
    m = _ADMISSION_RE.search(text)
    if m:
        return 0, m.group(0)
    m = _DURATION_RE.search(text)
    if m:
        groups = [g for g in m.groups() if g is not None]
        n = _amount(groups[0])
        if n is not None and n * _UNIT_DAYS[groups[1].casefold()] <= 60:
            return n * _UNIT_DAYS[groups[1].casefold()], m.group(0)
    return None
