"""What an addition request (a GitHub issue's untrusted text) names: DOIs, case URLs, PDF URLs, hints."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from cxrbank.schema import SYNONYMS, canonical_finding

MAX_TEXT = 256 * 1024  # characters of an issue read; the rest is ignored (and said)
MAX_ITEMS = 20  # DOIs + URLs taken from one issue; the rest are listed as left over

# Hosts from which a direct PDF link in an issue may be fetched (open repositories and OA
# publishers). Anything else is listed as refused, never fetched.
DEFAULT_PDF_HOSTS: tuple[str, ...] = (
    "europepmc.org", "www.ebi.ac.uk", "www.ncbi.nlm.nih.gov", "pmc.ncbi.nlm.nih.gov",
    "www.medrxiv.org", "www.biorxiv.org", "arxiv.org", "journals.plos.org", "www.mdpi.com",
    "www.frontiersin.org", "bmcmedimaging.biomedcentral.com", "www.cureus.com", "peerj.com",
    "www.nature.com", "www.thelancet.com", "www.nejm.org", "pubs.rsna.org", "www.kjronline.org",
)

# Crossref's recommended pattern (/^10.\d{4,9}/[-._;()/:A-Z0-9]+$/i), unanchored for free text.
_DOI = re.compile(r"\b10\.\d{4,9}/[-._;()/:A-Za-z0-9]+", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_OTHER_URL = re.compile(r"\b(?!https?://)[a-z][a-z0-9+.-]{1,15}://[^\s<>\"'`]*", re.IGNORECASE)
_RADIOPAEDIA_CASE = re.compile(r"^/cases/([a-z0-9][a-z0-9-]*)/?$", re.IGNORECASE)
_FIGURE_HINT = re.compile(r"\b(?:fig(?:ure)?\.?)\s*(\d{1,2}[a-h]?)\b", re.IGNORECASE)
_PATIENT_HINT = re.compile(r"\b(?:patient|case)\s*(?:no\.?\s*)?(\d{1,3})\b", re.IGNORECASE)
_FINDING_HINT = re.compile(r"\bfinding\s*[:=]\s*([A-Za-z0-9 ./,'-]{2,60})", re.IGNORECASE)
_TRAILING = ".,;:!?'\""


@dataclass
class Hints:
    """What the requester said about which images and what they show (optional)."""

    figures: list[str] = field(default_factory=list)  # "2", "3B"
    patients: list[str] = field(default_factory=list)
    finding: str | None = None  # hierarchical, through the taxonomy


@dataclass
class AdditionRequest:
    dois: list[str] = field(default_factory=list)
    radiopaedia_cases: list[str] = field(default_factory=list)  # canonical case URLs
    pdf_urls: list[str] = field(default_factory=list)  # allowed direct PDF links
    refused: list[tuple[str, str]] = field(default_factory=list)  # (url or DOI, why)
    left_over: list[str] = field(default_factory=list)  # requests beyond the first MAX_ITEMS
    ignored_chars: int = 0  # characters of the text beyond MAX_TEXT, not read
    hints: Hints = field(default_factory=Hints)

    def empty(self) -> bool:
        return not (self.dois or self.radiopaedia_cases or self.pdf_urls)


def decode_text(data: bytes | str | None) -> str:
    """Issue text as str whatever its encoding: UTF-8, else Latin-1; NULs and controls blanked.

    Not shortened: `parse_request` reads the first MAX_TEXT characters and says so.
    """
    if data is None:
        return ""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", " ", text)


_CLOSING = {")": "(", "]": "[", "}": "{", ">": "<"}


def strip_trailing(value: str) -> str:
    """Drop the punctuation that ends the sentence around a DOI or URL; keep balanced brackets.

    Brackets are counted once and the end moved back, so a long run of them stays linear."""
    counts = {ch: value.count(ch) for ch in "()[]{}<>"}
    end = len(value)
    while end and value[end - 1] in _TRAILING + ")]}>":
        last = value[end - 1]
        opening = _CLOSING.get(last)
        if opening and counts[opening] >= counts[last]:
            break  # balanced: the bracket belongs to it, as in 10.1016/S0140-6736(20)30183-5
        if opening:
            counts[last] -= 1
        end -= 1
    return value[:end]


def clean_doi(raw: str) -> str:
    """A DOI without surrounding punctuation, lower-cased (DOIs are case-insensitive)."""
    return strip_trailing(unquote(raw).strip()).lower()


def is_public_address(address: str) -> bool:
    """True for a globally routable IP address; False for private, loopback, link-local…
    (the one rule for issue links and for every URL the crawler fetches)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def is_public_host(host: str) -> bool:
    """False for IP literals in private, loopback, link-local or reserved ranges and local names."""
    host = host.strip("[]").lower()
    if not host or host == "localhost" or host.endswith((".local", ".localhost", ".internal")):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "." in host
    return is_public_address(host)


