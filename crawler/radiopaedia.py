"""Radiopaedia pages as plain data: listing cards, case pages, study stacks, and their rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from cxrbank.schema import normalize_modality, normalize_sex

TERMS = (
    "Radiopaedia's terms of use forbid bulk automated downloading of its content, including for "
    "machine learning, without the site's permission; each case carries a modified CC BY-NC-SA "
    "3.0 licence whose attribution must name the author, Radiopaedia.org and the rID."
)
CARD_SELECTOR = "a.search-result.search-result-case[href]"
# Anything that looks like a result card, parsable or not: a listing showing these but
# yielding no case means the site's layout changed under us.
CARD_HINT_SELECTOR = ".search-result, [class*=search-result-case]"
AUTHOR_SELECTORS = (".author-info .author-name", ".case-authors a", ".author-name")
CHALLENGE_MARKERS = (
    "captcha", "cf-challenge", "challenge-platform", "cf-chl", "just a moment...",
    "verify you are human", "attention required!", "are you a robot",
)
# Markers that make a 200 page a challenge. Weaker ones do not: Cloudflare injects its
# /cdn-cgi/challenge-platform/ script into ordinary pages, and pages embed reCAPTCHA in forms.
CHALLENGE_MARKERS_200 = (
    "just a moment...", "cf-chl", "verify you are human", "are you a robot",
    "attention required!",
)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC_URL = "https://prod-images-static.radiopaedia.org"


class LayoutChanged(ValueError):
    """A page that should hold something we know how to read holds nothing readable."""


@dataclass
class Card:
    """One search result: what the listing says about a case without fetching it."""

    url: str
    title: str
    author: str = ""
    published: str = ""  # ISO date, or "" when unreadable
    certainty: str = ""
    modalities: str = ""
    revisions: int | None = None  # only when the card shows it

    def fingerprint(self) -> str:
        """A digest of everything the card shows; a change means the case may have changed."""
        text = "\x1f".join(
            [self.title, self.author, self.published, self.certainty, self.modalities,
             "" if self.revisions is None else str(self.revisions)]
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass
class Listing:
    cards: list[Card]
    hints: int  # elements that look like cards (parsed or not)
    next_url: str | None


@dataclass
class Study:
    study_id: str
    description: str = ""
    modality: str = ""
    findings: str = ""


@dataclass
class Case:
    url: str  # canonical, no query
    rid: str
    title: str
    author: str = ""
    certainty: str = ""
    revisions: int | None = None
    published: str = ""
    age: str = ""
    sex: str = ""
    presentation: str = ""
    discussion: str = ""
    studies: list[Study] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)  # the header's "Systems": Chest, …


@dataclass
class StackImage:
    image_id: str
    position: float
    url: str
    width: int = 0
    height: int = 0
    plane: str = ""
    caption: str = ""


@dataclass
class Stack:
    modality: str
    images: list[StackImage]
    spacing: tuple[float, float, float] | None = None


def clean(text: str | None) -> str:
    """Whitespace collapsed to single spaces."""
    return " ".join((text or "").split())


def text_of(selection: Any) -> str:
    """All text under the selected nodes, whitespace collapsed."""
    return clean(" ".join(selection.xpath("string()").getall()))


def canonical_url(url: str) -> str:
    """A case URL without query, fragment or trailing slash (`?lang=us` dropped)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def parse_date(text: str) -> str:
    """An ISO date from "12 Mar 2020", "March 12, 2020", "2020-03-12"; "" when unreadable."""
    text = clean(re.sub(r"^(published|case published)\s*:?\s*", "", clean(text), flags=re.I))
    for fmt in ("%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text[:30], fmt).date().isoformat()
        except ValueError:
            continue
    match = re.search(r"\d{4}-\d{2}-\d{2}", text)
    return match.group(0) if match else ""


def parse_int(text: str) -> int | None:
    match = re.search(r"\d+", text or "")
    return int(match.group(0)) if match else None


def is_test_host(base_url: str) -> bool:
    """True for a loopback test site; any other base URL counts as the real Radiopaedia."""
    return (urlsplit(base_url).hostname or "").lower() in LOOPBACK_HOSTS


ACCEPT_ENV = "CXRBANK_RADIOPAEDIA_ACCEPT_TERMS"


def accepted_in_environment() -> bool:
    """Whether the user acknowledged the terms through $CXRBANK_RADIOPAEDIA_ACCEPT_TERMS."""
    return os.environ.get(ACCEPT_ENV, "").strip().lower() in ("1", "yes", "true")


def terms_accepted(base_url: str, accepted: bool) -> bool:
    """Whether a crawl of `base_url` may run: always for a loopback test site, else if accepted."""
    return accepted or is_test_host(base_url)


def is_challenge(status: int, body: str) -> bool:
    """True for an anti-bot challenge or captcha page (never to be evaded)."""
    head = body[:20000].casefold()
    if 200 <= status < 300:
        return any(marker in head for marker in CHALLENGE_MARKERS_200)
    if any(marker in head for marker in CHALLENGE_MARKERS):
        return status in (403, 429, 503) or "captcha" in head
    return False


def parse_listing(response: Any) -> Listing:
    """The cards of a search page and its next page."""
    cards = []
    for node in response.css(CARD_SELECTOR):
        href = node.attrib.get("href", "")
        title = text_of(node.css(".search-result-title"))
        if not href or not title or "/cases/" not in href:
            continue
        revisions = node.attrib.get("data-revisions") or text_of(
            node.css(".search-result-revisions")
        )
        cards.append(
            Card(
                url=canonical_url(response.urljoin(href)),
                title=title,
                author=text_of(node.css(".search-result-author")),
                published=parse_date(
                    node.css(".search-result-published_at time::attr(datetime)").get()
                    or text_of(node.css(".search-result-published_at"))
                ),
                certainty=text_of(node.css(".search-result-diagnostic-certainty")),
                modalities=text_of(node.css(".search-result-modalities")),
                revisions=parse_int(revisions) if revisions else None,
            )
        )
    hints = len(response.css(CARD_HINT_SELECTOR))
    next_href = response.css("div[role=navigation] a.next_page::attr(href)").get()
    next_url = response.urljoin(next_href) if next_href else None
    return Listing(cards=cards, hints=hints, next_url=next_url)


def header_facts(response: Any) -> dict[str, str]:
    """The case header's label/value pairs (Citation, DOI, rID, Case published, Revisions…)."""
    facts: dict[str, str] = {}
    for label_div in response.xpath("//div[contains(concat(' ', @class, ' '), ' col-sm-3 ')]"):
        label = clean(label_div.xpath("./strong").xpath("string()").get()).rstrip(":").strip()
        if not label:
            continue
        value = label_div.xpath(
            "following-sibling::div[contains(concat(' ', @class, ' '), ' col-sm-8 ')][1]"
        )
        if value:
            facts[label.casefold()] = text_of(value)
    return facts


def data_items(response: Any) -> dict[str, str]:
    """`#case-patient-data` items, old (`<strong>Age:</strong> 45 years`) or new markup."""
    items: dict[str, str] = {}
    for node in response.css("#case-patient-data .data-item"):
        label = text_of(node.css(".data-item-label")) or text_of(node.css("strong"))
        whole = text_of(node)
        value = text_of(node.css(".data-item-value")) or whole[len(label):] if label else ""
        label = label.rstrip(":").strip().casefold()
        if label:
            items[label] = clean(value).lstrip(":").strip()
    return items


def parse_age(text: str) -> str:
    """Age in years from "45 years", "6 months", "3 weeks"; "" when not a number."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*(year|yr|y\b|month|mo\b|week|wk|day)?", text or "", re.I)
    if not match:
        return ""
    value = float(match.group(1))
    unit = (match.group(2) or "year").casefold()
    divisor = {"m": 12.0, "w": 52.0, "d": 365.0}.get(unit[0], 1.0)
    years = value / divisor
    return str(int(years)) if years == int(years) else f"{years:.2f}".rstrip("0")


def study_id_of(node: Any) -> str:
    """Older pages: `data-study-id`; newer ones: the last `-` part of `div.main-study-desc`'s id."""
    found = node.xpath("descendant-or-self::*[@data-study-id][1]/@data-study-id").get()
    if found:
        return found.strip()
    desc_id = node.css("div.main-study-desc::attr(id)").get() or ""
    last = desc_id.rsplit("-", 1)[-1].strip()
    return last if last.isdigit() else ""


def parse_case(response: Any) -> Case:
    """A case page; LayoutChanged when it has no title or no rID."""
    title = text_of(response.css("h1.header-title"))
    facts = header_facts(response)
    rid = (facts.get("rid") or "").strip()
    if not rid:
        match = re.search(r"rID[-:\s]*(\d+)", facts.get("citation", "") + facts.get("doi", ""))
        rid = match.group(1) if match else ""
    if not title or not rid.isdigit():
        raise LayoutChanged(f"{response.url}: no case title or rID found (the page layout changed)")
    canonical = response.css("link[rel=canonical]::attr(href)").get()
    items = data_items(response)
    author = next(
        (text_of(found) for sel in AUTHOR_SELECTORS if (found := response.css(sel)[:1])), ""
    )
    studies = []
    for node in response.css("div.case-section.case-study"):
        study_id = study_id_of(node)
        if not study_id:
            continue
        studies.append(
            Study(
                study_id=study_id,
                description=text_of(node.css(".study-desc h2")),
                modality=text_of(node.css(".study-modality span")),
                findings=text_of(node.css(".study-findings")),
            )
        )
    return Case(
        url=canonical_url(response.urljoin(canonical) if canonical else response.url),
        rid=rid,
        title=title,
        author=author,
        certainty=text_of(response.css("span.diagnostic-certainty-title")),
        revisions=parse_int(facts.get("revisions", "")),
        published=parse_date(facts.get("case published", "")),
        age=parse_age(items.get("age", "")),
        sex=normalize_sex(items.get("gender") or items.get("sex")),
        presentation=clean(" ".join(response.css("#case-patient-presentation p").xpath(
            "string()").getall())),
        discussion=clean(" ".join(response.css("#case-discussion p").xpath("string()").getall())),
        studies=studies,
        systems=[clean(part) for part in re.split(r"[,;]", facts.get("systems", ""))
                 if part.strip()],
    )


# A study is kept when its description names the chest, or when the case's Systems include
# Chest and the description names no other body part ("Hand X-ray", "CT brain" are dropped).
CHEST_WORDS = re.compile(
    r"\b(chest|thora\w*|lungs?|pulmonary|cxr|ctpa|hrct|ribs?|mediastin\w*|pleura\w*)\b", re.I)
OTHER_PARTS = re.compile(
    r"\b(brain|head|skull|neck|cervical|spine|spinal|lumbar|sacr\w*|abdom\w*|pelvi\w*|hand|"
    r"wrist|elbow|arm|forearm|humerus|shoulder|hip|knee|ankle|foot|feet|leg|femur|tibia|"
    r"fingers?|toes?|limbs?|extremit\w*|orbits?|sinus\w*|face|facial|kidneys?|renal|liver|"
    r"hepat\w*|bowel|colon|bladder|scrotum|testes|breast)\b", re.I)


def chest_study(case: Case, study: Study) -> bool:
    """Whether a study images the chest (only those become rows)."""
    if CHEST_WORDS.search(study.description):
        return True
    if OTHER_PARTS.search(study.description):
        return False
    return any(system.casefold() == "chest" for system in case.systems)


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _spacing(stack: dict[str, Any], first: dict[str, Any]) -> tuple[float, float, float] | None:
    """Voxel spacing (x, y, z) in mm when the stack JSON states it."""
    spacing = stack.get("spacing") or first.get("spacing")
    if isinstance(spacing, list) and len(spacing) == 3:
        values = tuple(_float(v) for v in spacing)
        return values if all(v > 0 for v in values) else None  # type: ignore[return-value]
    pixel = first.get("pixel_spacing")
    thickness = _float(first.get("slice_thickness"))
    if isinstance(pixel, list) and len(pixel) == 2 and thickness > 0:
        return (_float(pixel[0]), _float(pixel[1]), thickness)
    return None


def parse_stacks(body: bytes | str, static_url: str) -> list[Stack]:
    """A study's stacks JSON; images sorted by position; file URLs resolved on the static host."""
    data = json.loads(body)
    if not isinstance(data, list):
        raise LayoutChanged("stacks JSON is not a list (the API changed)")
    stacks = []
    for raw in data:
        if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
            continue
        images = []
        for img in raw["images"]:
            if not isinstance(img, dict) or img.get("id") in (None, ""):
                continue
            name = img.get("fullscreen_filename") or img.get("public_filename") or ""
            if not name:
                continue
            images.append(
                StackImage(
                    image_id=str(img["id"]),
                    position=_float(img.get("position")),
                    url=urljoin(static_url.rstrip("/") + "/", str(name)),
                    width=int(_float(img.get("width"))),
                    height=int(_float(img.get("height"))),
                    plane=clean(str(img.get("plane_projection") or "")),
                    caption=clean(str(img.get("caption") or img.get("aux_modality") or "")),
                )
            )
        images.sort(key=lambda i: (i.position, i.image_id))
        first = raw["images"][0] if raw["images"] and isinstance(raw["images"][0], dict) else {}
        stacks.append(Stack(modality=normalize_modality(str(raw.get("modality") or "")),
                            images=images, spacing=_spacing(raw, first)))
    return stacks
