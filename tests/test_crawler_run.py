"""Polite settings, the URL guard, backoff and the child-process crawl runner."""

from __future__ import annotations

import time

import pytest
import scrapy

from crawler.middlewares import (
    BlockedUrl,
    check_url,
    rate_limit_interval,
    retry_after_seconds,
)
from crawler.run import CrawlError, run_spider
from crawler.settings import ContactMissing, contact_address, crawl_settings, local_overrides
from cxrbank.localweb import Page


class FetchSpider(scrapy.Spider):
    """Fetches the given URLs and reports status and size of each (or the failure)."""

    name = "fetch"

    def __init__(self, urls: list[str], **kwargs):
        super().__init__(**kwargs)
        self.urls = urls
        self.results: dict[str, str] = {}

    async def start(self):
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.failed,
                                 cb_kwargs={"asked": url})

    def parse(self, response, asked):
        self.results[asked] = f"{response.status} {len(response.body)}"

    def failed(self, failure):
        self.results[failure.request.cb_kwargs["asked"]] = f"error {failure.getErrorMessage()}"

    def crawl_summary(self) -> dict:
        return {"results": self.results}


class BrokenSpider(scrapy.Spider):
    name = "broken"

    def __init__(self, **kwargs):
        raise ValueError("no DOIs given")


ROBOTS = b"User-agent: *\nDisallow: /private\n"


def settings_for(web, **extra) -> dict:
    return crawl_settings("test@example.org", {**local_overrides(web.base), **extra})


def test_contact_required_with_clear_error(monkeypatch):
    monkeypatch.delenv("CXRBANK_CONTACT", raising=False)
    with pytest.raises(ContactMissing, match="--contact EMAIL or set CXRBANK_CONTACT"):
        contact_address(None)
    with pytest.raises(ContactMissing, match="not an e-mail"):
        contact_address("me at home")
    monkeypatch.setenv("CXRBANK_CONTACT", "a@b.org")
    assert contact_address(None) == "a@b.org"
    assert contact_address("c@d.org") == "c@d.org"


def test_settings_are_polite_by_default(monkeypatch):
    monkeypatch.setenv("CXRBANK_CROSSREF_URL", "http://crossref.test/")
    settings = crawl_settings("me@example.org")
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["AUTOTHROTTLE_ENABLED"] is True
    assert settings["TELNETCONSOLE_ENABLED"] is False
    assert settings["EXTENSIONS"]["scrapy.extensions.remote_control.RemoteControl"] is None
    assert settings["USER_AGENT"].startswith("cxrbank/")
    assert "mailto:me@example.org" in settings["USER_AGENT"]
    assert settings["CXRBANK_CROSSREF_URL"] == "http://crossref.test"
    assert 429 in settings["RETRY_HTTP_CODES"] and 503 in settings["RETRY_HTTP_CODES"]


def test_url_guard_refuses_private_and_odd_schemes():
    allowed = {"127.0.0.1"}
    assert check_url("http://127.0.0.1:8000/x", allowed) == "127.0.0.1"
    assert check_url("https://api.crossref.org/works", allowed) == "api.crossref.org"
    for url in ("file:///etc/passwd", "ftp://example.org/a.pdf", "http://127.0.0.2/",
                "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]/",
                "http://localhost:8000/", "http://192.168.1.1/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(BlockedUrl):
            check_url(url, allowed)


def test_header_parsing_for_limits_and_retry_after():
    assert rate_limit_interval({"x-rate-limit-limit": "50", "x-rate-limit-interval": "1s"}) == 0.02
    assert rate_limit_interval({"x-rate-limit-limit": "x"}) is None
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_crawls_run_repeatedly_in_one_process(web):
    web.add("/a", b"alpha")
    web.add("/robots.txt", ROBOTS, headers={"Content-Type": "text/plain"})
    for _ in range(3):
        summary = run_spider(FetchSpider, settings_for(web), urls=[web.url("/a")])
        assert summary["results"] == {web.url("/a"): "200 5"}
    assert web.count("/a") == 3
    ua = next(r.headers["User-Agent"] for r in web.requests if r.path == "/a")
    assert "mailto:test@example.org" in ua


def test_robots_txt_is_obeyed(web):
    web.add("/robots.txt", ROBOTS, headers={"Content-Type": "text/plain"})
    web.add("/private/x", b"secret")
    summary = run_spider(FetchSpider, settings_for(web), urls=[web.url("/private/x")])
    assert summary["results"][web.url("/private/x")].startswith("error")
    assert web.count("/private") == 0


def test_429_waits_for_retry_after_then_succeeds(web):
    pages = [Page(b"slow down", 429, {"Retry-After": "1"}), Page(b"done")]
    seen: list[float] = []

    def busy(request):
        seen.append(time.monotonic())
        return pages.pop(0) if len(pages) > 1 else pages[0]

    web.add("/busy", busy)
    summary = run_spider(FetchSpider, settings_for(web), urls=[web.url("/busy")])
    assert summary["results"] == {web.url("/busy"): "200 4"}
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 0.95


def test_server_errors_are_retried_with_backoff_then_given_up(web):
    web.add("/down", Page(b"oops", 503))
    summary = run_spider(FetchSpider, settings_for(web, RETRY_TIMES=2), urls=[web.url("/down")])
    assert summary["results"] == {web.url("/down"): "error Ignoring non-200 response"}
    assert web.count("/down") == 3


def test_redirect_to_private_address_is_refused_before_connecting(web):
    web.add("/go", Page(b"", 302, {"Location": "http://127.0.0.2:9/secret"}))
    web.add("/meta", Page(b"", 301, {"Location": "http://169.254.169.254/latest/meta-data"}))
    summary = run_spider(FetchSpider, settings_for(web), urls=[web.url("/go"), web.url("/meta")])
    assert "refused" in summary["results"][web.url("/go")]
    assert "refused" in summary["results"][web.url("/meta")]


def test_child_errors_come_back_as_one_crawl_error(web):
    with pytest.raises(CrawlError, match="no DOIs given"):
        run_spider(BrokenSpider, settings_for(web))


def test_rate_limit_headers_space_later_requests(web):
    seen: list[float] = []

    def limited(request):
        seen.append(time.monotonic())
        return Page(b"ok", 200, {"x-rate-limit-limit": "2", "x-rate-limit-interval": "1s"})

    web.add("/limited", limited)
    urls = [web.url(f"/limited?n={n}") for n in range(3)]
    settings = settings_for(web, CONCURRENT_REQUESTS_PER_DOMAIN=1, CONCURRENT_REQUESTS=1)
    summary = run_spider(FetchSpider, settings, urls=urls)
    assert sorted(summary["results"].values()) == ["200 2"] * 3
    gaps = sorted(b - a for a, b in zip(sorted(seen), sorted(seen)[1:], strict=False))
    assert gaps[-1] >= 0.45
