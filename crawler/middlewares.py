"""Downloader components that keep crawls safe and polite: URL guard, host pacing, backoff."""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer

from crawler.radiopaedia import is_challenge
from crawler.settings import allowed_hosts
from extract.issuetext import is_public_address

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class BlockedUrl(IgnoreRequest):
    """A URL the crawler refuses to fetch (scheme, or a private/reserved address)."""


def check_url(url: str, allowed: set[str]) -> str:
    """The URL's host if it may be fetched at all; BlockedUrl (with the reason) otherwise.

    Only http/https. A host given as an IP literal must be public unless it is allowed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedUrl(f"refused {url[:200]}: only http and https URLs are fetched")
    host = (parts.hostname or "").lower()
    if not host:
        raise BlockedUrl(f"refused {url[:200]}: no host")
    if host in allowed:
        return host
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise BlockedUrl(f"refused {url[:200]}: {host} is a private host") from None
        return host
    if not is_public_address(host):
        raise BlockedUrl(f"refused {url[:200]}: {host} is a private or reserved address")
    return host


async def resolve_public(host: str) -> list[str]:
    """The host's addresses; BlockedUrl if any of them is not public."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedUrl(f"refused {host}: cannot resolve ({exc})") from None
    addresses = sorted({info[4][0] for info in infos})
    private = [a for a in addresses if not is_public_address(a)]
    if private:
        raise BlockedUrl(f"refused {host}: resolves to private or reserved address {private[0]}")
    return addresses


class UrlGuardMiddleware:
    """Refuses non-http(s) URLs and private/reserved destinations before any connection.

    Runs on every request, so redirects (new requests) are checked too. Hosts named in the
    configured base URLs are exempt, which is how tests reach 127.0.0.1.
    """

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.checked: set[str] = set()  # hostnames already seen resolving to public addresses

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> UrlGuardMiddleware:
        return cls(allowed_hosts(crawler.settings))

    async def process_request(self, request: Request) -> None:
        host = check_url(request.url, self.allowed)
        if host in self.allowed:
            return
        if host in self.checked:
            return
        try:
            ipaddress.ip_address(host)
        except ValueError:
            await resolve_public(host)
            self.checked.add(host)


