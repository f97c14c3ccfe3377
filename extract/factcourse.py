"""Facts about the course of illness: survival, intubation, ICU, oxygen, vital signs, place."""

from __future__ import annotations

import re

from extract.factrules import Found


# ---- course of illness -----------------------------------------------------------------
def _yes_no(text: str, yes: str, no: str) -> Found:
    neg = re.search(no, text, re.IGNORECASE)
    if neg:
        return "N", neg.group(0)
    for m in re.finditer(yes, text, re.IGNORECASE):
        before = text[max(0, m.start() - 40):m.start()]
        if re.search(r"\b(?:no|not|without|never|den\w+|avoid\w*|prior to|before)\b[^.;,]*$",
                     before, re.IGNORECASE):
            continue
        return "Y", m.group(0)
    return None


def find_survival(text: str) -> Found:
    """N when the patient died, Y when discharged or recovered."""
    died = re.search(r"\b(?:died|passed away|deceased|succumbed|expired|did not survive|"
                     r"death of the patient|patient's death|fatal outcome)\b", text, re.IGNORECASE)
    if died and not re.search(r"\b(?:not|never)\s+$", text[max(0, died.start() - 8):died.start()]):
        return "N", died.group(0)
    return _yes_no(text, r"\b(?:discharged|discharge home|recovered|survived|full recovery|"
                         r"complete recovery|favou?rable (?:course|outcome))\b", r"(?!)")


def find_intubated(text: str) -> Found:
    return _yes_no(text, r"\b(?:intubated|intubation|extubat\w+|mechanical(?:ly)?\s+ventilat\w+|"
                         r"invasive (?:mechanical )?ventilation|endotracheal tube|ET tube|ETT|"
                         r"tracheostomy)\b",
                   r"\b(?:no|not|never|without)\s+(?:\w+\s+){0,2}(?:intubat\w+|mechanical"
                   r"(?:ly)? ventilat\w+)|\bintubation was not\b")


def find_icu(text: str) -> Found:
    return _yes_no(text, r"\b(?:ICU|intensive care|intensive therapy|critical care)\b",
                   r"\b(?:no|not|never|without)\s+(?:\w+\s+){0,3}(?:ICU|intensive care)\b")


def find_oxygen(text: str) -> Found:
    return _yes_no(
        text,
        r"\b(?:supplemental (?:oxygen|O2)|oxygen (?:therapy|supplementation|support|mask|via)|"
        r"O2 via|nasal cannula|high[- ]flow|low[- ]flow oxygen|NIV|non-?invasive ventilation|CPAP|"
        r"\d+\s?L(?:/min)? of (?:oxygen|O2)|(?:oxygen|O2) at \d+\s?L|intubated|mechanical "
        r"ventilation)\b",
        r"\b(?:no|not|without)\s+(?:\w+\s+){0,3}(?:oxygen|O2)\s+(?:supplementation|therapy|"
        r"support)|\bno (?:\w+ ){0,2}(?:need|requirement) for (?:\w+ )?(?:oxygen|O2)")


# ---- measurements ----------------------------------------------------------------------
_DEGREE = "[°º˚?�]"
_TEMPERATURE_RE = re.compile(
    rf"(?<![\d.])(3[4-9]|4[0-2])(?:[.,·]|�(?=\d{_DEGREE}))?(\d)?\s?{_DEGREE}?\s?(?:C|℃)(?![A-Za-z])"
    rf"|\b(?:temperature|fever|pyrexia|febrile)\b[^\d.;]{{0,25}}(3[4-9]|4[0-2])(?:[.,](\d))?"
    rf"\s?{_DEGREE}", re.IGNORECASE)
_SATURATION_RE = re.compile(
    r"\b(?:SpO\s?2|SaO\s?2|SO2|O2\s?sat\w*|oxygen saturation|saturation|sat|pO\s?2)\b"
    r"[^\d%.;]{0,30}(\d{2,3}(?:[.,]\d)?)\s?%", re.IGNORECASE)
_LYMPHOCYTE_RE = re.compile(
    r"\blympho(?:cyte)?s?\s*(?:count|cell count|cells|#)?\b[^\d%;.]{0,25}(\d+(?:[.,]\d+)?)"
    r"(?!\s*%)(?!\d)\s*(/mm3|/mm³|/µl|/ul|/μl|cells/)?", re.IGNORECASE)


def find_temperature(text: str) -> Found:
    """Body temperature in °C."""
    m = _TEMPERATURE_RE.search(text)
    if not m:
        return None
    whole, frac = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return float(f"{whole}.{frac or 0}"), m.group(0)


def find_saturation(text: str) -> Found:
    """Oxygen saturation in percent."""
    for m in _SATURATION_RE.finditer(text):
        value = float(m.group(1).replace(",", "."))
        if 20 <= value <= 100:
            return value, m.group(0)
    return None


def find_lymphocytes(text: str) -> Found:
    """Lymphocyte count in 10^9/L (per-mm³ counts converted)."""
    for m in _LYMPHOCYTE_RE.finditer(text):
        value = float(m.group(1).replace(",", "."))
        if m.group(2) or value >= 50:
            value = value / 1000
        if 0 < value < 50:
            return round(value, 3), m.group(0)
    return None


_PLACE = r"(?:[A-Z][\w'’.-]+(?:\s+(?:of|de|di|del|and|&)\s+|\s+)){0,6}"
_LOCATION_RE = re.compile(
    rf"\b({_PLACE}(?:Hospital|Clinic|Medical Cent(?:er|re)|Infirmary|Hospital Center)"
    r"(?:\s+(?:of|de|di|del)\s+(?:[A-Z][\w'’.-]+\s?){1,4})?)(?:,\s*((?:[A-Z][\w.-]+\s?){1,4}))?")


def find_location(text: str) -> Found:
    """A named hospital (and city) where the patient was seen."""
    m = _LOCATION_RE.search(text)
    if not m:
        return None
    words = m.group(1).split()
    while words and words[0].casefold() in ("our", "the", "this", "that", "a", "an", "local",
                                            "nearby", "regional", "same", "another", "in", "at"):
        words = words[1:]
    if len(words) < 2:
        return None
    value = " ".join(words)
    if m.group(2):
        value = f"{value}, {m.group(2).strip().rstrip('.')}"
    return value, m.group(0).strip()
