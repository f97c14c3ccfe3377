"""Scrapy settings of a Radiopaedia crawl: `-s` values checked, polite floors on the real site."""

from __future__ import annotations

import math
import os
from typing import Any

from crawler.radiopaedia import STATIC_URL, is_test_host
from crawler.settings import base_urls, crawl_settings, local_overrides

# Floors for the real site; a loopback test site gets local_overrides() instead.
POLITE: dict[str, Any] = {
    "ROBOTSTXT_OBEY": True,
    "DOWNLOAD_DELAY": 2.0,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 2.0,
}
MIN_DELAY = 2.0

# What a known setting takes: seconds/number (finite, >= 0), count (int >= 1), count0 (int
# >= 0), flag (true/false), text, url (http/https).
KINDS: dict[str, str] = {
    "DOWNLOAD_DELAY": "number",
    "AUTOTHROTTLE_ENABLED": "flag",
    "AUTOTHROTTLE_START_DELAY": "number",
    "AUTOTHROTTLE_MAX_DELAY": "number",
    "AUTOTHROTTLE_TARGET_CONCURRENCY": "positive",
    "CONCURRENT_REQUESTS": "count",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "count",
    "CONCURRENT_REQUESTS_PER_IP": "count0",
    "DOWNLOAD_TIMEOUT": "positive",
    "DNS_TIMEOUT": "positive",
    "RETRY_TIMES": "count0",
    "DOWNLOAD_MAXSIZE": "count0",
    "LOG_LEVEL": "text",
    "CXRBANK_RADIOPAEDIA_RECHECK_DAYS": "number",
    "CXRBANK_RADIOPAEDIA_ACCEPT_TERMS": "flag",
    "CXRBANK_RETRY_BACKOFF_BASE": "number",
    "CXRBANK_RETRY_BACKOFF_MAX": "number",
    "CXRBANK_RETRY_AFTER_MAX": "number",
}
# Against the real site only these may be set (limits among them are raised to the floors
# below, never lowered), plus the CXRBANK_*_URL base URLs.
REAL_SITE_ALLOWED = frozenset(KINDS) - {"CONCURRENT_REQUESTS_PER_IP"}


class BadSetting(ValueError):
    """A `-s` value the crawl cannot use, or a setting the real site does not allow."""


def _check_value(name: str, value: Any) -> None:
    kind = "url" if name.startswith("CXRBANK_") and name.endswith("_URL") else KINDS.get(name)
    if kind is None:
        return
    if kind == "flag":
        ok = isinstance(value, bool)
    elif kind == "text":
        ok = isinstance(value, str)
    elif kind == "url":
        ok = isinstance(value, str) and value.startswith(("http://", "https://"))
    elif kind in ("count", "count0"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= (kind == "count")
    else:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and (value > 0 if kind == "positive" else value >= 0))
    if not ok:
        words = {"flag": "true or false", "text": "a text", "url": "an http(s) URL",
                 "count": "a whole number >= 1", "count0": "a whole number >= 0",
                 "positive": "a number > 0", "number": "a number >= 0"}[kind]
        raise BadSetting(f"-s {name}={value!r}: {name} takes {words}")


def check_overrides(overrides: dict[str, Any], real_site: bool) -> None:
    """BadSetting for a value of the wrong kind, or, on the real site, a setting not allowed."""
    for name, value in overrides.items():
        if real_site and name not in REAL_SITE_ALLOWED and not (
                name.startswith("CXRBANK_") and name.endswith("_URL")):
            allowed = ", ".join(sorted(REAL_SITE_ALLOWED))
            raise BadSetting(f"-s {name} cannot be set when crawling the real Radiopaedia "
                             f"(allowed: {allowed}, CXRBANK_*_URL)")
        _check_value(name, value)


def _assert_floors(settings: dict[str, Any]) -> None:
    """The real site's limits, whatever the user set: robots.txt, one request at a time,
    >= 2 s between requests (not randomised below it), AutoThrottle never faster."""
    delay = max(MIN_DELAY, float(settings["DOWNLOAD_DELAY"]))
    settings.update(
        ROBOTSTXT_OBEY=True,
        DOWNLOAD_DELAY=delay,
        DOWNLOAD_DELAY_JITTER=0.0,
        CONCURRENT_REQUESTS=1,
        CONCURRENT_REQUESTS_PER_DOMAIN=1,
        CONCURRENT_REQUESTS_PER_IP=0,
        DOWNLOAD_SLOTS={},
        AUTOTHROTTLE_ENABLED=True,
        AUTOTHROTTLE_START_DELAY=max(delay, float(settings["AUTOTHROTTLE_START_DELAY"])),
        AUTOTHROTTLE_MAX_DELAY=max(delay, float(settings["AUTOTHROTTLE_MAX_DELAY"])),
        AUTOTHROTTLE_TARGET_CONCURRENCY=min(1.0, float(
            settings["AUTOTHROTTLE_TARGET_CONCURRENCY"])),
    )


def spider_settings(
    contact: str, accept_terms: bool = False, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Scrapy settings for a Radiopaedia crawl: polite floors against the real site.
    BadSetting for an unusable `overrides` value or one the real site does not allow."""
    overrides = dict(overrides or {})
    base = base_urls(overrides)["CXRBANK_RADIOPAEDIA_URL"]
    real_site = not is_test_host(base)
    check_overrides(overrides, real_site)
    radiopaedia: dict[str, Any] = {
        "CXRBANK_RADIOPAEDIA_STATIC_URL": os.environ.get("CXRBANK_RADIOPAEDIA_STATIC_URL")
        or STATIC_URL,
        "CXRBANK_RADIOPAEDIA_RECHECK_DAYS": 30.0,
        "CXRBANK_RADIOPAEDIA_ACCEPT_TERMS": accept_terms,
    }
    if real_site:
        settings = crawl_settings(contact, {**POLITE, **radiopaedia, **overrides})
        _assert_floors(settings)
    else:
        local = {k: v for k, v in local_overrides(base).items() if not k.endswith("_URL")}
        settings = crawl_settings(contact, {**POLITE, **radiopaedia, **local, **overrides})
    if accept_terms:
        settings["CXRBANK_RADIOPAEDIA_ACCEPT_TERMS"] = True
    return settings
