"""`cxrbank crawl …`: incremental crawls of teaching-case sites (Radiopaedia)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from crawler.radiopaedia import ACCEPT_ENV
from cxrbank.commands.common import (
    EXIT_PARTIAL,
    CxrbankError,
    emit_json,
    json_option,
    root_option,
    say,
    say_error,
)


def parse_setting(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` of `-s`: the value as JSON when it parses (numbers, true), else a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r} is not NAME=VALUE", param_hint="-s/--set")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


def run_radiopaedia(root: Path, contact: str, accepted: bool, overrides: dict[str, Any],
                    **spider_args: Any) -> dict[str, Any]:
    """One Radiopaedia crawl (search or `cases=[URL, ...]`) into the collection at root; the
    report: new, updated, unchanged, images added, errors. CrawlError if it could not run."""
    from crawler.radiopaedia_settings import BadSetting, spider_settings
    from crawler.run import CrawlError, run_spider
    from crawler.spiders.radiopaedia import RadiopaediaSpider

    started = time.monotonic()
    try:
        settings = spider_settings(contact, accepted, overrides)
    except BadSetting as exc:
        raise CrawlError(str(exc)) from None
    summary = run_spider(RadiopaediaSpider, settings, root=str(root), **spider_args)
    report = summary.get("radiopaedia", {})
    stats = summary.get("stats", {})
    return {
        "new": report.get("new", []),
        "updated": report.get("updated", []),
        "incomplete": report.get("incomplete", []),
        "unchanged": report.get("unchanged", 0),
        "aliases": report.get("aliases", 0),
        "before_since": report.get("before_since", 0),
        "images_added": report.get("images_added", 0),
        "more_left": report.get("more_left", False),
        "skipped": report.get("skipped", []),
        "errors": report.get("errors", []) + summary.get("spider_errors", []),
        "stopped": report.get("stopped", ""),
        "listing_pages": report.get("listing_pages", 0),
        "requests": stats.get("downloader/request_count", 0),
        "seconds": round(time.monotonic() - started, 2),
    }


@click.group(name="crawl")
def crawl_group() -> None:
    """Incremental crawls of teaching-case sites."""


@crawl_group.command("radiopaedia")
@click.option("--query", default="covid", show_default=True, help="Search terms.")
@click.option("--modality", type=click.Choice(["X-ray", "CT"]), help="Only this modality.")
@click.option("--case", "case_urls", multiple=True, metavar="URL",
              help="A case URL to collect instead of a search (repeatable).")
@click.option("--max-cases", type=click.IntRange(min=1), default=20, show_default=True,
              help="Case pages to read at most in this run (unchanged cases are not read).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
              help="Only cases published on or after DATE (YYYY-MM-DD).")
@click.option("--accept-terms", is_flag=True,
              help=f"Acknowledge Radiopaedia's terms and licence (or set {ACCEPT_ENV}=1).")
@click.option("--contact", metavar="EMAIL", help="Contact e-mail for the User-Agent "
              "(default: $CXRBANK_CONTACT).")
@click.option("-s", "--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override a Scrapy or cxrbank setting (repeatable). Against the real "
              "site only delays, concurrency, timeouts, retries, LOG_LEVEL and cxrbank settings, "
              "never below the polite floors.")
@root_option
@json_option
def radiopaedia_cmd(
    query: str,
    modality: str | None,
    case_urls: tuple[str, ...],
    max_cases: int,
    since: Any,
    accept_terms: bool,
    contact: str | None,
    settings: tuple[str, ...],
    root: Path,
    as_json: bool,
) -> None:
    """Collect Radiopaedia cases: new cases and new images of edited ones, nothing twice.

    Re-crawls read the search listing only and skip every case whose card is unchanged.
    Refuses the real site until you acknowledge its terms (--accept-terms).
    """
    from crawler.radiopaedia import TERMS, accepted_in_environment, is_test_host, terms_accepted
    from crawler.radiopaedia_settings import BadSetting, check_overrides
    from crawler.run import CrawlError
    from crawler.settings import ContactMissing, base_urls, contact_address

    overrides = dict(parse_setting(s) for s in settings)
    try:
        email = contact_address(contact)
    except ContactMissing as exc:
        raise click.UsageError(str(exc)) from exc
    base = base_urls(overrides)["CXRBANK_RADIOPAEDIA_URL"]
    try:
        check_overrides(overrides, real_site=not is_test_host(base))
    except BadSetting as exc:
        raise click.UsageError(str(exc)) from None
    accepted = accept_terms or accepted_in_environment()
    if not terms_accepted(base, accepted):
        say(TERMS)
        raise CxrbankError(
            f"not crawling {base} until you acknowledge its terms: read them, make sure your use "
            f"is allowed, then pass --accept-terms (or set {ACCEPT_ENV}=1)"
        )
    for url in case_urls:
        if "/cases/" not in url:
            raise click.BadParameter(f"{url!r} is not a Radiopaedia case URL", param_hint="--case")
    try:
        result = run_radiopaedia(
            root, email, accepted, overrides, query=query, modality=modality or "",
            cases=list(case_urls), max_cases=max_cases,
            since=since.date().isoformat() if since else "",
        )
    except CrawlError as exc:
        raise CxrbankError(str(exc)) from exc
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"new cases: {len(result['new'])}, updated: {len(result['updated'])}, "
            f"incomplete: {len(result['incomplete'])}, unchanged: {result['unchanged']}, "
            f"images added: {result['images_added']}, "
            f"errors: {len(result['errors'])}"
        )
        for skipped in result["skipped"]:
            click.echo(f"skipped: {skipped}")
        if result["more_left"]:
            click.echo(f"more cases are left for the next run (--max-cases {max_cases} reached)")
    for error in result["errors"]:
        say_error(error)
    if result["stopped"]:
        say_error(result["stopped"])
    if result["errors"] or result["stopped"]:
        raise SystemExit(EXIT_PARTIAL)
