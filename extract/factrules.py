"""The text patterns behind extract.facts: one finder per field, each returning (value, span)."""

from __future__ import annotations

import re

from cxrbank.schema import NO_FINDING, SYNONYMS

Found = tuple[object, str] | None

_UNITS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth", "twentieth",
)
WORD_NUMBER = (r"(?:(?:" + "|".join(_TENS) + r")(?:[- ](?:" + "|".join(_UNITS[1:10]) + r"))?"
               r"|" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")")
NUMBER = rf"(?:\d{{1,3}}|{WORD_NUMBER})"


def number_value(text: str) -> int | None:
    """An int from digits or English number words ("sixty-five" -> 65)."""
    text = text.strip().casefold()
    if text.isdigit():
        return int(text)
    if text in _ORDINALS:
        return _ORDINALS.index(text) + 1
    total = 0
    for part in re.split(r"[- ]", text):
        if part in _TENS:
            total += 10 * (_TENS.index(part) + 2)
        elif part in _UNITS:
            total += _UNITS.index(part)
        else:
            return None
    return total


def _sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    """Start and end of the sentence around `pos`."""
    start = max(text.rfind(". ", 0, pos), text.rfind("; ", 0, pos), text.rfind("\n", 0, pos))
    ends = [i for i in (text.find(". ", pos), text.find("; ", pos), text.find("\n", pos)) if i >= 0]
    return (start + 1 if start >= 0 else 0), (min(ends) if ends else len(text))


def _sentence(text: str, pos: int) -> str:
    start, end = _sentence_bounds(text, pos)
    return text[start:end]


# ---- age -------------------------------------------------------------------------------
_RELATIVES = (r"(?:son|daughter|wife|husband|mother|father|brother|sister|child|children|baby|"
              r"grand\w+|spouse|partner|friend|colleague|nephew|niece|cousin|uncle|aunt|"
              r"relative|neighbou?r|contact|sibling|twin|fetus|infant of)")
_AGE_PATTERNS = (
    rf"(?<![\d.])({NUMBER})\s*[- ]?\s*(?:years?|yrs?|y)\.?\s*[- ]?\s*(?:old|of age)\b",
    rf"\baged?\s*(?:of|:|=)?\s*({NUMBER})\b(?!\s*(?:%|months|days|weeks))",
    r"(?<![\d.])(\d{1,3})\s*[- ]?(?:yo|y/o|y\.o\.|yrs?\b|years?\b)(?=\s*(?:,|\)|male|female|man|"
    r"woman|boy|girl|gentleman|lady|patient|M\b|F\b))",
    r"\b(?:man|woman|male|female|boy|girl|gentleman|lady|patient)\s+(?:of|aged)\s+(\d{1,3})\b",
    r"(?<![\w.,/])(\d{1,2})[-/]?(?:M|F)(?=[\s,;:)]|$)(?!\s*(?:°|fr\b|french|cath|tube|sheath))",
    r"\b(?:M|F)\s?/\s?(\d{1,2})\b",
)
_AGE_RE = re.compile("|".join(f"(?:{p})" for p in _AGE_PATTERNS), re.IGNORECASE)
_MONTHS_RE = re.compile(rf"(?<![\d.])({NUMBER})[- ]months?[- ]old\b", re.IGNORECASE)
_POPULATION_RE = re.compile(r"\b(?:mean|median|average|range|aged between|ages?\s+of)\s*$",
                            re.IGNORECASE)


def _is_relative_age(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 12):start].casefold()
    after = text[end:end + 30].casefold()
    if re.search(r"\b(?:his|her|their|whose)\s*$", before):
        return True
    if re.search(rf"\b{_RELATIVES},?\s+(?:an?\s+|aged\s+)?$", text[max(0, start - 25):start],
                 re.IGNORECASE):
        return True
    return bool(re.match(rf"[\s,-]*(?:\w+[\s,-]+)?{_RELATIVES}\b", after))


