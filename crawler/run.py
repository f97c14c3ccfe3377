"""Run one Scrapy crawl to completion in a child process and return its summary.

Twisted's reactor cannot be restarted, and commands run many times in one process (tests,
scripts), so each crawl gets a fresh child process; its summary comes back over a pipe.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any


class CrawlError(RuntimeError):
    """A crawl could not run to completion (the child's error, in one line)."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


# Scrapy's loggers that report each failed download (with a traceback) at ERROR: the spider
# already turns those failures into one line per paper, so the terminal gets that line only.
DOWNLOAD_ERROR_LOGGERS = ("scrapy.downloadermiddlewares.retry",
                          "scrapy.downloadermiddlewares.robotstxt")


def _as_debug(record: logging.LogRecord) -> bool:
    """Log filter: report the record at DEBUG (shown only when LOG_LEVEL is DEBUG)."""
    if record.levelno > logging.DEBUG:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


def quiet_download_errors() -> None:
    """Demote Scrapy's per-download error reports to DEBUG (idempotent)."""
    for name in DOWNLOAD_ERROR_LOGGERS:
        logger = logging.getLogger(name)
        if _as_debug not in logger.filters:
            logger.addFilter(_as_debug)


def crawl_in_this_process(spider_cls: type, settings: dict[str, Any], **kwargs: Any) -> dict:
    """Run the crawl here (installs the reactor: once per process). Returns the summary.

    The summary holds the crawl's stats, the spider errors seen, and whatever the spider's
    `crawl_summary()` returns, if it has one.
    """
    from scrapy import signals  # scrapy only where a crawl runs
    from scrapy.crawler import AsyncCrawlerProcess

    process = AsyncCrawlerProcess(settings)
    quiet_download_errors()
    crawler = process.create_crawler(spider_cls)
    errors: list[str] = []

    def on_error(failure: Any, response: Any, spider: Any) -> None:
        errors.append(f"{getattr(response, 'url', '?')}: {failure.getErrorMessage()}")

    crawler.signals.connect(on_error, signal=signals.spider_error)
    task = process.crawl(crawler, **kwargs)
    process.start(install_signal_handlers=False)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    spider = crawler.spider
    summary: dict[str, Any] = {
        "stats": crawler.stats.get_stats() if crawler.stats else {},
        "spider_errors": errors,
    }
    if spider is not None and hasattr(spider, "crawl_summary"):
        summary.update(spider.crawl_summary())
    return _json_safe(summary)


_progress: Any = None  # the child's end of the pipe while a crawl runs in this process
_progress_lock = threading.Lock()


def report_progress(event: dict[str, Any]) -> None:
    """Send a progress event (a small JSON-safe dict) to the parent's `on_progress`, if any."""
    if _progress is not None:
        with _progress_lock:  # the writer thread and the reactor thread both report
            _progress.send(("progress", _json_safe(event)))


def _child(connection: Any, spider_cls: type, settings: dict, kwargs: dict) -> None:
    global _progress
    _progress = connection
    try:
        summary = crawl_in_this_process(spider_cls, settings, **kwargs)
        connection.send(("ok", summary))
    except BaseException as exc:  # everything goes back to the parent
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        connection.send(("error", f"{type(exc).__name__}: {exc}{where}"))
    finally:
        connection.close()


def _context() -> multiprocessing.context.BaseContext:
    # fork is fast and needs nothing importable; spawn when a reactor already lives here
    # (a forked child would inherit it half-used).
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "twisted.internet.reactor" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def run_spider(spider_cls: type, settings: dict[str, Any],
               on_progress: Callable[[dict[str, Any]], None] | None = None,
               **spider_kwargs: Any) -> dict:
    """Run `spider_cls` with `settings` to completion in a child process; its summary.

    Events the crawl sends with `report_progress` reach `on_progress` as they happen. Raises
    CrawlError with the child's error when the crawl itself fails or the child dies.
    """
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(sender, spider_cls, settings, spider_kwargs), daemon=True
    )
    child.start()
    sender.close()
    message: tuple[str, Any] | None = None
    try:
        while True:
            message = receiver.recv()
            if message[0] != "progress":
                break
            if on_progress is not None:
                on_progress(message[1])
            message = None
    except EOFError:
        message = None
    finally:
        receiver.close()
        child.join()
    if message is None:
        raise CrawlError(f"the crawl process ended without a result (exit code {child.exitcode})")
    status, payload = message
    if status != "ok":
        raise CrawlError(f"the crawl failed: {payload}")
    return payload
