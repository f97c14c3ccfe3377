"""Shared fixtures: the local test web on 127.0.0.1, the real-data folder, small collections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cxrbank.localweb import LocalWeb, Page, Request

__all__ = ["Page", "Request"]

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def test_web() -> Iterator[LocalWeb]:
    """The session's local web server (127.0.0.1, random port)."""
    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture
def web(test_web: LocalWeb) -> Iterator[LocalWeb]:
    """The local web server with no routes and an empty request log, for one test."""
    test_web.reset()
    yield test_web
    test_web.reset()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test when a fresh clone has no such folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (real-data tests run only beside it)")
    return SHARED_DATA


@pytest.fixture
def scholarly(web: LocalWeb, monkeypatch: pytest.MonkeyPatch):
    """Fake Europe PMC, Unpaywall, Crossref, OpenAlex and bioRxiv on the local web, with the
    crawler's settings pointed at them and a contact set."""
    import json  # noqa: PLC0415

    from cxrbank import fakeweb  # noqa: PLC0415

    services = fakeweb.ScholarlyWeb(web)
    monkeypatch.setenv("CXRBANK_CONTACT", "tester@example.org")
    monkeypatch.setenv("CXRBANK_SCRAPY_SETTINGS", json.dumps(services.overrides))
    return services