def find_age(text: str) -> Found:
    """Age in whole years ("65-year-old", "aged 65", "sixty-five-year-old", "65 yo", "65M")."""
    for m in _AGE_RE.finditer(text):
        raw = next(g for g in m.groups() if g is not None)
        # "65M"/"M/65" forms only count when the text does not use them for something else.
        if re.fullmatch(r"\d{1,2}[-/]?[MF]|[MF]\s?/\s?\d{1,2}", m.group(0).strip()) and \
                not re.search(r"(?:^|[\s(,;])$", text[max(0, m.start() - 1):m.start()]):
            continue
        if _is_relative_age(text, m.start(), m.end()):
            continue
        if _POPULATION_RE.search(text[max(0, m.start() - 20):m.start()]):
            continue
        value = number_value(raw)
        if value is not None and 0 < value <= 115:
            return value, m.group(0).strip()
    for m in _MONTHS_RE.finditer(text):
        months = number_value(m.group(1))
        if months is not None and not _is_relative_age(text, m.start(), m.end()):
            return months // 12, m.group(0)
    return None


# ---- sex -------------------------------------------------------------------------------
_SEX_WORDS = {
    "man": "M", "male": "M", "boy": "M", "gentleman": "M", "mr": "M", "mr.": "M",
    "woman": "F", "female": "F", "girl": "F", "lady": "F", "mrs": "F", "mrs.": "F", "ms": "F",
    "ms.": "F", "pregnant": "F",
}
_SEX_RE = re.compile(r"\b(man|male|boy|gentleman|woman|female|girl|lady|pregnant|mrs?\.?|ms\.?)"
                     r"(?![\w-])", re.IGNORECASE)
_SEX_FIELD_RE = re.compile(r"\b(?:sex|gender)\s*[:=]?\s*(male|female|m|f)\b", re.IGNORECASE)
_ROLE_RE = re.compile(r"\b(?:is|was)\s+(?:the|a|an|her|his|their)\s+(?:\w+\s+)?"
                      r"(son|daughter|husband|wife|father|mother|brother|sister)\b", re.IGNORECASE)
_ROLE_SEX = {"son": "M", "husband": "M", "father": "M", "brother": "M",
             "daughter": "F", "wife": "F", "mother": "F", "sister": "F"}
_ABBREV_SEX_RE = re.compile(r"(?:^|[\s(,;])\d{1,2}[-/]?([MF])(?=[\s,;:)]|$)(?!\s*(?:[Ff]r\b|[Ff]rench|"
                            r"cath|tube|sheath))|\b([MF])\s?/\s?\d{1,2}\b")


def _is_relative_noun(text: str, start: int) -> bool:
    before = text[max(0, start - 30):start].casefold()
    return bool(re.search(rf"\b(?:his|her|their|the patient's|whose)\s+(?:[\w-]+\s+){{0,2}}$"
                          rf"|{_RELATIVES}\W+(?:\w+\W+){{0,4}}$", before))


def find_sex(text: str) -> Found:
    """M or F from nouns ("65-year-old man"), "sex: F", "65M", roles, or unambiguous pronouns."""
    m = _SEX_FIELD_RE.search(text)
    if m:
        return m.group(1)[0].upper(), m.group(0)
    for m in _SEX_RE.finditer(text):
        word = m.group(1).casefold()
        if word in ("mr", "ms", "mrs", "mr.", "ms.", "mrs.") and not m.group(1)[0].isupper():
            continue
        if word in ("mr", "ms", "mrs") and not re.match(r"\.?\s+[A-Z]", text[m.end():m.end() + 3]):
            continue
        if _is_relative_noun(text, m.start()):
            continue
        return _SEX_WORDS[word], m.group(0)
    m = _ROLE_RE.search(text)
    if m:
        return _ROLE_SEX[m.group(1).casefold()], m.group(0)
    m = _ABBREV_SEX_RE.search(text)
    if m:
        return (m.group(1) or m.group(2)), m.group(0).strip()
    male = re.search(r"\b(?:he|him|his|himself)\b", text, re.IGNORECASE)
    female = re.search(r"\b(?:she|her|hers|herself)\b", text, re.IGNORECASE)
    if male and not female:
        return "M", male.group(0)
    if female and not male:
        return "F", female.group(0)
    return None


