"""DOI -> ordered full-text candidates with licences: request URLs and response parsers.

Pure functions: the spider sends the requests these build and hands the bodies back here.
Services: Europe PMC (JATS, preferred), Unpaywall, Crossref, OpenAlex (with a key), bioRxiv/
medRxiv, and the landing page's `citation_pdf_url`.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urljoin

DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
PREPRINT_PREFIXES = ("10.1101/", "10.64898/")

# Which candidate to try first: exact JATS captions beat PDFs; publishers' own files beat copies.
_SOURCE_RANK = {"europepmc": 0, "biorxiv": 1, "unpaywall": 2, "crossref": 3, "openalex": 4,
                "landing": 5}
_KIND_RANK = {"jats": 0, "pdf": 1}


class ResolveError(ValueError):
    """A service answered, but with something that is not a usable record."""


@dataclass
class Candidate:
    """One place the full text may be: a JATS XML or a PDF URL, with its licence."""

    url: str
    kind: str  # "jats" or "pdf" (what the service promises; the bytes decide)
    source: str  # the service that named it
    license: str = ""
    pmcid: str = ""  # Europe PMC id, for JATS figure files


@dataclass
class Lookup:
    """What one service said about a DOI."""

    source: str
    found: bool = False  # the service knows the DOI
    title: str = ""
    abstract: str = ""
    license: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    error: str = ""  # the service failed (not "does not know it")


def normalize_doi(text: str) -> str:
    """A bare lower-case DOI from "doi:…", "https://doi.org/…" or a DOI; ValueError if none."""
    value = (text or "").strip()
    value = re.sub(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)", "", value, flags=re.IGNORECASE)
    value = value.strip().rstrip(".,;").lower()
    if (not DOI_RE.match(value) or len(value) > 300 or not value.isprintable()
            or any(part in (".", "..") for part in value.split("/"))):
        raise ValueError(f"not a DOI: {text!r}")  # control characters, ./.. path segments
    return value


def read_doi_list(text: str) -> list[str]:
    """DOIs from a file's text: one per line, blank lines and `#` comments ignored."""
    dois = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            dois.append(normalize_doi(line))
    return dois


def normalize_license(value: Any) -> str:
    """"CC BY 4.0" style text from a licence URL or code ("cc-by", "cc_by_nc_nd", "cc by-nc")."""
    text = str(value or "").strip()
    if not text:
        return ""
    url = re.search(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/?([\d.]+)?", text,
                    re.IGNORECASE)
    if url:
        kind, code, version = url.group(1).lower(), url.group(2).lower(), url.group(3) or ""
        if kind == "publicdomain":
            return "CC0 1.0" if code == "zero" else "Public Domain"
        return " ".join(p for p in ("CC " + code.upper(), version) if p).strip()
    code = re.sub(r"[\s_]+", "-", text.lower())
    if code in ("implied-oa", "publisher-specific-oa", "other-oa", "unspecified-oa", "null"):
        return ""  # Unpaywall's words for "open, licence unknown": not a licence
    match = re.fullmatch(r"cc-?(by(?:-(?:nc|sa|nd))*)(?:-([\d.]+))?", code)
    if match:
        return " ".join(p for p in ("CC " + match.group(1).upper(), match.group(2) or "") if p)
    if code in ("cc0", "cc-0", "cc0-1.0", "public-domain", "pd"):
        return "CC0 1.0" if code.startswith("cc") else "Public Domain"
    return _license_from_words(text) or text[:120]


def _license_from_words(text: str) -> str:
    """"CC BY-NC 4.0" from prose such as "Creative Commons Attribution-NonCommercial 4.0"."""
    lowered = re.sub(r"\s+", " ", text.lower())
    if "creative commons" not in lowered:
        return ""
    if "cc0" in lowered or "public domain dedication" in lowered:
        return "CC0 1.0"
    if "attribution" not in lowered:
        return ""
    parts = ["BY"]
    for words, code in (("noncommercial|non-commercial", "NC"), ("noderiv|no deriv|no-deriv", "ND"),
                        ("sharealike|share alike|share-alike", "SA")):
        if re.search(words, lowered):
            parts.append(code)
    version = re.search(r"\b([1-4]\.0)\b", lowered)
    return " ".join(p for p in ("CC " + "-".join(parts), version.group(1) if version else "") if p)