class GuardedResolver(CachingThreadedResolver):
    """The reactor's resolver: refuses names resolving to private addresses (DNS rebinding)."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.allowed: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> GuardedResolver:
        resolver = super().from_crawler(crawler, reactor)
        resolver.allowed = allowed_hosts(crawler.settings)
        return resolver

    def getHostByName(self, name: str, timeout: Any = ()) -> defer.Deferred[str]:
        deferred = super().getHostByName(name, timeout)

        def check(address: str) -> str:
            if name.lower() not in self.allowed and not is_public_address(address):
                raise BlockedUrl(f"refused {name}: resolves to private address {address}")
            return address

        return deferred.addCallback(check)


@dataclass
class HostPacer:
    """Per-host minimum spacing of requests and pauses, learnt from response headers."""

    interval: dict[str, float] = field(default_factory=dict)
    next_at: dict[str, float] = field(default_factory=dict)

    def pause(self, host: str, seconds: float) -> None:
        self.next_at[host] = max(self.next_at.get(host, 0.0), time.monotonic() + seconds)

    async def wait(self, host: str) -> None:
        now = time.monotonic()
        start = max(now, self.next_at.get(host, 0.0))
        self.next_at[host] = start + self.interval.get(host, 0.0)
        if start > now:
            await asyncio.sleep(start - now)


def host_pacer(crawler: Crawler) -> HostPacer:
    pacer = getattr(crawler, "_cxrbank_pacer", None)
    if pacer is None:
        pacer = HostPacer()
        crawler._cxrbank_pacer = pacer  # type: ignore[attr-defined]
    return pacer


def _seconds(value: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value or "")
    if not match:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def rate_limit_interval(headers: dict[str, str]) -> float | None:
    """Seconds between requests allowed by `x-rate-limit-limit` per `x-rate-limit-interval`."""
    try:
        limit = int(headers.get("x-rate-limit-limit", ""))
    except ValueError:
        return None
    interval = _seconds(headers.get("x-rate-limit-interval", "1s"))
    if limit <= 0 or interval is None:
        return None
    return interval / limit


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _text_headers(response: Response) -> dict[str, str]:
    return {
        key.decode("latin-1").lower(): (values[-1] if values else b"").decode("latin-1")
        for key, values in response.headers.items()
    }


class HostRateLimitMiddleware:
    """Obeys per-host limits servers announce (Crossref's x-rate-limit-*, x-concurrency-limit)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.pacer = host_pacer(crawler)
        self.obey = crawler.settings.getbool("CXRBANK_OBEY_RATE_HEADERS", True)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HostRateLimitMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        await self.pacer.wait(urlsplit(request.url).hostname or "")

    def process_response(self, request: Request, response: Response) -> Response:
        if not self.obey:
            return response
        headers = _text_headers(response)
        host = urlsplit(request.url).hostname or ""
        interval = rate_limit_interval(headers)
        if interval is not None:
            self.pacer.interval[host] = interval
        concurrency = headers.get("x-concurrency-limit", "")
        if concurrency.isdigit() and int(concurrency) > 0:
            self._limit_concurrency(request, int(concurrency))
        return response

    def _limit_concurrency(self, request: Request, limit: int) -> None:
        engine = getattr(self.crawler, "engine", None)
        downloader = getattr(engine, "downloader", None)
        if downloader is None:
            return
        slot = downloader.slots.get(downloader.get_slot_key(request))
        if slot is not None and slot.concurrency > limit:
            slot.concurrency = limit


DNS_FAILURES = ("DNSLookupError", "CannotResolveHostError")  # twisted's and scrapy's names


class BackoffRetryMiddleware(RetryMiddleware):
    """Retries 429 and 5xx after Retry-After (capped) or an exponential backoff."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("CXRBANK_RETRY_BACKOFF_BASE", 2.0)
        self.backoff_max = settings.getfloat("CXRBANK_RETRY_BACKOFF_MAX", 60.0)
        self.retry_after_max = settings.getfloat("CXRBANK_RETRY_AFTER_MAX", 300.0)
        self.dns_retry_times = settings.getint("CXRBANK_DNS_RETRY_TIMES", 1)

    def delay_for(self, request: Request, response: Response | None) -> float | None:
        """Seconds to wait before the next attempt; None when Retry-After asks too long."""
        attempt = request.meta.get("retry_times", 0)
        backoff = min(self.backoff_max, self.backoff_base * (2**attempt))
        if response is None:
            return backoff
        asked = retry_after_seconds(_text_headers(response).get("retry-after"))
        if asked is None:
            return backoff
        if asked > self.retry_after_max:
            return None
        return asked

    async def process_response(self, request: Request, response: Response) -> Any:
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        if is_challenge(response.status, response.body[:20000].decode("utf-8", "replace")):
            return response  # a challenge page is never retried (nor evaded): the caller stops
        delay = self.delay_for(request, response)
        if delay is None:
            logger.warning("%s asks to retry after too long; giving up", request.url)
            return response
        retry = self._retry(request, f"HTTP {response.status}")
        if retry is None:
            return response
        host = urlsplit(request.url).hostname or ""
        host_pacer(self.crawler).pause(host, delay)
        return retry

    async def process_exception(self, request: Request, exception: Exception) -> Any:
        if isinstance(exception, IgnoreRequest) or request.meta.get("dont_retry"):
            return None
        if not isinstance(exception, self.exceptions_to_retry):
            return None
        if type(exception).__name__ in DNS_FAILURES and \
                request.meta.get("retry_times", 0) >= self.dns_retry_times:
            return None
        retry = self._retry(request, exception)
        if retry is not None:
            host = urlsplit(request.url).hostname or ""
            host_pacer(self.crawler).pause(host, self.delay_for(request, None) or 0.0)
        return retry