def canonical_radiopaedia_url(url: str) -> str | None:
    """https://radiopaedia.org/cases/<slug> for a case URL (any query, www or not), else None."""
    parts = urlsplit(url)
    if parts.hostname not in ("radiopaedia.org", "www.radiopaedia.org"):
        return None
    match = _RADIOPAEDIA_CASE.match(parts.path)
    return f"https://radiopaedia.org/cases/{match.group(1).lower()}" if match else None


def parse_request(text: str, pdf_hosts: tuple[str, ...] = DEFAULT_PDF_HOSTS, *,
                  trusted_hosts: set[str] | frozenset[str] = frozenset(),
                  extra_pdf_hosts: tuple[str, ...] = ()) -> AdditionRequest:
    """Everything an issue names, in order of appearance, deduplicated, at most MAX_ITEMS.

    Nothing here fetches or runs anything. Every link that will not be fetched is listed in
    `refused` with the reason (off the allow-list, private address, not http(s), not a case,
    DOI or PDF link); requests beyond MAX_ITEMS go to `left_over`, and text beyond MAX_TEXT
    is counted in `ignored_chars`. `trusted_hosts` are the hosts of the configured services
    (a local test web), allowed although they are private addresses.
    """
    pdf_hosts = (*pdf_hosts, *extra_pdf_hosts)
    full = decode_text(text)
    text = full[:MAX_TEXT]
    request = AdditionRequest(ignored_chars=len(full) - len(text))
    seen: set[str] = set()
    refused: set[str] = set()

    def refuse(url: str, why: str) -> None:
        if url not in refused:
            refused.add(url)
            request.refused.append((url, why))

    def blank(match: re.Match[str]) -> str:
        return " " * len(match.group(0))

    found: list[tuple[int, list[str], str]] = []  # (position, where it goes, value)
    without_http = _URL.sub(blank, text)
    for match in _OTHER_URL.finditer(without_http):
        refuse(strip_trailing(match.group(0)), "not an http(s) link")
    for match in _URL.finditer(text):
        url = strip_trailing(match.group(0))
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in ("doi.org", "dx.doi.org", "www.doi.org"):
            doi = _DOI.search(unquote(parts.path))
            if doi:
                found.append((match.start(), request.dois, clean_doi(doi.group(0))))
            else:
                refuse(url, "no DOI in the link")
        elif host not in trusted_hosts and not is_public_host(host):
            refuse(url, "private or local address")
        elif case := canonical_radiopaedia_url(url):
            found.append((match.start(), request.radiopaedia_cases, case))
        elif host in ("radiopaedia.org", "www.radiopaedia.org"):
            refuse(url, "not a Radiopaedia case URL (https://radiopaedia.org/cases/NAME)")
        elif parts.path.lower().endswith(".pdf") or "/pdf" in parts.path.lower():
            if host in pdf_hosts:
                pdf = urlunsplit(("https", parts.netloc, parts.path, parts.query, ""))
                found.append((match.start(), request.pdf_urls, pdf))
            else:
                refuse(url, "host not on the allow-list")
        else:
            refuse(url, "not a DOI, Radiopaedia case or PDF link")
    # DOIs in the prose; those inside links (a PDF link's path) are not requests of their own.
    prose = _OTHER_URL.sub(blank, without_http)
    found.extend((m.start(), request.dois, clean_doi(m.group(0))) for m in _DOI.finditer(prose))
    for _, kind, value in sorted(found, key=lambda item: item[0]):
        if value in seen:
            continue
        seen.add(value)  # taken or left over, each named once
        if len(seen) <= MAX_ITEMS:
            kind.append(value)
        else:
            request.left_over.append(value)

    request.hints.figures = list(dict.fromkeys(m.group(1).upper() for m in _FIGURE_HINT.finditer(text)))
    request.hints.patients = list(dict.fromkeys(m.group(1) for m in _PATIENT_HINT.finditer(text)))
    finding = _FINDING_HINT.search(text)
    if finding:
        name = finding.group(1).strip().rstrip(_TRAILING).strip()
        request.hints.finding = canonical_finding(name) or SYNONYMS.get(name.casefold())
    return request