# ---- finding ---------------------------------------------------------------------------
_GENERIC_KEYS = {"viral", "bacterial", "aspiration", "normal", "no finding", "no findings",
                 "todo", "unknown", "pneumonia", "covid-19, ards"}
_CASED_KEYS = {"sars", "mers", "ards", "tb", "ncp", "pcp", "mrsa"}


def _key_pattern(key: str) -> str:
    return r"[-\s]?".join(re.escape(part) for part in re.split(r"[-\s]+", key))


def _finding_regex() -> re.Pattern[str]:
    keys = sorted((k for k in SYNONYMS if k not in _GENERIC_KEYS), key=len, reverse=True)
    parts = []
    for key in keys:
        body = _key_pattern(key)
        if key in _CASED_KEYS:
            body = f"(?-i:{_key_pattern(key.upper())})"
        parts.append(body)
    return re.compile(r"(?<![\w-])(" + "|".join(parts) + r")(?![\w]|-(?!19|2019))",
                      re.IGNORECASE)


_FINDING_RE = _finding_regex()
_SYNONYM_BY_PATTERN = {re.sub(r"[-\s]+", "", k.casefold()): v for k, v in SYNONYMS.items()}
_NEGATED_BEFORE = re.compile(
    r"\b(?:no|not|without|negative|free of|absence of|absent|den(?:y|ies|ied)|exclud\w*|"
    r"rule[sd]? out|ruling out|never|unlikely|non)\b[^.;]*$", re.IGNORECASE)
_NEGATED_AFTER = re.compile(
    r"^[^.;]{0,45}?(?<![-\w])(?:negative|excluded|ruled out|unlikely|was not|were not|-ve)\b",
    re.IGNORECASE)
_POSITIVE_NEAR = re.compile(r"\b(?:positive|confirmed|diagnos\w*|\+ve)\b", re.IGNORECASE)
_UNCERTAIN_BEFORE = re.compile(
    r"\b(?:suspect\w*|suspicion|possible|possibly|probable|concern\w*|differential|tested for|"
    r"tests? for|testing for|screen\w* for|consider\w*|compatible with|mimic\w*|versus|vs|"
    r"or|history of|previous|prior|past|treated for|recovered from|vaccin\w*|risk of|"
    r"exposure to|exposed to|contact with|epidemiolog\w*|area|region|outbreak|pandemic|during|"
    r"era|unlike|such as|like|including)\s+(?:\S+\s+){0,3}$", re.IGNORECASE)
_CONTEXT_AFTER = re.compile(
    r"^\s*(?:pandemic|outbreak|epidemic|era|crisis|patients|cases|contacts?|wards?|units?|"
    r"area|region|vaccin\w*|tests?|testing|screening|suspects?|isolation|period|season|"
    r"guidelines?|protocols?|restrictions?)\b", re.IGNORECASE)
_NORMAL_RE = re.compile(
    r"\b(?:x-?rays?|radiographs?|cxr|ct|films?|scans?|imaging|lungs?|chest)\b[^.;]{0,40}?\b"
    r"(?:is|was|were|are|appeared|appears|remained)\s+(?:completely\s+|entirely\s+)?"
    r"(?:normal|unremarkable)\b"
    r"|\b(?:cxr|x-?ray|radiograph|ct(?: scan)?)\s*[:–-]\s*normal\b"
    r"|\bnormal\s+(?:chest\s+)?(?:x-?ray|radiograph|cxr|ct|study|appearances?|findings|exam\w*)\b"
    r"|\bno\s+(?:\w+\s+){0,2}abnormalit(?:y|ies)\b|\bno\s+significant\s+(?:\w+\s+)?findings\b",
    re.IGNORECASE)
