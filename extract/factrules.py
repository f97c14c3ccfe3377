"""Text patterns behind extract.facts: shared helpers and the age, sex and finding finders."""

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
ORDINALS = (
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
    if text in ORDINALS:
        return ORDINALS.index(text) + 1
    total = 0
    for part in re.split(r"[- ]", text):
        if part in _TENS:
            total += 10 * (_TENS.index(part) + 2)
        elif part in _UNITS:
            total += _UNITS.index(part)
        else:
            return None
    return total


def sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    """Start and end of the sentence around `pos`."""
    start = max(text.rfind(". ", 0, pos), text.rfind("; ", 0, pos), text.rfind("\n", 0, pos))
    ends = [i for i in (text.find(". ", pos), text.find("; ", pos), text.find("\n", pos)) if i >= 0]
    return (start + 1 if start >= 0 else 0), (min(ends) if ends else len(text))


def sentence_of(text: str, pos: int) -> str:
    start, end = sentence_bounds(text, pos)
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
    r"\(\s*(?-i:[MF])\s*,\s*(\d{1,3})\s*\)",  # "(F, 45)"
    r"\(\s*(\d{1,3})\s*,\s*(?-i:[MF])\s*\)",  # "(45, F)"
    # "(male, 52)", "Patient, female, 73 years."
    r"\b(?:male|female|man|woman|boy|girl|gentleman|lady)(?:\s+patient)?\s*,\s*(\d{1,3})\s*"
    r"(?:(?:years?|yrs?|y\.?o\.?|y/o)(?=\s*[).;,]|\s*$)|(?=\)))",
)
_AGE_RE = re.compile("|".join(f"(?:{p})" for p in _AGE_PATTERNS), re.IGNORECASE)
_MONTHS_RE = re.compile(rf"(?<![\d.])({NUMBER})[- ]months?[- ]old\b", re.IGNORECASE)
# "smoker (for 30 years)", "diabetes for 15 years,", "(transplanted 8 years)": a duration.
_DURATION_BEFORE = re.compile(r"\b(?:for|since|over|past|last|during|transplanted|smok\w*|"
                              r"living|lived|worked|working)\W+(?:\w+\W+)?$", re.IGNORECASE)
_PAST_AGE = re.compile(r"\bat\s+(?:the\s+)?age\s+(?:of\s+)?$", re.IGNORECASE)
_RANGE_AFTER = re.compile(r"\s*(?:-|–|to)\s*\d")  # "aged 30-70": a range, not an age
_POPULATION_RE = re.compile(r"\b(?:mean|median|average|range|aged between|ages?\s+of)\s*$",
                            re.IGNORECASE)


_FALLS_ILL = (r"(?:presented|(?:was|were) admitted|(?:was|were) hospitali[sz]ed|developed|"
              r"complained|became ill|"
              r"fell ill|tested positive|was diagnosed|had (?:a )?fever)")


def _number_group(m: re.Match[str]) -> int:
    """Which group of an _AGE_RE match holds the number (one per pattern)."""
    return next(i for i, g in enumerate(m.groups(), 1) if g is not None)


