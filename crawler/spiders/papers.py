"""The papers spider: DOIs -> resolved full text (JATS or PDF) -> chest panels -> pipeline."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest

from crawler import resolve
from crawler.paper_rows import (
    DocumentError,
    Paper,
    PaperPanels,
    chest_panels,
    jats_figure_hrefs,
    read_jats,
    read_pdf,
    sniff_document,
)
from crawler.radiopaedia import is_challenge
from crawler.state import ERROR, NO_FULL_TEXT, Outcome
from extract.jats import unreadable_graphics

CANONICAL_DOI_URL = "https://doi.org"
MAX_CANDIDATES = 8


class FetchFailed(Exception):
    """A download that gave no usable response (network error, refused URL, HTTP error)."""

    def __init__(self, message: str, status: int | None = None, why: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.why = why or message  # the message without the URL

    @property
    def broken(self) -> bool:
        """A passing failure, retried next run (refused, network, 401/403, 429, 5xx, a
        challenge page); only 404/410 say for good that the file is not there."""
        return self.status not in DEFINITIVE_STATUSES


DEFINITIVE_STATUSES = (404, 410)  # "not there" for good: the only download failures stored as final


# Download errors by type name (Scrapy's and Twisted's) -> the words a user reads.
_NETWORK_WORDS = {
    "CannotResolveHostError": "DNS lookup failed",
    "DNSLookupError": "DNS lookup failed",
    "DownloadTimeoutError": "timed out",
    "TimeoutError": "timed out",
    "TCPTimedOutError": "timed out",
    "DownloadConnectionRefusedError": "connection refused",
    "ConnectionRefusedError": "connection refused",
    "ResponseDataLossError": "the connection dropped mid-response",
}


def network_failure(url: str, exc: BaseException) -> str:
    """One short line for a download that failed without a response."""
    if isinstance(exc, IgnoreRequest):  # refused by the URL guard, or by robots.txt
        return f"{url[:200]}: {str(exc) or 'refused'}"
    host = urlsplit(url).hostname or url[:200]
    words = next((_NETWORK_WORDS[c.__name__] for c in type(exc).__mro__
                  if c.__name__ in _NETWORK_WORDS), "")
    return f"cannot reach {host} ({words or str(exc)[:200] or type(exc).__name__})"


def merge_unreachable(errors: list[str]) -> str:
    """Service errors joined, "cannot reach A (why)" and "cannot reach B (why)" as one clause."""
    hosts: dict[str, list[str]] = {}
    others: list[str] = []
    for error in dict.fromkeys(errors):
        match = re.fullmatch(r"cannot reach (\S+) \((.+)\)", error)
        if match:
            hosts.setdefault(match.group(2), []).append(match.group(1))
        else:
            others.append(error)
    merged = [f"cannot reach {', '.join(names)} ({why})" for why, names in hosts.items()]
    return "; ".join(merged + others)


def is_challenge_page(response: scrapy.http.Response) -> bool:
    """An anti-bot challenge or captcha page (HTML) instead of the answer: never evaded."""
    if response.status in DEFINITIVE_STATUSES or not response.body:
        return False
    head = response.body[:2048].lstrip().lower()
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    if "html" not in content_type and not head.startswith((b"<!doctype html", b"<html")):
        return False
    return is_challenge(response.status, response.body[:20000].decode("utf-8", "replace"))


@dataclass
class Attempt:
    """How trying one DOI's candidates went."""

    reasons: list[str] = field(default_factory=list)
    broken: bool = False  # a document was there but unreadable, or a service failed
    source: str = ""  # the service whose candidate was tried last