def _strip_tags(text: Any) -> str:
    plain = re.sub(r"<[^>]+>", " ", str(text or ""))
    return re.sub(r"\s+", " ", html.unescape(plain)).strip()


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (services' fields are untrusted)."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The JSON objects in a list field; anything else (null, strings, numbers) is skipped."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _url(value: Any) -> bool:
    """True for a non-empty string (a URL field that is a number or a list is not a URL)."""
    return isinstance(value, str) and bool(value.strip())


def _load_json(body: bytes, source: str) -> Any:
    if not body.strip():
        raise ResolveError(f"{source}: empty response")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ResolveError(f"{source}: response is not JSON") from None


# -- request URLs ---------------------------------------------------------------------------

def europepmc_search_url(base: str, doi: str) -> str:
    query = urlencode({"query": f'DOI:"{doi}"', "resultType": "core", "format": "json"})
    return f"{base}/search?{query}"


def europepmc_fulltext_url(base: str, pmcid: str) -> str:
    return f"{base}/{pmcid}/fullTextXML"


def europepmc_figure_url(base: str, pmcid: str, href: str) -> str:
    return f"{base}/{pmcid}/bin/{quote(href)}.jpg"


def doi_path(doi: str) -> str:
    """A normalised DOI as a URL path: percent-encoded, `/` and `()` kept as Crossref expects."""
    return quote(doi, safe="/()")


def unpaywall_url(base: str, doi: str, email: str) -> str:
    return f"{base}/{doi_path(doi)}?{urlencode({'email': email})}"


def crossref_url(base: str, doi: str, email: str) -> str:
    return f"{base}/works/{doi_path(doi)}?{urlencode({'mailto': email})}"


def openalex_url(base: str, doi: str, api_key: str) -> str:
    return f"{base}/works/doi:{doi_path(doi)}?{urlencode({'api_key': api_key})}"


def biorxiv_urls(base: str, doi: str) -> list[str]:
    """bioRxiv/medRxiv details lookups, only for preprint DOI prefixes."""
    if not doi.startswith(PREPRINT_PREFIXES):
        return []
    return [f"{base}/details/{server}/{doi_path(doi)}/na/json" for server in ("biorxiv", "medrxiv")]


def doi_landing_url(base: str, doi: str) -> str:
    return f"{base}/{doi_path(doi)}"


# -- response parsers -----------------------------------------------------------------------

def parse_europepmc_search(body: bytes, doi: str, base: str) -> Lookup:
    """Europe PMC core search: the record with this DOI; JATS when open access with a PMCID."""
    data = _load_json(body, "europepmc")
    if not isinstance(data, dict) or "resultList" not in data:
        message = data.get("errMsg") or data.get("message") if isinstance(data, dict) else ""
        raise ResolveError(f"europepmc: {message or 'no resultList in the response'}")
    results = _dicts(_dict(data.get("resultList")).get("result"))
    record = next((r for r in results if str(r.get("doi", "")).lower() == doi), None)
    lookup = Lookup("europepmc")
    if record is None:
        return lookup
    lookup.found = True
    lookup.title = _strip_tags(record.get("title"))
    lookup.abstract = _strip_tags(record.get("abstractText"))
    lookup.license = normalize_license(record.get("license"))
    pmcid = str(record.get("pmcid") or "")
    if pmcid and record.get("isOpenAccess") == "Y":
        lookup.candidates.append(Candidate(
            europepmc_fulltext_url(base, pmcid), "jats", "europepmc", lookup.license, pmcid))
    return lookup


def parse_unpaywall(body: bytes, status: int = 200) -> Lookup:
    """Unpaywall v2: every location's `url_for_pdf` (often null or a landing page)."""
    lookup = Lookup("unpaywall")
    if status == 404:
        return lookup
    data = _load_json(body, "unpaywall")
    if not isinstance(data, dict) or data.get("error"):
        message = data.get("message", "") if isinstance(data, dict) else ""
        if "isn't in unpaywall" in str(message).lower():
            return lookup
        raise ResolveError(f"unpaywall: {message or 'unexpected response'}")
    lookup.found = True
    lookup.title = _strip_tags(data.get("title"))
    locations = [data.get("best_oa_location"), *_dicts(data.get("oa_locations"))]
    for location in locations:
        if isinstance(location, dict) and _url(location.get("url_for_pdf")):
            lookup.candidates.append(Candidate(
                str(location["url_for_pdf"]), "pdf", "unpaywall",
                normalize_license(location.get("license"))))
    lookup.license = next((c.license for c in lookup.candidates if c.license), "")
    return lookup


def parse_crossref(body: bytes, status: int = 200) -> Lookup:
    """Crossref works: title, abstract, `license[]` (version of record first), PDF `link[]`."""
    lookup = Lookup("crossref")
    if status == 404:
        return lookup
    data = _load_json(body, "crossref")
    if not isinstance(data, dict) or data.get("status") != "ok":
        raise ResolveError("crossref: status is not ok")
    message = _dict(data.get("message"))
    lookup.found = True
    titles = message.get("title")
    lookup.title = _strip_tags(titles[0] if isinstance(titles, list) and titles else titles)
    lookup.abstract = _strip_tags(message.get("abstract"))
    licenses = sorted(_dicts(message.get("license")),
                      key=lambda item: item.get("content-version") != "vor")
    lookup.license = normalize_license(licenses[0].get("URL")) if licenses else ""
    for link in _dicts(message.get("link")):
        kind = str(link.get("content-type", "")).lower()
        if _url(link.get("URL")) and kind in ("application/pdf", "unspecified"):
            lookup.candidates.append(Candidate(str(link["URL"]), "pdf", "crossref", lookup.license))
    return lookup


def parse_openalex(body: bytes, status: int = 200) -> Lookup:
    """OpenAlex work: `best_oa_location.pdf_url` and its licence."""
    lookup = Lookup("openalex")
    if status == 404:
        return lookup
    data = _load_json(body, "openalex")
    if not isinstance(data, dict):
        raise ResolveError("openalex: unexpected response")
    lookup.found = True
    lookup.title = _strip_tags(data.get("title") or data.get("display_name"))
    for location in [data.get("best_oa_location"), *_dicts(data.get("locations"))]:
        if isinstance(location, dict) and _url(location.get("pdf_url")):
            lookup.candidates.append(Candidate(
                str(location["pdf_url"]), "pdf", "openalex",
                normalize_license(location.get("license"))))
    lookup.license = next((c.license for c in lookup.candidates if c.license), "")
    return lookup


def parse_biorxiv(body: bytes, doi: str, content_base: str) -> Lookup:
    """bioRxiv/medRxiv details: the latest version's licence, abstract and full-text PDF."""
    lookup = Lookup("biorxiv")
    if not body.strip():
        return lookup  # seen in the wild: an empty 200 body for unknown DOIs
    data = _load_json(body, "biorxiv")
    data = _dict(data)
    messages = _dicts(data.get("messages")) or [{}]
    if str(messages[0].get("status", "")).lower() != "ok":
        return lookup
    versions = [c for c in _dicts(data.get("collection")) if str(c.get("doi", "")).lower() == doi]
    if not versions:
        return lookup
    latest = versions[-1]
    lookup.found = True
    lookup.title = _strip_tags(latest.get("title"))
    lookup.abstract = _strip_tags(latest.get("abstract"))
    lookup.license = normalize_license(latest.get("license"))
    server = str(latest.get("server") or "biorxiv").lower()
    version = str(latest.get("version") or "1")
    base = content_base.replace("{server}", server)
    lookup.candidates.append(Candidate(
        f"{base}/content/{doi}v{version}.full.pdf", "pdf", "biorxiv", lookup.license))
    return lookup


_META_RE = re.compile(r"<meta\s+[^>]*>", re.IGNORECASE)
_ATTR_RE = re.compile(r'([a-zA-Z_:-]+)\s*=\s*("([^"]*)"|\'([^\']*)\')')


def citation_pdf_url(page: bytes, page_url: str) -> str | None:
    """The `<meta name="citation_pdf_url">` of an HTML landing page, made absolute."""
    text = page[:500_000].decode("utf-8", errors="replace")
    for tag in _META_RE.findall(text):
        attrs = {m.group(1).lower(): (m.group(3) or m.group(4) or "")
                 for m in _ATTR_RE.finditer(tag)}
        if attrs.get("name", "").lower() == "citation_pdf_url" and attrs.get("content"):
            return urljoin(page_url, html.unescape(attrs["content"].strip()))
    return None


def order_candidates(lookups: list[Lookup]) -> list[Candidate]:
    """Every candidate once (by URL), JATS first, then by how trustworthy the source is.

    A candidate without a licence borrows the first licence any service stated for the DOI.
    """
    fallback = next((lk.license for lk in sorted(lookups, key=lambda lk: _SOURCE_RANK.get(
        lk.source, 9)) if lk.license), "")
    seen: set[str] = set()
    ordered = []
    everything = [c for lk in lookups for c in lk.candidates]
    for candidate in sorted(everything, key=lambda c: (_KIND_RANK.get(c.kind, 9),
                                                       _SOURCE_RANK.get(c.source, 9))):
        if candidate.url in seen:
            continue
        seen.add(candidate.url)
        if not candidate.license:
            candidate.license = fallback
        ordered.append(candidate)
    return ordered


def paper_text(lookups: list[Lookup]) -> tuple[str, str]:
    """The best title and abstract the services gave (Europe PMC, then Crossref, …)."""
    ranked = sorted(lookups, key=lambda lk: _SOURCE_RANK.get(lk.source, 9))
    title = next((lk.title for lk in ranked if lk.title), "")
    abstract = next((lk.abstract for lk in ranked if lk.abstract), "")
    return title, abstract