def _relative_patient_age(text: str, age: int) -> bool:
    """Whether a relative of another age is a patient too ("her 59-year-old daughter presented
    with fever"): the text then describes two patients."""
    for m in _AGE_RE.finditer(text):
        if number_value(m.group(_number_group(m))) in (None, age) or \
                not _is_relative_age(text, m.start(), m.end()):
            continue
        if re.match(rf"[^.;]{{0,60}}?\b{_FALLS_ILL}\b", text[m.end():], re.IGNORECASE):
            return True
    return False


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
    """Age in whole years ("65-year-old", "aged 65", "sixty-five-year-old", "65 yo", "65M").

    Ranges ("patients aged 30-70") are not ages; "at the age of 60" (a past event, as a rule)
    counts only when the text gives no other age."""
    past: Found = None
    for m in _AGE_RE.finditer(text):
        group = _number_group(m)
        raw = m.group(group)
        # "65M"/"M/65" forms only count when the text does not use them for something else.
        if re.fullmatch(r"\d{1,2}[-/]?[MF]|[MF]\s?/\s?\d{1,2}", m.group(0).strip()) and \
                not re.search(r"(?:^|[\s(,;])$", text[max(0, m.start() - 1):m.start()]):
            continue
        if _is_relative_age(text, m.start(), m.end()):
            continue
        if not re.search(r"\bold\b|\bage", m.group(0), re.IGNORECASE) and \
                _DURATION_BEFORE.search(text[max(0, m.start() - 25):m.start()]):
            continue  # "N years" without "old" after "for", "since", "smoker": a duration
        if _POPULATION_RE.search(text[max(0, m.start() - 20):m.start()]) or \
                _RANGE_AFTER.match(text, m.end()):
            continue
        value = number_value(raw)
        if value is not None and 0 < value <= 115:
            if _relative_patient_age(text, value):
                return None  # a family cluster: the images may be either patient's
            if _PAST_AGE.search(text[max(0, m.start(group) - 20):m.start(group)]):
                past = past or (value, m.group(0).strip())
                continue
            return value, m.group(0).strip()
    if past is not None:
        return past
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
                            r"cath|tube|sheath))|\b([MF])\s?/\s?\d{1,2}\b"
                            r"|\(\s*([MF])\s*,\s*\d{1,2}\s*\)|\(\s*\d{1,2}\s*,\s*([MF])\s*\)"
                            r"|\b\d{1,3}\s*[- ]?(?i:yo|y/o|y\.o\.|yrs?|years?(?:[- ]old)?)\s*,?\s+([MF])\b"
                            r"|\bPz\.?\s*,?\s*([MF])\b")


def _is_relative_noun(text: str, start: int) -> bool:
    before = text[max(0, start - 30):start].casefold()
    return bool(re.search(rf"\b(?:his|her|their|the patient's|whose)\s+(?:[\w-]+\s+){{0,2}}$"
                          rf"|{_RELATIVES}\W+(?:\w+\W+){{0,4}}$"
                          r"|\b(?:infected by|caught it from|physician|doctor|nurse|radiologist|"
                          r"clinician)\W+(?:\w+\W+){0,2}$", before))


def find_sex(text: str) -> Found:
    """M or F from nouns ("65-year-old man"), "sex: F", "65M", roles, or unambiguous pronouns.
    A Radiopaedia "Discussion:" is mostly about the disease in general ("COVID-19
    predominantly affects male patients"): it is read only when the text before it gives no
    sex, and then only its sentences about this case ("This is an 80-year-old lady …")."""
    discussion = re.search(r"(?:^|[\s.])(?:Case )?Discussion\s*:", text)
    if discussion and discussion.start() > 0:
        found = _find_sex(text[:discussion.start()])
        if found is not None:
            return found
        rest = text[discussion.end():]
        about_case = [rest[a:b] for a, b in _sentence_spans(rest) if _CASE_SENTENCE.search(rest[a:b])]
        return _find_sex(" ".join(about_case)) if about_case else None
    return _find_sex(text)


