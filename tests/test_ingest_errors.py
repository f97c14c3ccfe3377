"""`cxrbank ingest`/`issue` on bad DOIs and unreachable services: one `Error:` line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.exceptions import CannotResolveHostError

from crawler.resolve import normalize_doi
from crawler.spiders.papers import network_failure
from crawler.state import previous_outcome
from cxrbank import fakeweb as sw
from cxrbank.collection import Collection
from tests.fixtures.cli import EXAMPLE, run

CLOSED = "http://127.0.0.1:1"  # nothing listens there: connection refused at once


def test_bad_doi_beside_a_local_pdf_is_a_usage_error_and_writes_nothing(tmp_path):
    root = tmp_path / "c"
    code, _, err = run("ingest", "--pdf", str(EXAMPLE), "--doi", "notadoi", "--root", str(root))
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        "Error: --doi 'notadoi' is not a DOI"]
    assert "Traceback" not in err and not root.exists()


def test_empty_doi_is_a_usage_error(tmp_path):
    code, _, err = run("ingest", "--doi", "", "--root", str(tmp_path / "c"))
    assert code == 2 and "Error: --doi needs a DOI" in err


@pytest.mark.parametrize("bad", ["10.1234/\x01\x02", "10.1000/../../../etc/passwd",
                                 "10.1000/a/./b", "10.1000/.."])
def test_dois_with_control_characters_or_dot_segments_are_not_dois(bad, scholarly, tmp_path):
    with pytest.raises(ValueError):
        normalize_doi(bad)
    code, _, err = run("ingest", "--doi", bad, "--root", str(tmp_path / "c"))
    assert code == 1
    assert err.splitlines() == [f"Error: {bad!r} is not a DOI"]
    assert scholarly.web.requests == []


def test_doi_is_percent_encoded_in_crossref_and_unpaywall_paths(scholarly, tmp_path):
    doi = "10.5555/odd?name#x%y;(1)"
    code, _, _ = run("ingest", "--doi", doi, "--root", str(tmp_path / "c"))
    assert code == 1  # no service knows it
    paths = [r.path for r in scholarly.web.requests]
    encoded = "10.5555/odd%3Fname%23x%25y%3B(1)"
    assert any(p.startswith(f"/crossref/works/{encoded}?mailto=") for p in paths), paths
    assert any(p.startswith(f"/unpaywall/{encoded}?email=") for p in paths), paths


def test_network_failure_words():
    url = "https://api.crossref.org/works/10.1234/abc"
    assert network_failure(url, CannotResolveHostError("no results")) == (
        "cannot reach api.crossref.org (DNS lookup failed)")
    assert network_failure(url, ConnectionRefusedError()) == (
        "cannot reach api.crossref.org (connection refused)")


def closed_services_env(tmp_path: Path) -> dict[str, str]:
    overrides = {**sw.local_overrides(CLOSED), "RETRY_TIMES": 1}
    return {**os.environ, "CXRBANK_CONTACT": "tester@example.org",
            "CXRBANK_SCRAPY_SETTINGS": json.dumps(overrides)}


def test_unreachable_services_give_one_error_line_per_doi_without_tracebacks(tmp_path):
    root = tmp_path / "c"
    doi = "10.5555/unreachable1"
    done = subprocess.run(
        [sys.executable, "-m", "cxrbank", "ingest", "--doi", doi, "--root", str(root)],
        capture_output=True, text=True, env=closed_services_env(tmp_path), timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: {doi}: cannot reach 127.0.0.1 (connection refused)"]
    assert previous_outcome(Collection.open(root), doi).outcome == "error"


def test_issue_reports_an_unreachable_doi_as_one_error_line(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "opened", "issue": {
        "number": 5, "title": "add", "body": "Please add 10.5555/unreachable2;rm",
        "labels": [{"name": "publication-to-add"}]}}))
    done = subprocess.run(
        [sys.executable, "-m", "cxrbank", "issue", "--event", str(event),
         "--root", str(tmp_path / "c")],
        capture_output=True, text=True, env=closed_services_env(tmp_path), timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "Error: 10.5555/unreachable2;rm: cannot reach 127.0.0.1 (connection refused)"]


def test_local_jats_with_missing_empty_and_garbage_figure_files_says_each_and_adds_the_rest(
        tmp_path):
    case = ("Case presentation. A 61-year-old woman presented with fever and cough. RT-PCR was "
            "positive for SARS-CoV-2 and she was treated for COVID-19 pneumonia.")
    example = sw.example_module()
    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "article.nxml").write_bytes(sw.jats_article(
        "10.5555/local.broken", "PMC2", "COVID-19 pneumonia", case, case,
        [("Figure 1", "PA chest radiograph.", "fig1"), ("Figure 2", "Axial CT.", "fig2"),
         ("Figure 3", "Chest radiograph.", "fig3"), ("Figure 4", "Chest radiograph.", "fig4")]))
    (folder / "fig1.jpg").write_bytes(example.radiograph_like(seed=91))
    (folder / "fig2.png").write_bytes(b"")
    (folder / "fig3.jpg").write_bytes(b"<html>an error page, not an image</html>")
    code, out, err = run("ingest", "--jats", str(folder / "article.nxml"),
                         "--root", str(tmp_path / "c"))
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        "Error: article.nxml: graphic 'fig2' left out: empty file (0 bytes)",
        "Error: article.nxml: graphic 'fig3' left out: not a readable image",
        "Error: article.nxml: graphic 'fig4' left out: no image file beside it"]
    assert "Traceback" not in err
    assert "added: 3 figure file(s) unreadable" in out
    rows = Collection.open(tmp_path / "c").read_rows()
    assert [(r["figure"], r["modality"]) for r in rows] == [("Figure 1", "X-ray")]
    stored = previous_outcome(Collection.open(tmp_path / "c"), "10.5555/local.broken")
    assert stored.outcome == "added" and stored.reason == "3 figure file(s) unreadable"


def test_europepmc_figure_files_missing_or_broken_are_noted_in_the_outcome(scholarly, tmp_path):
    doi, pmcid = "10.5555/figs.1", "PMC900077"
    example = sw.example_module()
    scholarly.add_europepmc(doi, pmcid=pmcid, open_access=True, license_="cc by",
                            title="A case report")
    scholarly.add_jats(pmcid, sw.jats_article(doi, pmcid, "A case report", "Case.", "Case.", [
        ("Figure 1", "AP chest radiograph on day 5 showing bilateral opacities.", "g001"),
        ("Figure 2", "Axial chest CT.", "g002"),
        ("Figure 3", "PA chest radiograph on day 9.", "g003")]),
        {"g001": example.radiograph_like(seed=11), "g002": b"not an image"})  # g003 not served
    code, out, _ = run("ingest", "--doi", doi, "--root", str(tmp_path / "c"), "--json")
    paper = json.loads(out)["papers"][0]
    assert (paper["outcome"], paper["added"]) == ("added", 1)
    assert "2 figure file(s) missing or unreadable" in paper["reason"]
    assert code == 0


def test_dns_failures_are_retried_once_other_failures_retry_times(tmp_path):
    import asyncio

    from scrapy import Request
    from scrapy.utils.test import get_crawler
    from twisted.internet.error import ConnectionRefusedError as Refused
    from twisted.internet.error import DNSLookupError

    from crawler.middlewares import BackoffRetryMiddleware

    crawler = get_crawler(settings_dict={"RETRY_TIMES": 3, "CXRBANK_DNS_RETRY_TIMES": 1,
                                         "CXRBANK_RETRY_BACKOFF_BASE": 0.0})
    crawler.spider = crawler._create_spider("probe")
    middleware = BackoffRetryMiddleware.from_crawler(crawler)

    def retried(exception: Exception, times: int) -> bool:
        request = Request("https://api.crossref.org/works/10.1/x", meta={"retry_times": times})
        return asyncio.run(middleware.process_exception(request, exception)) is not None

    assert retried(DNSLookupError("no such host"), 0)
    assert not retried(DNSLookupError("no such host"), 1)
    assert not retried(CannotResolveHostError("no results"), 1)
    assert retried(Refused(), 1) and retried(Refused(), 2)
    assert not retried(Refused(), 3)


def test_a_local_pdf_without_doi_is_named_by_its_file_not_its_sha256_key(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"<html>not a pdf</html>")
    code, out, err = run("ingest", "--pdf", str(bad), "--root", str(tmp_path / "c"))
    assert code == 1
    assert err.splitlines() == ["Error: bad.pdf: not a PDF file"]
    assert out.splitlines()[1].startswith("bad.pdf ") and "sha256:" not in out