_SYMPTOMS_RE = re.compile(
    r"\b(?:fever|febrile|pyrexia|cough\w*|dyspn\w+|short(?:ness)? of breath|symptom\w*|pneumonia|"
    r"infect\w+|positive|opacit\w+|consolidat\w+|ground[- ]glass|infiltrat\w+|hypoxi\w+|"
    r"intubat\w+|ventilat\w+|temperature|pain|crackles|sputum|hypoxaemi\w+)", re.IGNORECASE)
_POSITIVE_TEST_RE = re.compile(
    r"\b(?:RT-?PCR|PCR|swabs?|tests?|tested|testing|serology|result)\b[^.;]{0,30}\bpositive\b"
    r"|\bpositive\b[^.;]{0,20}\b(?:RT-?PCR|PCR|swabs?|tests?|serology)\b", re.IGNORECASE)
_SPECIFICITY = {"ARDS": 1, "Pneumonia/Viral": 0, "Pneumonia/Bacterial": 0}


def _mention_state(text: str, m: re.Match[str], next_start: int) -> str:
    """"asserted", "negated" or "unsure" (suspected, tested for, past, epidemiological)."""
    start, end = _sentence_bounds(text, m.start())
    before = text[max(start, m.start() - 60):m.start()]
    after = text[m.end():min(end, next_start, m.end() + 60)]
    if (_POSITIVE_NEAR.search(before) and not re.search(r"\b(?:no|not|without)\b", before, re.I)) \
            or re.match(r"^[^.;]{0,40}?\b(?:positive|confirmed)\b", after, re.I):
        return "negated" if _NEGATED_AFTER.search(after[:20]) else "asserted"
    if _NEGATED_BEFORE.search(before) or _NEGATED_AFTER.search(after):
        return "negated"
    if _UNCERTAIN_BEFORE.search(before) or _CONTEXT_AFTER.search(after):
        return "unsure"
    return "asserted"


def find_finding(text: str) -> Found:
    """The asserted diagnosis through the taxonomy; negated, ruled-out, suspected or past
    mentions do not count. "Normal" imaging gives No Finding only when no disease is asserted."""
    mentions = list(_FINDING_RE.finditer(text))
    asserted: dict[str, list[str]] = {}
    unsure: dict[str, list[str]] = {}
    for i, m in enumerate(mentions):
        next_start = mentions[i + 1].start() if i + 1 < len(mentions) else len(text)
        finding = _SYNONYM_BY_PATTERN.get(re.sub(r"[-\s]+", "", m.group(1).casefold()))
        if not finding:
            continue
        state = _mention_state(text, m, next_start)
        if state == "asserted":
            asserted.setdefault(finding, []).append(m.group(1))
        elif state == "unsure":
            unsure.setdefault(finding, []).append(m.group(1))
    for finding in list(asserted):
        if any(other.startswith(finding + "/") for other in asserted):
            del asserted[finding]
    if asserted:
        best = max(asserted, key=lambda f: (_SPECIFICITY.get(f, 2), len(asserted[f])))
        return best, asserted[best][0]
    # "tested for COVID-19 … PCR positive": one suspected disease and a positive test.
    if len(unsure) == 1 and _POSITIVE_TEST_RE.search(text):
        finding, spans = next(iter(unsure.items()))
        return finding, spans[0]
    m = _NORMAL_RE.search(text)
    if m and not mentions and not _SYMPTOMS_RE.search(text):
        return NO_FINDING, m.group(0)
    return None


# ---- modality and view -----------------------------------------------------------------
_XRAY_RE = re.compile(r"\b(?:x-?rays?|xrays?|radiograph\w*|CXRs?|chest films?|plain[- ]films?|"
                      r"roentgenogra\w*|frontal films?)\b", re.IGNORECASE)