_CASE_SENTENCE = re.compile(r"\b(?:this|our|the)\s+(?:[\w-]+\s+){0,3}(?:patient|case|man|woman|"
                            r"lady|gentleman|boy|girl)\b|\bpresent(?:ed|ing|s)\b", re.IGNORECASE)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in re.finditer(r"[.;]\s+|\n", text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def _find_sex(text: str) -> Found:
    m = _SEX_FIELD_RE.search(text)
    if m:
        return m.group(1)[0].upper(), m.group(0)
    for m in _SEX_RE.finditer(text):
        word = m.group(1).casefold()
        # a title ("Ms. Rossi"), never "MS" (multiple sclerosis) or "ms" (milliseconds)
        if word.rstrip(".") in ("mr", "ms", "mrs") and (
                not re.fullmatch(r"M(?:r|s|rs)\.?", m.group(1))
                or not re.match(r"\.?\s+[A-Z][a-z]", text[m.end():m.end() + 4])):
            continue
        if _is_relative_noun(text, m.start()):
            continue
        return _SEX_WORDS[word], m.group(0)
    m = _ROLE_RE.search(text)
    if m:
        return _ROLE_SEX[m.group(1).casefold()], m.group(0)
    m = _ABBREV_SEX_RE.search(text)
    if m:
        return next(g for g in m.groups() if g), m.group(0).strip()
    male = re.search(r"\b(?:he|him|his|himself)\b", text, re.IGNORECASE)
    female = re.search(r"\b(?:she|her|hers|herself)\b", text, re.IGNORECASE)
    if male and not female:
        return "M", male.group(0)
    if female and not male:
        return "F", female.group(0)
    return None


# A sentence about a modality or a disease in general (a discussion), not about this case.
# ("typical", "characteristic" and "include" are left out: captions use them of their own image,
# "Chest X-ray with typical bilateral opacities".)
GENERIC_SENTENCE = re.compile(
    r"\b(?:most common\w*|typically|usually|commonly|generally|in general|characteristically|"
    r"predominantly affects?|"
    r"classically|may (?:be|show|demonstrate|reveal|manifest|look)|can (?:be|show|reveal|look)|"
    r"sensitivity|specificity)\b", re.IGNORECASE)
THIS_CASE = re.compile(r"\b(?:shows?|showed|shown|demonstrat\w*|reveal\w*|obtained|performed|"
                        r"taken|done|arrows?|arrowheads?|patient|case|day|admission|follow-up)\b",
                        re.IGNORECASE)


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
    r"may (?:represent|reflect|indicate|be due to)|might|could (?:represent|be)|question\w*|"
    r"tests? for|testing for|screen\w* for|consider\w*|compatible with|mimic\w*|versus|vs|"
    r"or|history of|previous|prior|past|treated for|recovered from|vaccin\w*|risk of|"
    r"exposure to|exposed to|contact with|contact of|epidemiolog\w*|area|region|outbreak|"
    r"pandemic|during|era|unlike|such as|like|including|died of|dead of|deceased of)"
    r"\s+(?:\S+\s+){0,3}$", re.IGNORECASE)
_CONTEXT_AFTER = re.compile(
    r"^\s*(?:pandemic|outbreak|epidemic|era|crisis|patients|cases|contacts?|wards?|units?|"
    r"area|region|vaccin\w*|tests?|testing|screening|suspects?|isolation|period|season|"
    r"guidelines?|protocols?|restrictions?|syndrome|like)\b", re.IGNORECASE)
# "flu syndrome", "influenza like illness", "flu symptoms": symptoms, not a diagnosis.
_FLU_LIKE_AFTER = re.compile(r"^\s*(?:illness|symptoms?)\b", re.IGNORECASE)
# Past and vaccine mentions never combine with a later unnamed positive test ("previous
# pulmonary TB … swab positive" is not tuberculosis).
_PAST_BEFORE = re.compile(r"\b(?:history of|previous|prior|past|treated for|recovered from|"
                          r"vaccin\w*(?: against| for)?)\s+(?:\S+\s+){0,3}$", re.IGNORECASE)
# A bacterium named for an infection outside the lungs is not the image's finding.
_OTHER_SITE_AFTER = re.compile(r"^\s*(?:bacter[a]?emia|sepsis|urinary tract|UTI|meningitis|"
                               r"endocarditis|bloodstream|liver abscess)\b", re.IGNORECASE)
# "Tuberculosis is an important mimic", "Lipoid pneumonia is a rare condition".
_GENERAL_AFTER = re.compile(
    r"^\s*(?:pneumonia\s+)?(?:is|are)\s+(?:an?\s+|the\s+)?(?:\w+\s+){0,2}(?:mimic|differential|"
    r"consideration|alternative|rare|uncommon|common|frequent|known|recognised|recognized)\b",
    re.IGNORECASE)
