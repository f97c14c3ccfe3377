"""Polite Scrapy settings for every cxrbank crawl: contact, limits, retries, base URLs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cxrbank import __version__

PROJECT_URL = "https://github.com/cxrbank/cxrbank"
CONTACT_ENV = "CXRBANK_CONTACT"

# Every service the crawler talks to, as a setting (overridable by an environment variable of
# the same name, then by explicit overrides), so tests point them all at 127.0.0.1.
BASE_URLS: dict[str, str] = {
    "CXRBANK_CROSSREF_URL": "https://api.crossref.org",
    "CXRBANK_UNPAYWALL_URL": "https://api.unpaywall.org/v2",
    "CXRBANK_OPENALEX_URL": "https://api.openalex.org",
    "CXRBANK_EUROPEPMC_URL": "https://www.ebi.ac.uk/europepmc/webservices/rest",
    "CXRBANK_EUROPEPMC_FIGURES_URL": "https://europepmc.org/articles",
    "CXRBANK_BIORXIV_URL": "https://api.biorxiv.org",
    "CXRBANK_PREPRINT_CONTENT_URL": "https://www.{server}.org",  # {server}: biorxiv, medrxiv
    "CXRBANK_DOI_URL": "https://doi.org",
    "CXRBANK_RADIOPAEDIA_URL": "https://radiopaedia.org",
}

_CONTACT_RE = re.compile(r"^[^\s@()<>;,]+@[^\s@()<>;,]+\.[^\s@()<>;,]+$")

MIDDLEWARES = "crawler.middlewares"


class ContactMissing(ValueError):
    """No usable contact address for a network command."""


def contact_address(explicit: str | None = None) -> str:
    """The user's contact e-mail: --contact, else $CXRBANK_CONTACT; ContactMissing if neither."""
    value = (explicit or os.environ.get(CONTACT_ENV) or "").strip()
    if not value:
        raise ContactMissing(
            f"network commands need a contact e-mail for the services' polite pools: "
            f"pass --contact EMAIL or set {CONTACT_ENV}"
        )
    if not _CONTACT_RE.match(value):
        raise ContactMissing(f"contact {value!r} is not an e-mail address")
    return value


def user_agent(contact: str) -> str:
    return f"cxrbank/{__version__} (+{PROJECT_URL}; mailto:{contact})"


def base_urls(overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The base URLs in force: defaults, then $CXRBANK_*_URL, then overrides; no trailing /."""
    urls = {}
    for key, default in BASE_URLS.items():
        value = (overrides or {}).get(key) or os.environ.get(key) or default
        urls[key] = str(value).rstrip("/")
    return urls


def allowed_hosts(settings: Mapping[str, Any]) -> set[str]:
    """Hosts named in configured base URLs: reachable even when they are private addresses."""
    hosts = {
        (urlsplit(str(value)).hostname or "").lower()
        for key, value in settings.items()
        if key.startswith("CXRBANK_") and key.endswith("_URL") and value
    }
    hosts.update(h.lower() for h in settings.get("CXRBANK_ALLOWED_HOSTS") or ())
    hosts.discard("")
    return hosts


def crawl_settings(contact: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Scrapy settings for a polite crawl identified by `contact`; `overrides` win."""
    overrides = dict(overrides or {})
    settings: dict[str, Any] = {
        "BOT_NAME": "cxrbank",
        "USER_AGENT": user_agent(contact),
        "CXRBANK_CONTACT": contact,
        "CXRBANK_OPENALEX_KEY": os.environ.get("CXRBANK_OPENALEX_KEY", ""),
        "ROBOTSTXT_OBEY": True,
        "COOKIES_ENABLED": False,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": 1.0,
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "DOWNLOAD_DELAY": 0.5,
        "CONCURRENT_REQUESTS": 8,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "DOWNLOAD_TIMEOUT": 60,
        "DNS_TIMEOUT": 20,
        "DOWNLOAD_MAXSIZE": 100 * 1024 * 1024,
        "DOWNLOAD_WARNSIZE": 30 * 1024 * 1024,
        "REDIRECT_MAX_TIMES": 5,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": 3,
        "RETRY_HTTP_CODES": [429, 500, 502, 503, 504, 522, 524, 408],
        # Backoff between retries: Retry-After when the server sends one (capped), else
        # base * 2**attempt (capped).
        "CXRBANK_RETRY_BACKOFF_BASE": 2.0,
        "CXRBANK_RETRY_BACKOFF_MAX": 60.0,
        "CXRBANK_RETRY_AFTER_MAX": 300.0,
        # A host name that does not resolve rarely resolves seconds later (offline, a typo):
        # one retry, not RETRY_TIMES, so an offline run says so in seconds.
        "CXRBANK_DNS_RETRY_TIMES": 1,
        "CXRBANK_OBEY_RATE_HEADERS": True,  # x-rate-limit-*, x-concurrency-limit
        "CXRBANK_INGEST_CONCURRENCY": 4,  # papers resolved and downloaded at once
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "EXTENSIONS": {
            "scrapy.extensions.telnet.TelnetConsole": None,
            "scrapy.extensions.remote_control.RemoteControl": None,
        },
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            f"{MIDDLEWARES}.BackoffRetryMiddleware": 550,
            f"{MIDDLEWARES}.UrlGuardMiddleware": 40,
            f"{MIDDLEWARES}.HostRateLimitMiddleware": 560,
        },
        "TWISTED_DNS_RESOLVER": f"{MIDDLEWARES}.GuardedResolver",
        "DNSCACHE_ENABLED": True,
        "LOG_LEVEL": "WARNING",
        "LOG_INSTALL_ROOT_HANDLER": True,
    }
    settings.update(base_urls(overrides))
    settings.update(overrides)
    return settings


def local_overrides(base: str) -> dict[str, Any]:
    """Overrides that point every service at one local base URL and drop the waiting."""
    return {
        **{key: f"{base}/{key[len('CXRBANK_'):-len('_URL')].lower()}" for key in BASE_URLS},
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
        "CXRBANK_RETRY_BACKOFF_BASE": 0.01,
        "CXRBANK_RETRY_BACKOFF_MAX": 0.05,
        "CXRBANK_RETRY_AFTER_MAX": 2.0,
        "DOWNLOAD_TIMEOUT": 10,
    }
