"""`cxrbank crawl radiopaedia` and `ingest --doi` (round-2 review): one bad item never fails
every scheduled crawl, and what was downloaded is kept."""

from __future__ import annotations

import sqlite3
import warnings

import pytest
from scrapy.core.downloader import _default_jitter
from scrapy.settings import Settings

from crawler.radiopaedia_settings import BadSetting, spider_settings
from crawler.state import previous_outcome
from cxrbank import fakeweb as sw
from cxrbank.collection import Collection
from tests.fixtures.radiopaedia_site import FakeRadiopaedia, Page, build_site, make_cases
from tests.test_crawl_radiopaedia_review import plain_crawl
from tests.test_crawl_retryable import CHALLENGE, DOWN, ingest
from tests.test_radiopaedia import read_rows, site_requests

GONE = Page(b"gone", 404, {"Content-Type": "text/plain"})
DAMAGED = Page(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, 200, {"Content-Type": "image/png"})


def failures(root) -> dict[str, int]:
    with sqlite3.connect(root / ".cxrbank" / "state.sqlite") as db:
        return dict(db.execute("SELECT image_id, failures FROM radiopaedia_failures"))


def test_a_one_slice_ct_stack_gone_for_good_is_left_out_and_the_radiographs_kept(web, tmp_path):
    cases = make_cases(1)
    ct = cases[0].studies[1]
    ct.images = ct.images[:1]
    FakeRadiopaedia(web, cases)
    bad = ct.images[0].image_id
    web.add(f"/static/images/{bad}/big.png", GONE)
    root = tmp_path / "c"
    for attempt in (1, 2):  # CT only: the radiographs come in the third crawl
        code, out, err = plain_crawl(web, root, "--modality", "CT")
        assert code == 1 and f"big.png: 404 ({attempt} of 3 crawls; then it is left out)" in err
    code, out, err = plain_crawl(web, root)
    assert code == 0, err
    assert "Traceback" not in err and "list index" not in err
    assert out.splitlines()[0].startswith("new cases: 1, updated: 0, incomplete: 0, ")
    assert f"skipped: rID {cases[0].rid} study {ct.study_id}: CT stack left out, 1 of 1 slices " \
        "are gone (HTTP 404 in 3 crawls)" in out.splitlines()
    rows = read_rows(root)
    assert sorted(r["modality"] for r in rows) == ["X-ray", "X-ray"]
    assert not list(root.glob("volumes/*"))
    code, out, err = plain_crawl(web, root)  # complete: the stack is not asked for again
    assert code == 0 and "unchanged: 1" in out and failures(root) == {str(bad): 3}


def test_a_ct_stack_whose_every_slice_was_already_gone_is_said_left_out(web, tmp_path):
    cases = make_cases(1)
    ct = cases[0].studies[1]
    ct.images = ct.images[:1]
    FakeRadiopaedia(web, cases)
    web.add(f"/static/images/{ct.images[0].image_id}/big.png", GONE)
    root = tmp_path / "c"
    assert [plain_crawl(web, root)[0] for _ in range(3)] == [1, 1, 0]
    cases[0].revisions += 1  # the case was edited: its stacks are read again
    before = len(web.requests)
    code, out, _ = plain_crawl(web, root, "-s", "CXRBANK_RADIOPAEDIA_RECHECK_DAYS=1e-9")
    assert code == 0
    assert f"skipped: rID {cases[0].rid} study {ct.study_id}: CT stack left out, 1 of 1 slices " \
        "are gone (HTTP 404 in 3 crawls)" in out.splitlines()
    assert not any(p.startswith("/static/") for p in site_requests(web, before))