_NORMAL_RE = re.compile(
    r"\b(?:x-?rays?|radiographs?|cxr|ct|films?|scans?|imaging|lungs?|chest)\b[^.;]{0,40}?\b"
    r"(?:is|was|were|are|appeared|appears|remained)\s+(?:completely\s+|entirely\s+)?"
    r"(?:normal|unremarkable)\b"
    r"|\b(?:cxr|x-?ray|radiograph|ct(?: scan)?)\s*[:–-]\s*normal\b"
    r"|\bnormal\s+(?:(?:pa|ap|frontal|lateral|posteroanterior|anteroposterior|portable|supine|"
    r"erect|upright|axial)\s+)?(?:chest\s+)?(?:x-?ray|radiograph|cxr|ct|study|appearances?|"
    r"findings|exam\w*)\b"
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
    """"confirmed" (a positive test or diagnosis beside it), "asserted", "negated" or "unsure"
    (suspected, tested for, past, epidemiological, a general statement)."""
    start, end = sentence_bounds(text, m.start())
    before = text[max(start, m.start() - 60):m.start()]
    after = text[m.end():min(end, next_start, m.end() + 60)]
    if re.search(r"\bdifferential\b", before, re.IGNORECASE):
        return "unsure"  # "differential diagnosis: COVID-19, influenza …" is not a diagnosis
    if re.search(r"\bnegative\s+(?:for|to)\s+(?:\S+\s+){0,2}$", before, re.IGNORECASE):
        return "negated"  # "negative for SARS-CoV-2, positive for influenza A"
    if _OTHER_SITE_AFTER.search(after) or (re.search(r"flu", m.group(1), re.IGNORECASE) and
                                           _FLU_LIKE_AFTER.search(after)):
        return "unsure"
    # "positive for" just before the next mention is that mention's.
    if (_POSITIVE_NEAR.search(before) and not re.search(r"\b(?:no|not|without)\b", before,
                                                          re.IGNORECASE)) or \
            re.match(r"^[^.;]{0,40}?\b(?:positive|confirmed)\b(?!\s+(?:for|to)\s*$)", after,
                     re.IGNORECASE):
        return "negated" if _NEGATED_AFTER.search(after[:20]) else "confirmed"
    if _NEGATED_BEFORE.search(before) or _NEGATED_AFTER.search(after):
        return "negated"
    if _UNCERTAIN_BEFORE.search(before) or _CONTEXT_AFTER.search(after) or \
            _GENERAL_AFTER.search(after):
        return "unsure"
    # The disease as the subject of a general statement: "Pneumocystis pneumonia classically
    # presents with …" (not a caption's "Typical findings of ARDS", about this case's image).
    rest = text[m.end():end]
    if len(text[start:m.start()].split()) <= 2 and GENERIC_SENTENCE.search(rest) and \
            not THIS_CASE.search(text[start:end]):
        return "unsure"
    return "asserted"


def find_finding(text: str) -> Found:
    """The asserted diagnosis through the taxonomy; negated, ruled-out, suspected or past
    mentions do not count. "Normal" imaging gives No Finding only when no disease is asserted."""
    mentions = list(_FINDING_RE.finditer(text))
    asserted: dict[str, list[str]] = {}
    unsure: dict[str, list[str]] = {}
    confirmed: set[str] = set()
    for i, m in enumerate(mentions):
        next_start = mentions[i + 1].start() if i + 1 < len(mentions) else len(text)
        finding = _SYNONYM_BY_PATTERN.get(re.sub(r"[-\s]+", "", m.group(1).casefold()))
        if not finding:
            continue
        state = _mention_state(text, m, next_start)
        if state in ("asserted", "confirmed"):
            asserted.setdefault(finding, []).append(m.group(1))
            if state == "confirmed":
                confirmed.add(finding)
        elif state == "unsure" and not _PAST_BEFORE.search(text[max(0, m.start() - 60):m.start()]) \
                and not re.match(r"\s*(?:like|syndrome|illness|symptoms?)\b", text[m.end():],
                                 re.IGNORECASE) and not _OTHER_SITE_AFTER.search(text[m.end():]):
            unsure.setdefault(finding, []).append(m.group(1))
    for finding in list(asserted):
        if any(other.startswith(finding + "/") for other in asserted):
            del asserted[finding]
    if asserted:
        # A confirmed diagnosis outranks diseases only named ("… can look similar; PCR confirmed
        # COVID-19"), a more specific one a general one, then the most often named.
        best = max(asserted, key=lambda f: (any(c == f or c.startswith(f + "/") or
                                                f.startswith(c + "/") for c in confirmed),
                                            _SPECIFICITY.get(f, 2), len(asserted[f])))
        return best, asserted[best][0]
    # "tested for COVID-19 … PCR positive": one suspected disease and a positive test.
    if len(unsure) == 1 and _POSITIVE_TEST_RE.search(text):
        finding, spans = next(iter(unsure.items()))
        return finding, spans[0]
    m = _NORMAL_RE.search(text)
    if m and not mentions and not _SYMPTOMS_RE.search(text):
        return NO_FINDING, m.group(0)
    return None