class PapersSpider(scrapy.Spider):
    """Ingests papers by DOI; yields one item per DOI for crawler.pipelines.IngestPipeline."""

    name = "papers"
    custom_settings: ClassVar[dict[str, Any]] = {
        "ITEM_PIPELINES": {"crawler.pipelines.IngestPipeline": 300},
    }

    def __init__(self, dois: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dois = [resolve.normalize_doi(d) for d in dois or []]
        self.extractor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract")
        self.extract_wall = self.extract_cpu = 0.0

    def crawl_summary(self) -> dict[str, Any]:
        return {"outcomes": [o.to_dict() for o in getattr(self.crawler, "cxrbank_outcomes", [])]}

    def setting(self, name: str) -> str:
        return str(self.crawler.settings.get(name) or "")

    async def start(self) -> AsyncIterator[dict[str, Any]]:
        limit = max(1, self.crawler.settings.getint("CXRBANK_INGEST_CONCURRENCY", 4))
        semaphore = asyncio.Semaphore(limit)

        async def one(doi: str) -> dict[str, Any]:
            async with semaphore:
                try:
                    return await self.ingest(doi)
                except Exception as exc:  # one DOI's bug must not end the crawl
                    self.logger.debug("ingesting %s failed", doi, exc_info=True)
                    return {"outcome": Outcome(doi, doi, ERROR, reason=f"internal error: {exc}")}

        for task in asyncio.as_completed([one(doi) for doi in self.dois]):
            yield await task

    # -- network ------------------------------------------------------------------------------
    async def fetch(self, url: str, *, accept: str = "*/*",
                    ok404: bool = False) -> scrapy.http.Response:
        """GET through every downloader middleware; FetchFailed unless 2xx (or 404 if ok404)."""
        request = scrapy.Request(url, headers={"Accept": accept}, dont_filter=True)
        try:
            response = await self.crawler.engine.download_async(request)
        except Exception as exc:
            raise FetchFailed(network_failure(url, exc)) from None
        if is_challenge_page(response):
            why = f"HTTP {response.status}, a challenge page (not evaded)"
            raise FetchFailed(f"{url[:200]}: {why}", response.status, why)
        if 200 <= response.status < 300 or (ok404 and response.status == 404):
            return response
        why = f"HTTP {response.status}"
        raise FetchFailed(f"{url[:200]}: {why}", response.status, why)

    async def lookup(self, source: str, url: str, parse: Any) -> resolve.Lookup:
        try:
            response = await self.fetch(url, accept="application/json", ok404=True)
            return parse(response)
        except FetchFailed as exc:  # "unpaywall: HTTP 503" (its URL holds the contact address)
            return resolve.Lookup(source, error=f"{source}: {exc.why}" if exc.status else str(exc))
        except resolve.ResolveError as exc:
            return resolve.Lookup(source, error=str(exc))
        except (TypeError, AttributeError, KeyError, IndexError, ValueError):
            self.logger.debug("unexpected %s response for %s", source, url, exc_info=True)
            return resolve.Lookup(source, error=f"{source}: unexpected response shape")

    async def resolve_doi(self, doi: str) -> list[resolve.Lookup]:
        contact = self.setting("CXRBANK_CONTACT")
        epmc = self.setting("CXRBANK_EUROPEPMC_URL")
        jobs = [
            self.lookup("europepmc", resolve.europepmc_search_url(epmc, doi),
                        lambda r: resolve.parse_europepmc_search(r.body, doi, epmc)),
            self.lookup("unpaywall", resolve.unpaywall_url(
                self.setting("CXRBANK_UNPAYWALL_URL"), doi, contact),
                lambda r: resolve.parse_unpaywall(r.body, r.status)),
            self.lookup("crossref", resolve.crossref_url(
                self.setting("CXRBANK_CROSSREF_URL"), doi, contact),
                lambda r: resolve.parse_crossref(r.body, r.status)),
        ]
        key = self.setting("CXRBANK_OPENALEX_KEY")
        if key:
            jobs.append(self.lookup("openalex", resolve.openalex_url(
                self.setting("CXRBANK_OPENALEX_URL"), doi, key),
                lambda r: resolve.parse_openalex(r.body, r.status)))
        content = self.setting("CXRBANK_PREPRINT_CONTENT_URL")
        for url in resolve.biorxiv_urls(self.setting("CXRBANK_BIORXIV_URL"), doi):
            jobs.append(self.lookup("biorxiv", url,
                                    lambda r: resolve.parse_biorxiv(r.body, doi, content)))
        return list(await asyncio.gather(*jobs))

    async def landing_candidate(self, doi: str, license_: str,
                                attempt: Attempt) -> resolve.Candidate | None:
        """The landing page's citation_pdf_url. An outage (5xx, 429, network) marks the attempt
        broken; a refusal (401/403, a challenge page) is only noted: publishers refuse crawlers
        their closed papers' pages, and the services already said whether an open copy exists."""
        url = resolve.doi_landing_url(self.setting("CXRBANK_DOI_URL"), doi)
        try:
            response = await self.fetch(url, accept="text/html")
        except FetchFailed as exc:
            if exc.status in (401, 403) or "challenge" in exc.why:
                attempt.reasons.append(f"landing page refused ({exc.why})")
            elif exc.broken:
                attempt.reasons.append(f"landing: {exc}")
                attempt.broken = True
            return None
        pdf_url = resolve.citation_pdf_url(response.body, response.url)
        return resolve.Candidate(pdf_url, "pdf", "landing", license_) if pdf_url else None

    # -- one paper ----------------------------------------------------------------------------
    async def ingest(self, doi: str) -> dict[str, Any]:
        lookups = await self.resolve_doi(doi)
        title, abstract = resolve.paper_text(lookups)
        errors = [lk.error for lk in lookups if lk.error]
        if not any(lk.found for lk in lookups):
            reason = merge_unreachable(errors) if errors else "DOI not found by any service"
            return {"outcome": Outcome(doi, doi, ERROR, reason=reason)}
        candidates = resolve.order_candidates(lookups)
        license_ = next((c.license for c in candidates if c.license), "") or next(
            (lk.license for lk in lookups if lk.license), "")
        paper = Paper(doi, doi, f"{CANONICAL_DOI_URL}/{doi}", license_, title=title,
                      abstract=abstract)
        attempt = Attempt()
        tried: set[str] = set()
        landing_tried = False
        while len(tried) < MAX_CANDIDATES:
            if not candidates and not landing_tried:
                landing_tried = True  # last resort: the landing page's citation_pdf_url
                landing = await self.landing_candidate(doi, license_, attempt)
                candidates = [landing] if landing else []
            if not candidates:
                break
            candidate = candidates.pop(0)
            if candidate.url in tried:
                continue
            tried.add(candidate.url)
            found = await self.try_candidate(paper, candidate, attempt, candidates)
            if found is not None:
                return {"panels": found}
        if not tried:
            attempt.reasons.insert(0, "no open full-text location")
        if errors:  # a service that failed may know an open copy: not final, retried next run
            attempt.reasons.append(merge_unreachable(errors))
        outcome = ERROR if attempt.broken or errors else NO_FULL_TEXT
        return {"outcome": Outcome(doi, doi, outcome, source=attempt.source,
                                   reason="; ".join(attempt.reasons)[:500])}

    async def try_candidate(self, paper: Paper, candidate: resolve.Candidate, attempt: Attempt,
                            queue: list[resolve.Candidate]) -> PaperPanels | None:
        """Download one candidate and extract it; None (with the reason noted) when it fails."""
        attempt.source = candidate.source
        try:
            response = await self.fetch(candidate.url)
        except FetchFailed as exc:
            attempt.reasons.append(f"{candidate.source}: {exc}")
            attempt.broken = attempt.broken or exc.broken
            return None
        kind = sniff_document(response.body)
        if not response.body.strip():  # seen from bioRxiv/medRxiv: a passing failure
            attempt.reasons.append(f"{candidate.source}: {candidate.url[:200]} served an empty body")
            attempt.broken = True
            return None
        if kind not in ("pdf", "jats"):
            if kind == "html":
                pdf_url = resolve.citation_pdf_url(response.body, response.url)
                if pdf_url:
                    queue.insert(0, resolve.Candidate(pdf_url, "pdf", candidate.source,
                                                      candidate.license))
            what = "an HTML page" if kind == "html" else "neither PDF nor JATS"
            attempt.reasons.append(f"{candidate.source}: {candidate.url[:200]} served {what}")
            return None
        paper.source, paper.license = candidate.source, candidate.license or paper.license
        try:
            if kind == "jats":
                article, hrefs = jats_figure_hrefs(response.body)
                if not article.body_text.strip() and not article.figures:
                    # NCBI answers non-open articles with metadata-only XML (HTTP 200)
                    attempt.reasons.append(f"{candidate.source}: metadata-only XML, no body")
                    return None
                images, failed = await self.jats_images(candidate, hrefs)
                if failed:  # a figure server outage: try the next candidate, never "final"
                    attempt.reasons.append(
                        f"{candidate.source}: {len(failed)} figure file(s) could not be "
                        f"downloaded ({failed[0]})")
                    attempt.broken = True
                    return None
            else:
                article, images = None, {}

            problems: list[str] = []

            def extract() -> PaperPanels:
                clock = (time.perf_counter(), time.process_time())
                if kind == "pdf":
                    figures, text = read_pdf(response.body, problems)
                else:
                    figures, text = read_jats(article, images)
                panels = chest_panels(paper, figures, text)
                panels.notes.extend(problems)
                if kind == "jats":
                    lost = len(unreadable_graphics(article, images))
                    if lost:
                        panels.notes.append(f"{lost} figure file(s) missing or unreadable")
                self.count_extraction(*clock)
                return panels

            # One extraction at a time (PyMuPDF is not thread-safe), off the reactor thread so
            # other papers keep downloading meanwhile.
            loop = asyncio.get_running_loop()
            panels = await loop.run_in_executor(self.extractor, extract)
        except DocumentError as exc:
            attempt.reasons.append(f"{candidate.source}: {exc}")
            attempt.broken = True
            return None
        self.crawler.stats.inc_value(f"cxrbank/document/{kind}")
        paper.fulltext_url = response.url
        return panels

    def count_extraction(self, wall_start: float, cpu_start: float) -> None:
        """Add time spent extracting (not downloading) to the crawl's stats."""
        self.extract_wall += time.perf_counter() - wall_start
        self.extract_cpu += time.process_time() - cpu_start

    def closed(self, reason: str) -> None:
        self.extractor.shutdown(wait=True)
        self.crawler.stats.set_value("cxrbank/extract_wall_s", self.extract_wall)
        self.crawler.stats.set_value("cxrbank/extract_cpu_s", self.extract_cpu)

    async def jats_images(self, candidate: resolve.Candidate,
                          hrefs: list[str]) -> tuple[dict[str, bytes], list[str]]:
        """The figure files a JATS article names, from Europe PMC, and the passing failures
        (network, 5xx, 429, 403…). A file answered 404 is just left out (missing for good)."""
        base = self.setting("CXRBANK_EUROPEPMC_FIGURES_URL")

        async def image(href: str) -> tuple[str, bytes | None, str]:
            url = resolve.europepmc_figure_url(base, candidate.pmcid, href)
            try:
                body = (await self.fetch(url, accept="image/*")).body
                if sniff_document(body) == "html":  # an error page served with HTTP 200
                    return href, None, f"{url[:200]}: an HTML page instead of the image"
                return href, body, ""
            except FetchFailed as exc:
                self.logger.debug("figure file not downloaded: %s", exc)
                return href, None, str(exc) if exc.broken else ""

        files = await asyncio.gather(*(image(h) for h in hrefs)) if candidate.pmcid else []
        return ({href: body for href, body, _ in files if body},
                [failure for _, _, failure in files if failure])