def test_a_damaged_radiograph_is_retried_twice_then_left_out_with_its_reason(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    image = site.cases[0].studies[0].images[0]
    path = f"/static/images/{image.image_id}/big.png"
    web.add(path, DAMAGED)
    root = tmp_path / "c"
    for attempt in (1, 2):
        code, out, err = plain_crawl(web, root)
        assert code == 1
        assert f"{path}: HTTP 200, unreadable image: Truncated File Read ({attempt} of 3 " \
            "crawls; then it is left out)" in err
    assert len(read_rows(root)) == 1 + 1  # the other radiograph and the CT's middle slice
    code, out, err = plain_crawl(web, root)
    assert code == 0, err
    assert f"skipped: rID {site.cases[0].rid} image {image.image_id}: left out, unreadable " \
        f"image: Truncated File Read in 3 crawls ({web.url(path)})" in out.splitlines()
    before = len(web.requests)
    code, out, err = plain_crawl(web, root, "-s", "CXRBANK_RADIOPAEDIA_RECHECK_DAYS=1e-9")
    assert code == 0 and err == ""
    assert path not in site_requests(web, before)
    assert f"/{image.image_id}" not in " ".join(r["source_id"] for r in read_rows(root))


def test_a_damaged_ct_slice_counts_like_a_missing_one(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    ct = site.cases[0].studies[1]
    web.add(f"/static/images/{ct.images[1].image_id}/big.png", DAMAGED)
    root = tmp_path / "c"
    assert [plain_crawl(web, root)[0] for _ in range(2)] == [1, 1]
    code, out, err = plain_crawl(web, root)
    assert code == 0, err
    assert f"skipped: rID {site.cases[0].rid} study {ct.study_id}: CT volume built without 1 " \
        "of 6 slices, gone (unreadable image: Truncated File Read in 3 crawls)" in out.splitlines()
    (row,) = [r for r in read_rows(root) if r["modality"] == "CT"]
    assert "CT volume without 1 of 6 slices" in row["other_notes"]


def test_an_html_page_instead_of_an_image_is_left_out_after_three_crawls(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    image = site.cases[0].studies[0].images[1]
    web.add(f"/static/images/{image.image_id}/big.png",
            Page(b"<html><body>Sorry</body></html>", 200, {"Content-Type": "text/html"}))
    root = tmp_path / "c"
    assert [plain_crawl(web, root)[0] for _ in range(2)] == [1, 1]
    code, out, _ = plain_crawl(web, root)
    assert code == 0
    assert any(line.startswith(f"skipped: rID {site.cases[0].rid} image {image.image_id}: left "
                               "out, an HTML page in 3 crawls") for line in out.splitlines())


def closed_paper(scholarly, doi: str, landing: Page) -> None:
    """Europe PMC, Unpaywall and Crossref all know the paper and no open copy of it."""
    scholarly.add_europepmc(doi)
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, []))
    scholarly.add_crossref(doi, sw.crossref(doi))
    scholarly.web.add(f"/doi/{doi}", landing)


def test_a_closed_paper_whose_landing_page_refuses_us_is_final_no_open_full_text(
        scholarly, tmp_path):
    doi = "10.5555/closed1"
    closed_paper(scholarly, doi, Page(CHALLENGE, 403, {"Content-Type": "text/html"}))
    code, paper, err = ingest(doi, tmp_path / "c")
    assert code == 0, err
    assert paper["outcome"] == "no open full text"
    assert paper["reason"] == ("no open full-text location; landing page refused "
                               "(HTTP 403, a challenge page (not evaded))")
    assert previous_outcome(Collection.open(tmp_path / "c"), doi).outcome == "no open full text"
    code, paper, _ = ingest(doi, tmp_path / "c")  # final: not asked again
    assert code == 0 and scholarly.web.count(f"/doi/{doi}") == 1


def test_a_landing_page_refusal_does_not_hide_a_service_outage(scholarly, tmp_path):
    doi = "10.5555/closed2"
    closed_paper(scholarly, doi, Page(b"Forbidden", 403, {"Content-Type": "text/plain"}))
    scholarly.add_unpaywall(doi, DOWN)
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error"
    assert "landing page refused (HTTP 403)" in paper["reason"]
    assert "unpaywall: HTTP 503" in paper["reason"]


def test_real_site_settings_switch_off_the_jitter_without_a_deprecation_warning():
    settings = spider_settings("me@example.org", True, {})
    assert "RANDOMIZE_DOWNLOAD_DELAY" not in settings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ScrapyDeprecationWarning would raise here
        assert _default_jitter(Settings(settings, priority="cmdline")) == 0.0
    with pytest.raises(BadSetting, match="-s DOWNLOAD_DELAY_JITTER cannot be set"):
        spider_settings("me@example.org", True, {"DOWNLOAD_DELAY_JITTER": 0.5})