_CT_RE = re.compile(r"(?<![\w-])(?:CT|HRCT|MDCT|CTA|CTPA|MSCT)(?![\w])|\bcomputed[- ]tomograph\w*"
                    r"|\btomodensitometr\w*")


_NOT_THIS_STUDY_BEFORE = re.compile(
    r"\b(?:prior|previous|outside|earlier|old|recommend\w*|further\w*|planned|due for|"
    r"awaiting|follow-up with)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)
_NOT_THIS_STUDY_AFTER = re.compile(
    r"^[^.;]{0,40}?\b(?:not available|not shown|is recommended|was recommended|would be|"
    r"will be|is planned)\b", re.IGNORECASE)


def _study_mention(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first mention of a modality that is about an image of this case (not a prior,
    outside, recommended or unavailable study)."""
    for m in pattern.finditer(text):
        if _NOT_THIS_STUDY_BEFORE.search(text[max(0, m.start() - 40):m.start()]):
            continue
        if _NOT_THIS_STUDY_AFTER.search(text[m.end():m.end() + 60]):
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


_IMAGING_NEAR = r"(?:view|film|radiograph|x-?ray|cxr|projection|chest|image|bedside|portable|" \
                r"erect|supine|upright|semi|and lateral)"
_VIEW_RE = re.compile(
    r"(?P<pa>\bpostero-?\s?anterior\b|\bposterior-anterior\b|(?-i:(?<![\w-])PA(?![\w-])))"
    r"|(?P<ap>\bantero-?\s?posterior\b|\banterior-posterior\b|(?-i:(?<![\w-])AP(?![\w-])))"
    r"|(?P<l>\blateral(?=\s+(?:chest\s+)?(?:radiograph|x-?ray|cxr|view|film|projection|image))"
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
        if kind in ("pa", "ap") and len(m.group(0)) == 2:
            near = text[max(0, m.start() - 30):m.end() + 30]
            if not re.search(_IMAGING_NEAR, near, re.IGNORECASE):
                continue
        if kind in ("axial", "coronal"):
            if modality == "X-ray" or not (modality == "CT" or _CT_RE.search(_sentence(text, m.start()))):
                continue
            yield ("Axial" if kind == "axial" else "Coronal"), m.group(0)
            continue
        if modality == "CT":
            continue
        if kind in ("pa", "l"):
            yield kind.upper(), m.group(0)
            continue
        sentence = _sentence(text, m.start())
        if kind == "supine" or re.search(r"\bsupine\b", sentence, re.IGNORECASE):
            yield "AP Supine", m.group(0)
        elif re.search(r"(?<!semi)(?<!semi-)\b(?:erect|upright)\b", sentence, re.IGNORECASE):
            yield "AP Erect", m.group(0)
        else:
            yield "AP", m.group(0)


# ---- offset ----------------------------------------------------------------------------
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30}
_DAY_N_RE = re.compile(rf"\bday\s+({NUMBER})\b|\b(?:on\s+)?(?:the\s+)?({'|'.join(_ORDINALS)}|"
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


def find_offset(text: str) -> Found:
    """Days since symptom onset (or admission) of the image the text describes: "day 7",
    "5 days after onset", "on admission" = 0, "N days later", a symptom duration at
    presentation ("a 4-day history of"), "a few days" = 5. Sentences about an image first."""
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
    marks = list(_PANEL_MARK_RE.finditer(caption))
    # A mark of this panel alone ("(B)") before a group that includes it ("(A, B)").
    order = sorted(range(len(marks)), key=lambda i: len(_panel_letters(
        marks[i].group(1) or marks[i].group(2))) > 1)
    for i in order:
        m = marks[i]
        if want not in _panel_letters(m.group(1) or m.group(2)):
            continue
        start, end = _sentence_bounds(caption, m.start())
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
